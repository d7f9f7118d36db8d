"""A small speech-to-speech model on codec codes (issue #5 item 3): speech latents in -> speech latents out.

Default task: voice/environment normalization — any speaker in any room or channel -> the same words in one
clean target voice, trained on recombined pairs (a synthetic row and a rendering of its content in the target
voice). With a speaker vector of the ``factors`` table it maps to that voice instead. Source and target share
the codec's frame rate, not their length::

    model, loss_fn = build_s2s("s2s_small"), build_s2s_loss()
    out = model(batch.codes, batch.lengths, batch.target_lengths, batch.speaker)   # S2SOutput [B, Tt, S, K]
    losses = loss_fn(out, batch)                                                   # S2SLosses(total, ...)
    converted = model.eval().convert(codes, lengths, rate=1.0)                     # S2SConversion(codes, lengths)
"""

from __future__ import annotations

from models.s2s.builders import build_s2s, build_s2s_loss, resolve_s2s_config
from models.s2s.checkpoint import (S2SCheckpointError, S2SCheckpointMeta, load_s2s_checkpoint, s2s_id_for,
                                   save_s2s_checkpoint)
from models.s2s.losses import S2SLoss, S2SLosses
from models.s2s.model import (S2SBatch, S2SConversion, S2SOutput, SpeechToSpeech, resample_frames,
                              target_lengths_for)
from models.s2s.presets import PRESETS, preset, s2s_small, s2s_tiny_test

__all__ = [
    "SpeechToSpeech", "S2SBatch", "S2SOutput", "S2SConversion", "resample_frames", "target_lengths_for",
    "S2SLoss", "S2SLosses", "PRESETS", "preset", "s2s_small", "s2s_tiny_test", "build_s2s", "build_s2s_loss",
    "resolve_s2s_config", "S2SCheckpointError", "S2SCheckpointMeta", "s2s_id_for", "save_s2s_checkpoint",
    "load_s2s_checkpoint",
]
