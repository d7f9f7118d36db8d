"""Render one planned item to its file: get the clean signal, apply room/noise/channel, encode, write.

A pure function of the item (its seed drives every remaining random draw),
run in worker processes. It returns the manifest row, with what only
rendering can know (duration, measured RT60, the synthesizer command).
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from pipelines.seed.codecs import codec2_roundtrip, opus_roundtrip
from pipelines.seed.effects import (clip_hard, equalize, loop_to_length, make_babble, make_colored_noise, mix_at_snr,
                                    reduce_bit_depth, render_room, resample, telephone_band)
from pipelines.seed.formats import encode_audio, write_bytes_atomic
from pipelines.seed.items import ChannelStep, EffectPlan, RenderItem, Source, SynthSource
from pipelines.seed.voices import synthesize

__all__ = ["load_source", "apply_effects", "render_item"]


def load_source(source: Source) -> tuple[np.ndarray, int, str]:
    """(float32 mono samples, rate, origin) of a recording or a synthesized sentence."""
    if isinstance(source, SynthSource):
        return synthesize(source)
    if source.raw_rate_hz:
        samples = np.fromfile(source.path, dtype="<i2").astype(np.float32) / 32768.0
        return samples, source.raw_rate_hz, source.path
    samples, rate = sf.read(source.path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate, source.path


def _apply_channel(x: np.ndarray, sr: int, step: ChannelStep) -> tuple[np.ndarray, int, dict, str]:
    """One channel step; returns (signal, rate, labels, chain name of the step)."""
    if step.kind == "telephone":
        y, sr, labels = telephone_band(x, sr, low_hz=step.param("band_low_hz"), high_hz=step.param("band_high_hz"))
        return y, sr, labels, "telephone"
    if step.kind == "eq":
        y, labels = equalize(x, sr, low_hz=step.param("band_low_hz"), high_hz=step.param("band_high_hz"),
                             peak_hz=step.param("eq_peak_hz"), peak_gain_db=step.param("eq_peak_gain_db"))
        return y, sr, labels, "eq"
    if step.kind == "clipping":
        y, labels = clip_hard(x, step.param("clip_threshold"))
        return y, sr, labels, "clipping"
    if step.kind == "low_bit_depth":
        y, labels = reduce_bit_depth(x, int(step.param("bit_depth")))
        return y, sr, labels, "low_bit_depth"
    if step.kind == "codec2":
        y, sr, labels = codec2_roundtrip(x, sr, int(step.param("codec_bitrate_bps")))
        return y, sr, labels, f"codec2_{labels['codec2_mode'].lower()}"
    if step.kind == "opus":
        y, sr, labels = opus_roundtrip(x, sr, int(step.param("codec_bitrate_bps")))
        return y, sr, labels, f"opus_{int(step.param('codec_bitrate_bps')) // 1000}k"
    raise ValueError(f"unknown channel step {step.kind!r}")


def apply_effects(samples: np.ndarray, sample_rate_hz: int, plan: EffectPlan,
                  rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
    """Room, then noise, then channel chain; returns (signal, rate, labels of everything applied)."""
    x, sr = samples, sample_rate_hz
    labels: dict = {}
    env = []
    if plan.room is not None:
        x, room_labels = render_room(x, sr, plan.room)
        labels.update(room_labels)
        env.append("room")
    if plan.noise is not None:
        noise_plan = plan.noise
        if noise_plan.noise_type == "babble":
            talkers = []
            for donor in noise_plan.donors:
                d, dsr, _ = load_source(donor)
                talkers.append(resample(d, dsr, sr))
            noise = make_babble(talkers, x.size, rng)
        elif noise_plan.noise_type == "ambience":
            amb, asr, _ = load_source(noise_plan.ambience)
            noise = loop_to_length(resample(amb, asr, sr), x.size, rng)
            labels["noise_origin"] = noise_plan.ambience.path
        else:
            noise = make_colored_noise(noise_plan.noise_type, x.size, rng)
        x, _ = mix_at_snr(x, noise, noise_plan.snr_db)
        kind = noise_plan.noise_type if noise_plan.noise_type != "ambience" else f"ambience:{noise_plan.ambience_name}"
        labels.update({"noise_type": kind, "noise_snr_db": round(noise_plan.snr_db, 2)})
        env.append("noise")
    labels["environment"] = "+".join(env) if env else "clean"
    chain = []
    for step in plan.channel:
        x, sr, step_labels, name = _apply_channel(x, sr, step)
        labels.update(step_labels)
        chain.append(name)
    labels["channel"] = "+".join(chain) if chain else "clean"
    return x, sr, labels


def _to_channels(x: np.ndarray, channels: int, seed: int) -> np.ndarray:
    """Mono as is; stereo as dual-mono with a small inter-channel delay and gain (as a spaced pair hears it)."""
    if channels == 1:
        return x
    delay = 1 + seed % 8
    right = np.concatenate([np.zeros(delay, dtype=np.float32), x[:-delay]]) * 0.9
    return np.stack([x, right], axis=1)


def render_item(item: RenderItem, root: Path) -> dict:
    """Write ``item`` under ``root`` and return its manifest row (``path`` relative to ``root``)."""
    out = root / item.rel_path
    row = {"path": item.rel_path, **item.labels}
    if item.encoding is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        shutil.copyfile(item.source.path, tmp)
        tmp.replace(out)
        info = sf.info(str(out))
        row.update(duration_s=round(info.frames / info.samplerate, 3), sample_rate_hz=info.samplerate,
                   num_channels=info.channels)
        return row
    rng = np.random.default_rng(item.seed)
    x, sr, origin = load_source(item.source)
    if item.effects is not None:
        x, sr, effect_labels = apply_effects(x, sr, item.effects, rng)
        row.update(effect_labels)
    if isinstance(item.source, SynthSource):
        row["origin"] = origin
    enc = item.encoding
    x = resample(x, sr, enc.sample_rate_hz)
    data = encode_audio(_to_channels(x, enc.channels, item.seed), enc.sample_rate_hz, enc.encoding,
                        serial=zlib.crc32(item.rel_path.encode()))
    write_bytes_atomic(out, data)
    row.update(duration_s=round(x.size / enc.sample_rate_hz, 3), sample_rate_hz=enc.sample_rate_hz,
               num_channels=enc.channels)
    return row
