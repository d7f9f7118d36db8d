"""Phoneme targets for real training-input items (a tiny Lance lake, no Ray), fed to the CTC recognizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.ctc import CtcBatch, build_ctc, build_ctc_loss, ctc_tiny_test
from pipelines.ctc_targets import build_phoneme_targets
from pipelines.phonemes import Phonemizer
from pipelines.train_input import index_training_rows, plan_epoch, read_training_batch
from schemas.ctc import CtcModelConfig
from schemas.factorizer import UNKNOWN_LABEL
from schemas.train_input import parse_train_input_config
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.train_input_lake import CODEC, train_input_lake


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    lake, _, _ = train_input_lake(tmp_path_factory.mktemp("ctc_targets"))
    return index_training_rows(parse_train_input_config(
        {"lake_root": lake, "codec_id": CODEC, "max_frames": 40, "synthetic_per_real": 1}))


def test_targets_of_real_and_synthetic_items(index, tmp_path):
    ph = Phonemizer(cache_dir=tmp_path)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], ph)
    assert ph.espeak_calls == 2                                 # one per language (en, cs), each pair once
    assert len(targets.table) == 4 and not targets.skipped_languages   # 4 (language, transcript) pairs
    plan = plan_epoch(index, 0)
    batch = read_training_batch({n: plan.column(n).to_numpy() for n in plan.column_names},
                                sources={n: (index.uris[n], index.versions[n]) for n in ("latents", "synthetic")},
                                max_frames=40, num_stages=index.num_stages)
    ids, lengths = targets.for_batch(batch)
    assert ids.shape[0] == len(batch["codes"]) and (lengths > 0).all()
    for i in range(len(lengths)):
        language = index.vocab["language"][batch["language"][i]]
        transcript = index.vocab["transcript"][batch["transcript"][i]]
        expect = targets.inventory.encode(ph([transcript], language)[0])
        assert ids[i, :lengths[i]].tolist() == expect and (ids[i, lengths[i]:] == 0).all()
    # the recognizer trains on exactly this batch (the test lake's synthetic codes are >= 2000: a wide codebook)
    cfg = CtcModelConfig.model_validate({**ctc_tiny_test().with_num_classes(targets.inventory.num_classes)
                                        .model_dump(), "codebook_size": 4096})
    model = build_ctc(cfg)
    b = CtcBatch(codes=torch.from_numpy(batch["codes"].astype(np.int32)), lengths=torch.from_numpy(batch["lengths"]),
                 targets=torch.from_numpy(ids), target_lengths=torch.from_numpy(lengths))
    loss = build_ctc_loss()(model(b.codes, b.lengths), b)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0


def test_unknown_labels_and_languages_give_no_target(index):
    ph = Phonemizer()
    targets = build_phoneme_targets(index.vocab, [index.real], ph)
    ids, lengths = targets.lookup(np.array([UNKNOWN_LABEL, 0]), np.array([0, UNKNOWN_LABEL]))
    assert lengths.tolist() == [0, 0] and ids.shape == (2, 1)
    vocab = {**index.vocab, "language": ["xx-unknown" if v == "cs" else v for v in index.vocab["language"]]}
    partial = build_phoneme_targets(vocab, [index.real], ph, inventory=targets.inventory)
    assert partial.skipped_languages == {"xx-unknown": 2} and len(partial.table) == 2
    assert partial.inventory == targets.inventory
