"""The fixed sentence lists that synthetic voices read (``pipelines/seed/sentences_<lang>.txt``).

Format: ``# language: <tag>`` header, ``#`` comments, then ``text_id<TAB>text``
lines. Ids are stable (append, never renumber): they are the join key of
parallel renderings, and ``xx-0007`` is a translation of ``en-0007``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sentence", "read_sentences", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sentence:
    """One line of a sentence list."""

    text_id: str
    language: str
    text: str


def read_sentences(path: str | Path) -> list[Sentence]:
    """Read a sentence list (relative paths resolve against the repository root)."""
    path = Path(path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        raise FileNotFoundError(f"sentence file not found: {path}")
    language = None
    out: list[Sentence] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"^#\s*language:\s*(\S+)", line)
        if m:
            language = m.group(1)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        text_id, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise ValueError(f"{path}:{n}: expected 'text_id<TAB>text'")
        if text_id in seen:
            raise ValueError(f"{path}:{n}: duplicate text_id {text_id}")
        if language is None:
            raise ValueError(f"{path}: missing '# language: <tag>' header before the first sentence")
        seen.add(text_id)
        out.append(Sentence(text_id=text_id, language=language, text=text.strip()))
    return out
