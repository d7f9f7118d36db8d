"""Factorizer configs: defaults fit the shipped codec, bad values are refused by name, torch stays unloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.factorizer import FACTOR_NAMES, UNKNOWN_LABEL, FactorizerLossConfig, FactorizerModelConfig

ROOT = Path(__file__).resolve().parents[2]


def test_schema_imports_without_torch():
    code = "import sys, schemas.factorizer; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or "schemas.factorizer imported torch"


def test_defaults_fit_the_shipped_codec():
    cfg = FactorizerModelConfig(name="f")
    assert FACTOR_NAMES == ("speaker", "style", "environment", "channel") and UNKNOWN_LABEL == -100
    assert cfg.latent_dim == 4 and cfg.latent_bound >= 1.2  # the [8,5,5,5] x 2-stage grid spans [-1.2, 1.2]
    assert cfg.content_levels == [5, 5, 5, 5] and cfg.content_dim == 4
    assert cfg.factor_dims == {"speaker": 64, "style": 16, "environment": 16, "channel": 16}
    assert list(cfg.num_classes) == list(FACTOR_NAMES) and set(cfg.num_classes.values()) == {0}
    assert FactorizerLossConfig().swap_global_weight > 0


@pytest.mark.parametrize("update,message", [
    ({"content_levels": [5, 5, 5]}, "content_levels has 3 entries, content_dim is 4"),
    ({"content_levels": [5, 1, 5, 5]}, "every content level must be >= 2"),
    ({"content_dim": 2, "content_levels": [300, 300]}, "does not fit uint16"),
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"speaker_dim": -1}, "speaker_dim"),
    ({"num_speakers": -1}, "num_speakers"),
    ({"dropout": 1.0}, "dropout"),
    ({"latent_bound": 0}, "latent_bound"),
    ({"name": "Bad Name"}, "name"),
    ({"hidden_size": 8}, "hidden_size"),
])
def test_bad_model_config_names_the_problem(update, message):
    with pytest.raises(ValidationError, match=message):
        FactorizerModelConfig.model_validate({"name": "f", **update})


def test_bad_loss_config_is_refused():
    with pytest.raises(ValidationError, match="adversary_weight"):
        FactorizerLossConfig(adversary_weight=-1)
    with pytest.raises(ValidationError, match="swap_weight"):
        FactorizerLossConfig.model_validate({"swap_weight": 1})


def test_class_counts_come_from_label_vocabularies():
    cfg = FactorizerModelConfig(name="f", num_styles=7)
    sized = cfg.with_label_vocab({"speaker": ["a", "b", "c"], "channel": ["clean", "telephone"]})
    assert sized.num_classes == {"speaker": 3, "style": 0, "environment": 0, "channel": 2}
    assert sized.hidden_dim == cfg.hidden_dim and cfg.num_styles == 7  # a copy; the original is untouched
    with pytest.raises(ValueError, match=r"unknown factor\(s\) \['content'\]"):
        cfg.with_label_vocab({"content": ["x"]})


@pytest.mark.parametrize("update, message", [
    ({"training": {"parallel_pairs": 100}}, "give parallel_pairs and pairs_per_batch together"),
    ({"training": {"parallel_pairs": 100, "pairs_per_batch": 4}}, "parallel_l1_weight / parallel_mse_weight and"),
    ({"loss": {"parallel_l1_weight": 1.0}}, "weight the parallel term and give pairs, or neither"),
    ({"training": {"batch_size": 4, "parallel_pairs": 9, "pairs_per_batch": 5}}, "exceeds batch_size 4"),
])
def test_parallel_targets_need_pairs_and_a_weight_together(update, message):
    from schemas.train_factorizer import TrainFactorizerConfig

    with pytest.raises(ValidationError, match=message):
        TrainFactorizerConfig.model_validate({"preset": "factorizer_tiny_test", **update})
    ok = {"preset": "factorizer_tiny_test", "training": {"parallel_pairs": 9, "pairs_per_batch": 4},
          "loss": {"parallel_l1_weight": 1.0}}
    assert TrainFactorizerConfig.model_validate(ok).training.pairs_per_batch == 4
