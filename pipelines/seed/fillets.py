"""Acted dialogue of Fish Fillets NG (``fillets-ng-data-cs`` / ``-nl``): ~3.4 h, Czech and Dutch.

How the packages store it: the sound ``sound/<level>/<lang>/<id>.ogg`` (shared
lines under ``sound/share/<set>/<lang>/``); its text is in
``script/<level>/*dialogs_<lang>.lua`` (from ``fillets-ng-data``) as
``dialogId("<id>", "<font>", "<English>")`` followed by ``dialogStr("<text>")``.

Speakers: the font names the character who talks (the game colours each
character's subtitles): ``font_small`` is the small fish and ``font_big`` the
big fish in every level (one actor each per language; the dialogue calls the
small fish "she"), other fonts are level characters, so their id is scoped by
level (``fillets-cs:viking1/viking3``). ``font_both`` (both fish at once) and
lines without a font keep ``speaker`` None unless the id's character code is
there (``<level>-<code>-<word>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.seed.items import FileSource, RealUtterance

__all__ = ["FILLETS_DIR", "Dialog", "parse_fillets_dialogs", "list_fillets_utterances"]

FILLETS_DIR = Path("/usr/share/games/fillets-ng")
_STR = r'"((?:[^"\\]|\\.)*)"'
_CALL = re.compile(r"dialogId\(\s*" + _STR + r"\s*,\s*" + _STR + r"\s*,\s*" + _STR + r"\s*\)"
                   r"|dialogStr\(\s*" + _STR + r"\s*\)")
_FISH = {"font_small": ("small_fish", "female"), "font_big": ("big_fish", "male")}


@dataclass(frozen=True)
class Dialog:
    """One line of a ``dialogs_<lang>.lua``: id, subtitle font, English source text, translated text."""

    dialog_id: str
    font: str
    english: str
    text: str | None


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def parse_fillets_dialogs(lua_text: str) -> list[Dialog]:
    """The ``dialogId``/``dialogStr`` pairs of one lua file, in file order."""
    out: list[Dialog] = []
    pending: tuple[str, str, str] | None = None
    for m in _CALL.finditer(lua_text):
        if m.group(1) is not None:
            if pending is not None:
                out.append(Dialog(*pending, text=None))
            pending = (m.group(1), m.group(2), _unescape(m.group(3)))
        elif pending is not None:
            out.append(Dialog(*pending, text=_unescape(m.group(4)).strip()))
            pending = None
    if pending is not None:
        out.append(Dialog(*pending, text=None))
    return out


def _speaker(corpus: str, level: str, dialog: Dialog | None) -> tuple[str | None, str | None]:
    """(speaker id, gender) from the font (see module doc); (None, None) when the data does not tell."""
    if dialog is None:
        return None, None
    if dialog.font in _FISH:
        name, gender = _FISH[dialog.font]
        return f"{corpus}:{name}", gender
    if dialog.font and dialog.font != "font_both":
        return f"{corpus}:{level}/{dialog.font.removeprefix('font_')}", None
    parts = dialog.dialog_id.split("-")
    if not dialog.font and len(parts) >= 3:
        return f"{corpus}:{level}/code_{parts[1]}", None
    return None, None


def list_fillets_utterances(lang: str, root: Path = FILLETS_DIR) -> list[RealUtterance]:
    """Every dialogue sound of one language with transcript (translated line), English source and speaker."""
    corpus = f"fillets-{lang}"
    dialogs: dict[tuple[str, str], Dialog] = {}
    for lua in sorted((root / "script").rglob(f"*dialogs_{lang}.lua")):
        level = lua.parent.name
        for d in parse_fillets_dialogs(lua.read_text(encoding="utf-8", errors="replace")):
            dialogs.setdefault((level, d.dialog_id), d)
    by_id = {}
    for (level, dialog_id), d in dialogs.items():
        by_id.setdefault(dialog_id, (level, d))
    out: list[RealUtterance] = []
    for path in sorted((root / "sound").rglob(f"{lang}/*.ogg")):
        if path.parent.name != lang:
            continue
        rel = path.relative_to(root / "sound")
        level = rel.parts[0] if rel.parts[0] != "share" else "share"
        dialog_id = path.stem
        d = dialogs.get((level, dialog_id))
        if d is None and dialog_id in by_id:
            level_of, d = by_id[dialog_id]
        speaker, gender = _speaker(corpus, level, d)
        labels = {
            "language": lang,
            "transcript": d.text if d and d.text else None,
            "transcript_en": d.english if d and d.english else None,
            "speaker": speaker,
            "gender": gender,
            "dialog_id": dialog_id,
        }
        out.append(RealUtterance(
            source=FileSource(str(path)), corpus=corpus, package=f"fillets-ng-data-{lang}",
            rel_path=f"audio/{corpus}/{rel.parent.parent.as_posix()}/{path.name}", labels=labels))
    return out
