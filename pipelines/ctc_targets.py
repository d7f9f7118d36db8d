"""Phoneme targets for the training input's items: (language, transcript) class indices -> phoneme ids.

Items of ``pipelines.train_input`` carry ``language`` and ``transcript`` as class indices into the index's
vocabularies (``UNKNOWN_LABEL`` where unknown; a synthetic row has its content segment's). The recognizer
needs phoneme ids: :func:`build_phoneme_targets` phonemizes every (language, transcript) pair the index holds
once (one espeak-ng process per language, cached by the ``Phonemizer``) and returns a lookup that turns a
batch's two label columns into padded targets and lengths. Rows without a transcript, or whose transcript
has no phonemes, get length 0: the trainer drops them (CTC has nothing to learn from them).

Example::

    index = index_training_rows(config)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], Phonemizer(cache_dir=...))
    ids, lengths = targets.for_batch(batch)            # int64 [n, L] (0-padded), int64 [n]
    valid_targets = build_phoneme_targets(valid_index.vocab, [valid_index.real], ph, inventory=targets.inventory)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.phonemes import PhonemeInventory, Phonemizer, PhonemizeError
from schemas.factorizer import UNKNOWN_LABEL

__all__ = ["PhonemeTargets", "build_phoneme_targets"]


@dataclass(frozen=True)
class PhonemeTargets:
    """(language class, transcript class) -> phoneme ids of ``inventory``; pairs not in ``table`` have none.

    Attributes:
        skipped_languages: languages espeak-ng has no voice for (their rows get length 0) -> distinct transcripts.
    """

    inventory: PhonemeInventory
    table: dict[tuple[int, int], tuple[int, ...]]
    skipped_languages: dict[str, int]

    def lookup(self, language: np.ndarray, transcript: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids ``[n, max L]`` (0 = blank as padding) and lengths ``[n]`` (0: no target), both int64."""
        seqs = [self.table.get((int(lang), int(text)), ()) for lang, text in zip(language, transcript)]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        ids = np.zeros((len(seqs), max(int(lengths.max(initial=0)), 1)), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = s
        return ids, lengths

    def for_batch(self, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`lookup` on a training batch's ``language`` and ``transcript`` columns (numpy or torch)."""
        return self.lookup(np.asarray(batch["language"]), np.asarray(batch["transcript"]))


def build_phoneme_targets(vocab: Mapping[str, Sequence[str]], tables: Sequence[pa.Table], phonemizer: Phonemizer,
                          *, inventory: PhonemeInventory | None = None) -> PhonemeTargets:
    """Phonemize every (language, transcript) pair in ``tables`` (``TrainIndex.real`` / ``.synthetic``) once.

    Args:
        vocab: the index's vocabularies (``language`` and ``transcript`` lists).
        inventory: the training inventory for valid/test indexes; None builds it from these phonemes.
    """
    pairs: set[tuple[int, int]] = set()
    for table in tables:
        if table.num_rows:
            lang = table.column("language").to_numpy()
            text = table.column("transcript").to_numpy()
            known = (lang != UNKNOWN_LABEL) & (text != UNKNOWN_LABEL)
            pairs.update(zip(lang[known].tolist(), text[known].tolist()))
    by_language: dict[int, list[int]] = {}
    for lang, text in sorted(pairs):
        by_language.setdefault(lang, []).append(text)
    phonemes: dict[tuple[int, int], list[str]] = {}
    skipped: dict[str, int] = {}
    for lang, texts in by_language.items():
        try:
            out = phonemizer([vocab["transcript"][t] for t in texts], vocab["language"][lang])
        except PhonemizeError as exc:
            if not str(exc).startswith("no espeak-ng voice"):
                raise
            skipped[vocab["language"][lang]] = len(texts)
            continue
        phonemes.update({(lang, t): p for t, p in zip(texts, out)})
    inventory = inventory or PhonemeInventory.from_sequences(phonemes.values())
    table = {pair: tuple(inventory.encode(p)) for pair, p in phonemes.items() if p}
    return PhonemeTargets(inventory=inventory, table=table, skipped_languages=skipped)
