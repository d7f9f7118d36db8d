"""Spoken stamp descriptions of Tux Paint (``tuxpaint-stamps-default``): ~3 h of read speech in ~13 languages.

How the package stores them (checked on 2022.06.04-1): a stamp ``<dir>/<stamp>.png|.svg``
has a description ``<stamp>.txt`` whose first line is English and whose other
lines are ``<locale>.utf8=<text>``; the spoken description is
``<stamp>_desc.ogg`` (English) or ``<stamp>_desc_<locale>.ogg`` (a few ``.wav``).
``<stamp>.ogg`` / ``<stamp>_<locale>.ogg`` are sound effects (or spoken
number/letter names): not described speech, so not taken here.

Speakers: the package does not say who read which file. Its changelog credits
one or more readers per language (French alone has at least two), so a speaker
id would be invented. ``speaker`` stays None; ``speaker_proxy`` =
``tuxpaint:<language>`` says only "same language, probably few readers".
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.seed.items import FileSource, RealUtterance

__all__ = ["TUXPAINT_STAMPS_DIR", "read_stamp_descriptions", "list_tuxpaint_utterances"]

TUXPAINT_STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
_PACKAGE = "tuxpaint-stamps-default"
_DESC = re.compile(r"^(?P<stamp>.+?)_desc(?:_(?P<locale>[a-z]{2,3}(?:_[A-Za-z]{2})?(?:@\w+)?))?$")


def read_stamp_descriptions(txt_path: Path) -> dict[str, str]:
    """Locale -> description text; the first (unprefixed) line is stored under ``en``."""
    texts: dict[str, str] = {}
    lines = txt_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z_@]+)\.utf8=(.*)$", line)
        if m:
            texts[m.group(1)] = m.group(2).strip()
        elif i == 0:
            texts["en"] = line
    return texts


def _language_tag(locale: str) -> str:
    """``pt_BR`` -> ``pt-BR``; ``ca@valencia`` -> ``ca-valencia``."""
    return locale.replace("_", "-").replace("@", "-")


def _transcript(texts: dict[str, str], locale: str) -> str | None:
    for key in (locale, locale.split("_")[0]):
        if texts.get(key):
            return texts[key]
    return None


def list_tuxpaint_utterances(stamps_dir: Path = TUXPAINT_STAMPS_DIR) -> list[RealUtterance]:
    """Every spoken description with its language and (when the ``.txt`` has it) transcript, sorted by path."""
    out: list[RealUtterance] = []
    txt_cache: dict[Path, dict[str, str]] = {}
    for path in sorted(stamps_dir.rglob("*")):
        if path.suffix.lower() not in (".ogg", ".wav") or not path.is_file():
            continue
        stem = path.name[: -len(path.suffix)]
        stem = stem[:-4] if stem.endswith(".ogg") else stem  # one file is named *.ogg.ogg upstream
        m = _DESC.match(stem)
        if not m:
            continue
        stamp, locale = m.group("stamp"), m.group("locale") or "en"
        txt = path.parent / f"{stamp}.txt"
        if txt not in txt_cache:
            txt_cache[txt] = read_stamp_descriptions(txt) if txt.exists() else {}
        transcript = _transcript(txt_cache[txt], locale)
        rel_dir = path.parent.relative_to(stamps_dir)
        language = _language_tag(locale)
        labels = {
            "language": language,
            "transcript": transcript,
            "speaker": None,
            "speaker_proxy": f"tuxpaint:{language}",
            "stamp_id": f"{rel_dir.as_posix()}/{stamp}",
        }
        out.append(RealUtterance(
            source=FileSource(str(path)), corpus="tuxpaint", package=_PACKAGE,
            rel_path=f"audio/tuxpaint/{rel_dir.as_posix()}/{path.name}", labels=labels))
    return out
