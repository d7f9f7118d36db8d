"""Phoneme targets for the CTC recognizer (issue #5): espeak-ng phonemization, a symbol inventory, and PER.

Symbols: espeak-ng's own phoneme segmentation (``--ipa --sep=_``), each
phoneme written in IPA, with stress (ˈ ˌ), length (ː ˑ), syllabic (◌̩) and
espeak's unstressed-word (``-``) marks stripped. Why this and not per-character
IPA: espeak's segmentation keeps affricates and diphthongs (``tʃ``, ``aɪ``,
``ts``) as one unit, as its phoneme tables define them, and nasal vowels
(``ɑ̃``) keep their tilde; stripping the prosodic marks gives ~55 English,
~35 French symbols on the seed sentences. Why IPA and not ``-x`` mnemonics: the
mnemonics of different languages' tables collide in meaning; IPA is shared.
espeak prints ``??`` for the few phonemes it has no IPA for (German ``ʊɐ̯``);
it is kept as a symbol so phoneme counts stay right.

One espeak-ng process per batch: texts go one per line with clause
punctuation removed (espeak starts an output line at every clause), so output
line ``i`` is text ``i``; if the counts ever differ (espeak splits an overlong
clause), that batch falls back to one process per text. Each distinct
``(language, text)`` is phonemized once: :class:`Phonemizer` keeps a cache,
persisted as JSON under a given folder, named by the espeak-ng version (another
version may pronounce differently, so it starts a new file).

Example::

    ph = Phonemizer(cache_dir="data/phonemes")
    ph(["The quick brown fox."], "en")      # [['ð', 'ə', 'k', 'w', 'ɪ', 'k', 'b', 'ɹ', 'aʊ', 'n', 'f', 'ɑ', 'k', 's']]
    inv = PhonemeInventory.from_sequences(seqs)
    ids = inv.encode(seqs[0]); phoneme_error_rate([ref], [hyp])
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PhonemizeError", "Phonemizer", "phonemize", "espeak_voice", "espeak_version", "PhonemeInventory",
           "ErrorCounts", "count_errors", "edit_distance", "phoneme_error_rate", "WORD_BOUNDARY", "BLANK", "UNKNOWN"]

#: Symbol put between words when word boundaries are asked for.
WORD_BOUNDARY = "|"
#: The CTC blank (id 0) and the unknown-phoneme symbol (id 1) of every inventory.
BLANK, UNKNOWN = "<blank>", "<unk>"

#: Corpus language code -> espeak-ng voice, where the code itself is not the voice wanted. One canonical accent
#: per language: targets must not depend on which voice read the text.
_VOICE_ALIASES = {"en": "en-us", "fr": "fr-fr", "zh": "cmn", "zh-cn": "cmn", "no": "nb", "pt-pt": "pt",
                  "ca-valencia": "ca", "es-es": "es"}
_STRIP = str.maketrans("", "", "ˈˌːˑ-\u0329")
_CACHE_FORMAT = 1
# clause punctuation at a word edge (kept inside words/numbers: "3.5", "e-mail", "s'il"), brackets and quotes
_CLAUSE = re.compile(r"[^\w\s'’-]+(?=\s|$)|(?:(?<=\s)|^)[^\w\s'’-]+|[\"“”«»„()\[\]{}]")


class PhonemizeError(RuntimeError):
    """espeak-ng is missing or failed, or a language has no espeak-ng voice; one line."""


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PhonemizeError("espeak-ng not found on PATH: install Debian's espeak-ng (apt-get install espeak-ng)")
    return exe


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    """espeak-ng's version (``1.51``): names the cache file."""
    out = subprocess.run([_espeak(), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+(?:\.\d+)+)", out)
    return match.group(1) if match else "unknown"


@functools.lru_cache(maxsize=1)
def _installed_voices() -> frozenset[str]:
    out = subprocess.run([_espeak(), "--voices"], capture_output=True, text=True).stdout
    return frozenset(line.split()[1].lower() for line in out.splitlines()[1:] if len(line.split()) > 1)


def espeak_voice(language: str) -> str:
    """The espeak-ng voice for a corpus language code (``en`` -> ``en-us``, ``pt-BR`` -> ``pt-br``, ``ca-valencia``
    -> ``ca``): an alias, else the code itself, else its primary subtag, if installed.

    Raises:
        PhonemizeError: no installed voice fits.
    """
    code = (language or "").strip().lower().replace("_", "-")
    voices = _installed_voices()
    for candidate in (_VOICE_ALIASES.get(code), code, _VOICE_ALIASES.get(code.split("-")[0]), code.split("-")[0]):
        if candidate and candidate in voices:
            return candidate
    raise PhonemizeError(f"no espeak-ng voice for language {language!r} ({len(voices)} voices installed; "
                         "see `espeak-ng --voices`)")


def _clean(text: str) -> str:
    """One line without clause punctuation (so espeak makes exactly one output line of it)."""
    return " ".join(_CLAUSE.sub(" ", unicodedata.normalize("NFC", text)).split())


def _parse(line: str) -> list[str]:
    """espeak's ``--ipa --sep=_`` line -> symbols with ``WORD_BOUNDARY`` between words."""
    out: list[str] = []
    for word in line.split():
        symbols = [s for s in (p.translate(_STRIP) for p in word.split("_")) if s]
        if symbols:
            if out:
                out.append(WORD_BOUNDARY)
            out.extend(symbols)
    return out


class Phonemizer:
    """espeak-ng phonemizer with a per-(language, text) cache (in memory, and on disk if ``cache_dir`` is given).

    Args:
        cache_dir: folder of the JSON cache (created on first save); None keeps it in memory only.
        word_boundaries: put ``WORD_BOUNDARY`` between words (the cache stores them either way).

    Attributes:
        espeak_calls: espeak-ng processes started by this object (cache hits start none).
    """

    def __init__(self, *, cache_dir: str | Path | None = None, word_boundaries: bool = False) -> None:
        self.word_boundaries = bool(word_boundaries)
        self.espeak_calls = 0
        self.path = (Path(cache_dir) / f"phonemes-espeak-ng-{espeak_version()}-v{_CACHE_FORMAT}.json"
                     if cache_dir is not None else None)
        self._cache: dict[str, dict[str, str]] = self._read() if self.path else {}

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PhonemizeError(f"{self.path}: unreadable phoneme cache ({type(exc).__name__}); delete it") from None
        return {lang: dict(texts) for lang, texts in data.get("phonemes", {}).items()}

    def __len__(self) -> int:
        return sum(len(texts) for texts in self._cache.values())

    def __call__(self, texts: Sequence[str], language: str) -> list[list[str]]:
        """Phonemes of each text (``[]`` for a text without words), one espeak process for all uncached texts.

        Raises:
            PhonemizeError: unknown language, espeak-ng missing or failing.
        """
        voice = espeak_voice(language)
        known = self._cache.setdefault(voice, {})
        missing = sorted({t for t in texts if t not in known})
        if missing:
            lines = [_clean(t) for t in missing]
            todo = [i for i, line in enumerate(lines) if line]
            for i in range(len(missing)):
                known[missing[i]] = ""
            for i, phones in zip(todo, self._run(voice, [lines[i] for i in todo])):
                known[missing[i]] = " ".join(phones)
            self.save()
        out = []
        for t in texts:
            phones = known[t].split()
            out.append(phones if self.word_boundaries else [p for p in phones if p != WORD_BOUNDARY])
        return out

    def _espeak_lines(self, voice: str, lines: Sequence[str]) -> list[str]:
        self.espeak_calls += 1
        proc = subprocess.run([_espeak(), "-q", "--ipa", "--sep=_", "-v", voice],
                              input="\n".join(lines) + "\n", capture_output=True, text=True)
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
            raise PhonemizeError(f"espeak-ng -v {voice} failed: {err}")
        return [line for line in proc.stdout.splitlines() if line.strip()]

    def _run(self, voice: str, lines: Sequence[str]) -> list[list[str]]:
        if not lines:
            return []
        got = self._espeak_lines(voice, lines)
        if len(got) == len(lines):
            return [_parse(line) for line in got]
        # espeak split or merged a line: one process per text, its output lines joined
        return [_parse(" ".join(self._espeak_lines(voice, [line]))) for line in lines]

    def save(self) -> Path | None:
        """Write the cache atomically, merged with what another process may have saved meanwhile."""
        if self.path is None:
            return None
        for lang, texts in self._read().items():
            for text, phones in texts.items():
                self._cache.setdefault(lang, {}).setdefault(text, phones)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": _CACHE_FORMAT, "espeak_ng": espeak_version(), "phonemes": self._cache}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def phonemize(texts: Sequence[str], language: str, *, cache_dir: str | Path | None = None,
              word_boundaries: bool = False) -> list[list[str]]:
    """Phonemes of each text in ``language`` (see :class:`Phonemizer`; for many calls keep one Phonemizer).

    Example:
        >>> phonemize(["Hello world."], "en")
        [['h', 'ə', 'l', 'oʊ', 'w', 'ɜ', 'l', 'd']]
    """
    return Phonemizer(cache_dir=cache_dir, word_boundaries=word_boundaries)(texts, language)


