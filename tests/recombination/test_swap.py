"""Swaps in latent space: each output takes exactly the factors its plan row names; factors ignore batch padding."""

from __future__ import annotations

import numpy as np
import torch

from models.codec import build_codec, codec_tiny_test
from models.factorizer import build_factorizer, factorizer_tiny_test
from recombination.swap import factorize_codes, latent_scores, recombine


def _models():
    torch.manual_seed(0)
    return build_factorizer(factorizer_tiny_test()).eval(), build_codec(codec_tiny_test()).eval()


def _codes(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, size=(frames, 2)).astype(np.uint16)


def test_a_segments_factors_do_not_depend_on_its_batch():
    factorizer, codec = _models()
    alone = factorize_codes(factorizer, codec, [_codes(30, 1)])
    batch = factorize_codes(factorizer, codec, [_codes(30, 1), _codes(70, 2)])
    for name, vec in alone.vectors.items():
        torch.testing.assert_close(batch.vectors[name][0], vec[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.content[0, :, :30], alone.content[0], atol=1e-5, rtol=0)


def test_each_output_takes_the_named_donors_factors_and_keeps_its_content():
    factorizer, codec = _models()
    f = factorize_codes(factorizer, codec, [_codes(30, 1), _codes(50, 2), _codes(40, 3)])
    out = recombine(factorizer, codec, f, content_rows=[0, 2], donor_rows={"speaker": [1, 0], "environment": [2, 1]})
    assert [c.shape for c in out.codes] == [(30, 2), (40, 2)] and out.codes[0].dtype == np.uint16
    assert torch.equal(out.put_in["speaker"], f.vectors["speaker"][[1, 0]])
    assert torch.equal(out.put_in["environment"], f.vectors["environment"][[2, 1]])
    assert torch.equal(out.put_in["style"], f.vectors["style"][[0, 2]])  # not varied: the content row's own
    assert torch.equal(out.content[1, :, :40], f.content[2, :, :40])
    scores = latent_scores(factorizer, out, f.vectors["speaker"][[0, 2]])
    assert set(scores) == {"factor_speaker_target_sim", "factor_speaker_source_sim", "factor_style_sim",
                           "factor_environment_sim", "factor_channel_sim", "content_agreement"}
    assert all(v.shape == (2,) and v.dtype == np.float32 for v in scores.values())
    assert np.all((scores["content_agreement"] >= 0) & (scores["content_agreement"] <= 1))


def test_without_a_swap_the_output_is_the_factorizers_reconstruction():
    factorizer, codec = _models()
    codes = [_codes(30, 1), _codes(50, 2)]
    f = factorize_codes(factorizer, codec, codes)
    out = recombine(factorizer, codec, f, content_rows=[1], donor_rows={})
    lengths = torch.tensor([50])
    with torch.inference_mode():
        latent = factorizer.decode(factorizer.encode(codec.codes_to_latent(
            torch.from_numpy(codes[1].astype(np.int64))[None]), lengths))
    np.testing.assert_array_equal(out.codes[0], codec.latent_to_codes(latent)[0].numpy().astype(np.uint16))
