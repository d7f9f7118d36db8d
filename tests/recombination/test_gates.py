"""Gates: each row faces only its gates; NaN (not judged) fails; the independent judge decides when it ran."""

from __future__ import annotations

import numpy as np

from recombination.gates import apply_gates
from schemas.recombine import GateConfig

NAN = np.nan


def _scores(**kw):
    base = {"content_agreement": [0.9], "factor_speaker_target_sim": [0.8], "factor_speaker_source_sim": [0.1],
            "judge_speaker_target_sim": [0.7], "judge_speaker_source_sim": [0.6], "factor_style_sim": [0.9],
            "factor_environment_sim": [0.9], "factor_channel_sim": [0.9], "dnsmos_ovrl": [3.0]}
    base.update(kw)
    return {k: np.asarray(v, dtype=np.float32) for k, v in base.items()}


def test_a_good_row_passes_and_each_failure_is_named():
    assert apply_gates(_scores(), ["speaker"], GateConfig())[1] == [""]
    assert apply_gates(_scores(judge_speaker_target_sim=[0.5]), ["speaker"], GateConfig())[1] == ["speaker"]
    assert apply_gates(_scores(content_agreement=[0.1]), ["speaker"], GateConfig())[1] == ["content"]
    got = apply_gates(_scores(factor_environment_sim=[0.1]), ["speaker+environment"], GateConfig())
    assert got[1] == ["environment"] and not got[0][0]


def test_gates_of_factors_not_varied_do_not_apply():
    s = _scores(factor_environment_sim=[-1.0], judge_speaker_target_sim=[0.0])
    assert apply_gates(s, ["channel"], GateConfig())[1] == [""]


def test_not_judged_fails_its_gate():
    got = apply_gates(_scores(judge_speaker_target_sim=[NAN]), ["speaker"], GateConfig())
    assert got[1] == ["speaker"]
    cfg = GateConfig(dnsmos=True)
    assert apply_gates(_scores(dnsmos_ovrl=[NAN]), ["speaker"], cfg)[1] == ["naturalness"]
    assert apply_gates(_scores(dnsmos_ovrl=[NAN]), ["speaker"], GateConfig(dnsmos=False))[1] == [""]


def test_without_the_judge_the_factorizer_decides_the_speaker_gate():
    s = _scores(judge_speaker_target_sim=[NAN], factor_speaker_target_sim=[0.2], factor_speaker_source_sim=[0.5])
    assert apply_gates(s, ["speaker"], GateConfig(speaker_judge=False))[1] == ["speaker"]
    assert apply_gates(s, ["speaker"], GateConfig(speaker_judge=False, speaker_margin=-0.5))[1] == [""]
