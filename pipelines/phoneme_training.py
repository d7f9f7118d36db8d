"""What the phoneme-driven trainers (CTC recognizer, generator) share: streaming the input by steps, whole rows.

Both train on whole rows of the streaming training input with espeak-ng
phoneme sequences of each row's transcript, so both need the same two
things: the epochs a run of ``max_steps`` consumes (resuming mid-epoch at
``start_step``), and which items of a batch are usable (the window is the
whole row, and the row has phonemes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["stream_by_steps", "whole_rows"]


def stream_by_steps(index, *, start_step: int, max_steps: int, batch_size: int):
    """A Ray Dataset of the plan items steps ``start_step .. max_steps`` read (``batch_size`` items a step).

    Item ``k`` of the run is item ``k mod n`` of epoch ``k // n`` (``n`` items per epoch), so a resumed run reads
    exactly what an uninterrupted one would have. Ray must be initialized (``pipelines.ray_env.init_ray``).
    """
    from pipelines.train_input import make_training_dataset, synthetic_rows_per_epoch

    per_epoch = index.n_real + synthetic_rows_per_epoch(index)
    consumed = start_step * batch_size
    first, position = divmod(consumed, per_epoch)
    last = (max_steps * batch_size + per_epoch - 1) // per_epoch
    return make_training_dataset(index, list(range(first, max(last, first + 1))), start_position=position)


def whole_rows(batch: dict, target_lengths: np.ndarray) -> np.ndarray:
    """Indices of the items whose window is the whole row and whose row has phonemes.

    Why: a window cut from a longer row has only part of the row's transcript (``num_frames > lengths``), so
    neither a CTC loss nor a phoneme-to-frame alignment may use it; a row without phonemes has nothing to learn.
    """
    return np.flatnonzero((np.asarray(batch["num_frames"]) == np.asarray(batch["lengths"])) & (target_lengths > 0))