@dataclass(frozen=True)
class PhonemeInventory:
    """Phoneme symbol <-> class id for CTC: 0 = blank, 1 = unknown, then ``symbols`` in order.

    Build it from the training targets (:meth:`from_sequences`, sorted so equal sets give equal ids), store
    ``symbols`` in the recognizer's checkpoint, map symbols the inventory lacks to the unknown id.
    """

    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.symbols)) != len(self.symbols) or BLANK in self.symbols or UNKNOWN in self.symbols:
            raise ValueError("inventory symbols must be distinct and exclude the blank and unknown symbols")

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[str]]) -> "PhonemeInventory":
        return cls(tuple(sorted({s for seq in sequences for s in seq})))

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unknown_id(self) -> int:
        return 1

    @property
    def num_classes(self) -> int:
        """Classes of the recognizer's output (symbols + blank + unknown)."""
        return len(self.symbols) + 2

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {s: i + 2 for i, s in enumerate(self.symbols)}

    def encode(self, phonemes: Sequence[str], *, strict: bool = False) -> list[int]:
        """Symbols -> ids; a symbol not in the inventory gives ``unknown_id`` (``strict``: a ValueError)."""
        if strict:
            unknown = [p for p in phonemes if p not in self._ids]
            if unknown:
                raise ValueError(f"phonemes not in the inventory: {sorted(set(unknown))}")
        return [self._ids.get(p, self.unknown_id) for p in phonemes]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> symbols, blanks dropped (unknown -> ``UNKNOWN``)."""
        table = (BLANK, UNKNOWN, *self.symbols)
        return [table[i] for i in ids if i != self.blank_id]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each 1); one numpy pass per ref item.

    Why numpy: none of editdistance / rapidfuzz / jiwer is installed. The in-row insertion chain is a running
    minimum: ``row[j] = min_k<=j (tmp[k] + j - k)``.
    """
    if not ref or not hyp:
        return len(ref) + len(hyp)
    ids: dict = {}
    h = np.array([ids.setdefault(x, len(ids)) for x in hyp])
    arange = np.arange(len(hyp) + 1)
    row = arange.copy()
    for i, r in enumerate(ref, start=1):
        tmp = np.empty_like(row)
        tmp[0] = i
        tmp[1:] = np.minimum(row[1:] + 1, row[:-1] + (h != ids.get(r, -1)))
        row = np.minimum.accumulate(tmp - arange) + arange
    return int(row[-1])


@dataclass(frozen=True)
class ErrorCounts:
    """Edits and reference length summed over a corpus (add two to pool them); ``rate`` = edits / length."""

    edits: int = 0
    ref_length: int = 0

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.edits + other.edits, self.ref_length + other.ref_length)

    @property
    def rate(self) -> float:
        if self.ref_length == 0:
            raise ValueError("error rate of an empty reference corpus is undefined")
        return self.edits / self.ref_length


def count_errors(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> ErrorCounts:
    """Edit distances and reference lengths summed over aligned (ref, hyp) pairs."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return ErrorCounts(sum(edit_distance(r, h) for r, h in zip(refs, hyps)), sum(len(r) for r in refs))


def phoneme_error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Corpus PER: sum of edit distances / sum of reference lengths (not a mean of per-utterance rates).

    Example:
        >>> phoneme_error_rate([["a", "b", "c"], ["d"]], [["a", "c"], ["d", "e"]])
        0.5
    """
    return count_errors(refs, hyps).rate
