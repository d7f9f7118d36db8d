"""Effects do what their labels say: reverb decays, SNR is what was asked, telephone is band-limited, codecs run."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pipelines.seed import codecs
from pipelines.seed.effects import (ROOM_PRESETS, clip_hard, make_colored_noise, measure_rt60_s, mix_at_snr, plan_room,
                                    reduce_bit_depth, render_room, telephone_band)
from tests.factories import speechlike

RATE = 16000


def _band_energy(x: np.ndarray, rate: int, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum())


def test_room_render_decays_longer_than_dry_input():
    rng = np.random.default_rng(0)
    dry = speechlike(1.0, RATE)
    dry[-RATE // 4:] = 0.0  # a quarter second of silence at the end: only reverb can fill it
    room = plan_room("classroom", rng)
    wet, labels = render_room(dry, RATE, room)
    assert labels["room"] == "classroom" and labels["room_volume_m3"] == pytest.approx(9.0 * 7.0 * 3.2)
    assert 0.4 < labels["rt60_s"] < 1.6  # measured on the RIR used; target 0.8 s
    tail = slice(dry.size - RATE // 8, dry.size)
    assert np.sum(dry[tail] ** 2) == 0.0
    assert np.sum(wet[tail] ** 2) > 1e-4 * np.sum(wet ** 2)
    assert wet.size > dry.size
    impulse = np.zeros(RATE, dtype=np.float32)
    impulse[0] = 1.0
    response, _ = render_room(impulse, RATE, room)
    assert measure_rt60_s(response.astype(np.float64), RATE) == pytest.approx(labels["rt60_s"], rel=0.25)


def test_every_room_preset_renders():
    rng = np.random.default_rng(1)
    for name in ROOM_PRESETS:
        _, labels = render_room(speechlike(0.3, RATE), RATE, plan_room(name, rng))
        assert labels["rt60_s"] > 0.1


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_at_10_db_snr_measures_10_db(kind):
    clean = speechlike(2.0, RATE)
    noise = make_colored_noise(kind, clean.size, np.random.default_rng(3))
    mixed, scaled = mix_at_snr(clean, noise, 10.0)
    added = mixed.astype(np.float64) - clean
    snr_db = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(added ** 2))
    assert snr_db == pytest.approx(10.0, abs=0.05)
    assert np.allclose(added, scaled, atol=1e-6)


def test_pink_and_brown_noise_tilt_downwards():
    rng = np.random.default_rng(4)
    for kind, min_ratio in (("pink", 3.0), ("brown", 30.0)):
        x = make_colored_noise(kind, RATE * 2, rng)
        assert _band_energy(x, RATE, 100, 1000) > min_ratio * _band_energy(x, RATE, 4000, 4900)


def test_telephone_band_removes_energy_above_3400_hz():
    x = make_colored_noise("white", RATE * 2, np.random.default_rng(5))
    y, rate, labels = telephone_band(x, RATE)
    assert rate == 8000 and labels == {"band_low_hz": 300.0, "band_high_hz": 3400.0}
    share_in = _band_energy(x, RATE, 3500, 4000) / _band_energy(x, RATE, 0, 4000)
    share_out = _band_energy(y, 8000, 3500, 4000) / _band_energy(y, 8000, 0, 4000)
    assert share_out < share_in / 100  # >= 20 dB down
    assert _band_energy(y, 8000, 0, 200) < _band_energy(y, 8000, 1000, 1200) / 30


def test_clipping_and_bit_depth_do_what_their_labels_say():
    x = speechlike(1.0, RATE)
    y, labels = clip_hard(x, 0.25)
    assert labels == {"clip_threshold": 0.25}
    assert np.mean(np.abs(y) >= 0.989) > 0.05
    z, labels = reduce_bit_depth(x, 4)
    assert labels == {"bit_depth": 4} and len(np.unique(z)) <= 16


def _spy(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(codecs.subprocess, "run", run)
    return calls


def test_codec2_pass_runs_c2enc_and_c2dec(monkeypatch):
    calls = _spy(monkeypatch)
    x = speechlike(1.5, RATE)
    y, rate, labels = codecs.codec2_roundtrip(x, RATE, 1200)
    assert [c[0].rsplit("/", 1)[-1] for c in calls] == ["c2enc", "c2dec"] and calls[0][1] == "1200"
    assert rate == 8000 and labels["codec"] == "codec2" and labels["codec_bitrate_bps"] == 1200
    assert abs(y.size - 1.5 * 8000) <= 320  # whole 40 ms frames
    assert np.sqrt(np.mean(y ** 2)) > 0.01  # a vocoder output, not silence


def test_opus_pass_runs_opusenc_and_opusdec(monkeypatch):
    calls = _spy(monkeypatch)
    x = speechlike(1.5, RATE)
    y, rate, labels = codecs.opus_roundtrip(x, RATE, 6000)
    assert [c[0].rsplit("/", 1)[-1] for c in calls] == ["opusenc", "opusdec"]
    assert rate == RATE and y.size == x.size and labels == {"codec": "opus", "codec_bitrate_bps": 6000}
    assert not np.allclose(y, x, atol=1e-3)
    assert np.corrcoef(x, y)[0, 1] > 0.5
