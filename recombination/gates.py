"""Quality gates: per output, which checks pass, from the stored scores and the thresholds of ``GateConfig``.

Gates (a row faces only the ones that apply to it):

- ``speaker`` (speaker varied): the output must sound closer to the target
  speaker than to the source by ``speaker_margin``; judged by the independent
  speaker encoder when it ran (``judge_speaker_*``), else by the factorizer's
  re-encoded speaker vector (``factor_speaker_*``);
- ``content`` (always): ``content_agreement >= min_content_agreement``;
- ``style`` / ``environment`` / ``channel`` (when varied): the re-encoded
  vector's cosine to the target's ``>= min_factor_sim``;
- ``naturalness`` (when DNSMOS ran): ``dnsmos_ovrl >= min_dnsmos``.

A NaN score (not judged: e.g. too little speech for the speaker encoder)
fails its gate: an output nobody could check is not admitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from schemas.recombine import GateConfig

__all__ = ["apply_gates", "GATES"]

GATES: tuple[str, ...] = ("speaker", "content", "style", "environment", "channel", "naturalness")


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan, dtype=np.float32)


def apply_gates(scores: Mapping[str, np.ndarray], varied: Sequence[str], config: GateConfig,
                ) -> tuple[np.ndarray, list[str]]:
    """``(passed bool[n], rejected_by[n])`` for rows with ``scores`` (columns of ``GATE_COLUMNS``).

    ``varied[i]`` is row ``i``'s varied factors joined by ``+`` (the plan's ``varied`` column).

    Example:
        >>> s = {"content_agreement": np.array([0.9, 0.1]), "factor_speaker_target_sim": np.array([0.8, 0.8]),
        ...      "factor_speaker_source_sim": np.array([0.2, 0.9])}
        >>> apply_gates(s, ["speaker", "speaker"], GateConfig(speaker_judge=False))
        (array([ True, False]), ['', 'speaker,content'])
    """
    n = len(varied)
    get = {k: np.asarray(scores.get(k, _nan(n)), dtype=np.float32) for k in (
        "content_agreement", "factor_speaker_target_sim", "factor_speaker_source_sim", "judge_speaker_target_sim",
        "judge_speaker_source_sim", "factor_style_sim", "factor_environment_sim", "factor_channel_sim", "dnsmos_ovrl")}
    by = "judge" if config.speaker_judge else "factor"
    margin = get[f"{by}_speaker_target_sim"] - get[f"{by}_speaker_source_sim"]
    fails: dict[str, np.ndarray] = {
        "speaker": ~(margin >= config.speaker_margin),
        "content": ~(get["content_agreement"] >= config.min_content_agreement),
        "naturalness": ~(get["dnsmos_ovrl"] >= config.min_dnsmos) if config.dnsmos else np.zeros(n, bool),
    }
    for name in ("style", "environment", "channel"):
        fails[name] = ~(get[f"factor_{name}_sim"] >= config.min_factor_sim)
    applies = {"content": np.ones(n, bool), "naturalness": np.ones(n, bool)}
    for name in ("speaker", "style", "environment", "channel"):
        applies[name] = np.array([name in v.split("+") for v in varied], dtype=bool)
    rejected = [",".join(g for g in GATES if applies[g][i] and fails[g][i]) for i in range(n)]
    return np.array([r == "" for r in rejected], dtype=bool), rejected
