"""Score a CTC recognizer on whole real rows: phoneme error rate and CTC loss of a SQL-chosen set.

Used for validation during training (rank 0) and for the held-out evaluation
sets after it, so both are computed the same way. Rows are read whole (no
crop: a window would have only part of its transcript) through the training
input's own indexer and reader, without Ray: a set is a few hundred rows.
Targets use the *training* inventory; a phoneme it lacks becomes the unknown
class, which the recognizer can never emit, so it counts as an error (as it
should: the recognizer never learned it).

Example::

    rows = load_eval_rows(config.input, "split = 'test'", inventory, Phonemizer(cache_dir="data/cache/phonemes"))
    score_ctc(model, rows)   # {'per': 0.41, 'loss': 1.9, 'rows': 412, 'phonemes': 15321}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pipelines.ctc_targets import build_phoneme_targets
from pipelines.phonemes import PhonemeInventory, Phonemizer, edit_distance
from pipelines.train_input import index_training_rows, plan_epoch, read_training_batch
from schemas.factorizer import UNKNOWN_LABEL
from schemas.train_input import LABELS, TrainInputConfig, TrainInputError

__all__ = ["EvalRows", "load_eval_rows", "score_ctc"]

_NO_PHONEMES = "no phonemes (no transcript, or no espeak-ng voice)"


@dataclass
class EvalRows:
    """Whole rows to score, sorted by length (less padding per batch).

    Attributes:
        labels: ``segments`` labels of each row (``schemas.train_input.LABELS``; None where unknown).
        skipped: why rows matching the filter are not scored (reason -> rows).
    """

    filter: str
    codes: list[np.ndarray] = field(default_factory=list)       # uint16 [frames, stages] each
    targets: list[list[int]] = field(default_factory=list)      # inventory ids, >= 1
    keys: list[str] = field(default_factory=list)
    labels: dict[str, list[str | None]] = field(default_factory=dict)  # LABELS name -> value per row (None: unknown)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def phonemes(self) -> int:
        return sum(len(t) for t in self.targets)


def load_eval_rows(input_config: TrainInputConfig, row_filter: str, inventory: PhonemeInventory | None,
                   phonemizer: Phonemizer | None, *, max_rows: int | None = None, read_rows: int = 256) -> EvalRows:
    """The real rows of ``row_filter`` (SQL over ``segments``) with latents of the input's codec, and targets.

    ``inventory`` None: codes and labels only (every row is kept, ``targets`` are empty lists).

    A filter that matches no rows gives an empty :class:`EvalRows` (``skipped`` says so); a filter that does not
    parse, or a missing table, raises :class:`schemas.train_input.TrainInputError`.
    """
    cfg = input_config.model_copy(update={"real_filter": row_filter, "synthetic_per_real": 0.0, "crop": "start",
                                          "factorizer_id": None})
    try:
        index = index_training_rows(cfg)
    except TrainInputError as exc:
        if "no latents of codec" in str(exc) and "for segments matching" in str(exc):
            return EvalRows(filter=row_filter, skipped={"no rows with latents of the codec": 0})
        raise
    table = index.real
    if max_rows is not None and table.num_rows > max_rows:
        index = replace(index, real=table.slice(0, max_rows))
    targets = None if inventory is None else build_phoneme_targets(index.vocab, [index.real], phonemizer,
                                                                   inventory=inventory)
    longest = int(np.max(np.asarray(index.real.column("num_frames")), initial=1))
    index = replace(index, config=index.config.model_copy(update={"max_frames": longest}))
    plan = plan_epoch(index, 0).sort_by("item")
    sources = {"latents": (index.uris["latents"], index.versions["latents"])}
    rows = EvalRows(filter=row_filter)
    for start in range(0, plan.num_rows, read_rows):
        part = plan.slice(start, read_rows)
        batch = read_training_batch({c: part.column(c).to_numpy() for c in part.column_names}, sources=sources,
                                    max_frames=index.config.max_frames, num_stages=index.num_stages,
                                    storage=index.config.storage)
        ids, lengths = targets.for_batch(batch) if targets is not None else (None, None)
        for i in range(len(batch["lengths"])):
            if lengths is not None and lengths[i] == 0:
                rows.skipped[_NO_PHONEMES] = rows.skipped.get(_NO_PHONEMES, 0) + 1
                continue
            rows.codes.append(batch["codes"][i, :int(batch["lengths"][i])].copy())
            rows.targets.append([] if ids is None else ids[i, :int(lengths[i])].tolist())
            rows.keys.append(index.key(int(batch["item"][i]))[1])
            for name in LABELS:
                cls = int(batch[name][i])
                rows.labels.setdefault(name, []).append(None if cls == UNKNOWN_LABEL else index.vocab[name][cls])
    order = np.argsort([len(c) for c in rows.codes], kind="stable")
    rows.codes = [rows.codes[i] for i in order]
    rows.targets = [rows.targets[i] for i in order]
    rows.keys = [rows.keys[i] for i in order]
    rows.labels = {name: [values[i] for i in order] for name, values in rows.labels.items()}
    return rows


def score_ctc(model, rows: EvalRows, *, batch_size: int = 32) -> dict[str, float]:
    """Corpus PER (edits / reference phonemes, greedy decoding) and mean CTC loss of ``model`` on ``rows``.

    Returns ``per``, ``loss``, ``rows``, ``phonemes``; an empty set gives ``rows`` 0 and NaN rates.
    """
    import torch

    from models.ctc.losses import CtcLoss
    from models.ctc.model import CtcBatch, greedy_decode

    if not len(rows):
        return {"per": float("nan"), "loss": float("nan"), "rows": 0, "phonemes": 0}
    loss_fn = CtcLoss()
    was_training = model.training
    model.eval()
    edits, loss_sum = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            codes = rows.codes[start:start + batch_size]
            refs = rows.targets[start:start + batch_size]
            frames = max(len(c) for c in codes)
            padded = np.zeros((len(codes), frames, codes[0].shape[1]), dtype=np.int64)
            for i, c in enumerate(codes):
                padded[i, :len(c)] = c
            lengths = torch.tensor([len(c) for c in codes])
            targets = np.zeros((len(refs), max(len(r) for r in refs)), dtype=np.int64)
            for i, r in enumerate(refs):
                targets[i, :len(r)] = r
            out = model(torch.from_numpy(padded), lengths)
            batch = CtcBatch(torch.from_numpy(padded), lengths, torch.from_numpy(targets),
                             torch.tensor([len(r) for r in refs]))
            loss_sum += float(loss_fn(out, batch)) * len(codes)
            edits += sum(edit_distance(r, h) for r, h in zip(refs, greedy_decode(out)))
    model.train(was_training)
    return {"per": edits / rows.phonemes, "loss": loss_sum / len(rows), "rows": len(rows),
            "phonemes": rows.phonemes}
