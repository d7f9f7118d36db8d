"""Room, noise and channel effects as pure functions; each returns the labels that describe what it did.

Labels are the point: the factorizer learns environment and channel from
them, so every parameter that shaped the signal is returned (measured where
it can be: the RT60 label is measured on the RIR actually used, not the
preset's target). Signals are float32 mono; rates change only where the
channel really is narrowband (telephone: 8 kHz).
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

from pipelines.seed.items import RoomPlan

__all__ = [
    "ROOM_PRESETS", "plan_room", "compute_rir", "measure_rt60_s", "render_room", "make_colored_noise", "make_babble",
    "loop_to_length", "mix_at_snr", "resample", "telephone_band", "equalize", "clip_hard", "reduce_bit_depth",
]

#: name -> (length, width, height in m; target RT60 in s)
ROOM_PRESETS: dict[str, tuple[tuple[float, float, float], float]] = {
    "small_office": ((4.0, 3.5, 2.7), 0.4),
    "living_room": ((5.5, 4.5, 2.6), 0.5),
    "bathroom": ((2.6, 2.0, 2.4), 0.7),
    "classroom": ((9.0, 7.0, 3.2), 0.8),
    "lecture_hall": ((20.0, 15.0, 7.0), 1.4),
}


def plan_room(name: str, rng: np.random.Generator) -> RoomPlan:
    """A preset room with a random talker and microphone position (>= 0.3 m from walls, >= 0.8 m apart)."""
    dims, rt60 = ROOM_PRESETS[name]
    margin = 0.3
    for _ in range(100):
        src = (rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin), rng.uniform(1.4, 1.8))
        mic = (rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin), rng.uniform(0.8, 1.5))
        if np.linalg.norm(np.subtract(src, mic)) >= 0.8:
            break
    return RoomPlan(name=name, dims_m=dims, rt60_target_s=rt60,
                    source_m=tuple(round(float(v), 3) for v in src), mic_m=tuple(round(float(v), 3) for v in mic))


def compute_rir(room: RoomPlan, sample_rate_hz: int) -> np.ndarray:
    """Image-source RIR of the shoebox (wall absorption from Sabine's formula for the target RT60)."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(room.rt60_target_s, list(room.dims_m))
    shoebox = pra.ShoeBox(list(room.dims_m), fs=sample_rate_hz, materials=pra.Material(absorption),
                          max_order=min(max_order, 40), air_absorption=False)
    shoebox.add_source(list(room.source_m))
    shoebox.add_microphone(list(room.mic_m))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


def measure_rt60_s(rir: np.ndarray, sample_rate_hz: int) -> float:
    """RT60 by Schroeder backward integration, extrapolated from the -5..-35 dB decay (T30)."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(energy / energy[0] + 1e-30)
    i5 = int(np.argmax(edc_db <= -5.0))
    i35 = int(np.argmax(edc_db <= -35.0))
    if i35 <= i5:
        return float("nan")
    slope_db_per_s = (edc_db[i35] - edc_db[i5]) / ((i35 - i5) / sample_rate_hz)
    return float(-60.0 / slope_db_per_s)


def render_room(samples: np.ndarray, sample_rate_hz: int, room: RoomPlan) -> tuple[np.ndarray, dict]:
    """Convolve with the room's RIR (the reverberant tail is kept); peak level matched to the dry input."""
    rir = compute_rir(room, sample_rate_hz)
    rt60_s = measure_rt60_s(rir, sample_rate_hz)
    if np.isfinite(rt60_s):  # the image-source RIR runs past -60 dB: keep the tail up to its measured RT60
        rir = rir[: max(int(rt60_s * sample_rate_hz * 1.1), 1)]
    wet = signal.fftconvolve(samples.astype(np.float64), rir)
    peak_in, peak_out = np.max(np.abs(samples)), np.max(np.abs(wet))
    if peak_out > 0:
        wet *= peak_in / peak_out
    dims = room.dims_m
    labels = {"room": room.name, "rt60_s": round(rt60_s, 3),
              "room_volume_m3": round(dims[0] * dims[1] * dims[2], 2)}
    return wet.astype(np.float32), labels


def make_colored_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) Gaussian noise with unit RMS."""
    white = rng.standard_normal(num_samples)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.arange(spectrum.size, dtype=np.float64)
        f[0] = 1.0
        exponent = {"pink": 0.5, "brown": 1.0}[kind]
        spectrum /= f ** exponent
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=num_samples)
    noise = noise - noise.mean()
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def loop_to_length(samples: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Tile a recording (from a random start) to exactly ``num_samples``."""
    if samples.size == 0:
        return np.zeros(num_samples, dtype=np.float32)
    start = int(rng.integers(0, samples.size))
    reps = int(np.ceil((num_samples + start) / samples.size))
    return np.tile(samples, reps)[start:start + num_samples].astype(np.float32)


def make_babble(talkers: list[np.ndarray], num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of several utterances, each looped from a random offset and at equal RMS (unit RMS out)."""
    out = np.zeros(num_samples, dtype=np.float64)
    for talk in talkers:
        looped = loop_to_length(talk, num_samples, rng).astype(np.float64)
        rms = np.sqrt(np.mean(looped ** 2))
        if rms > 0:
            out += looped / rms
    rms = np.sqrt(np.mean(out ** 2))
    return (out / rms if rms > 0 else out).astype(np.float32)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Add ``noise`` scaled so that mean power(clean) / power(noise) is ``snr_db``; returns (mix, scaled noise).

    Power is over the whole file (pauses included): what a label consumer can
    recompute from the clean signal and the mix.
    """
    p_clean = float(np.mean(clean.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    scale = np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10))) if p_noise > 0 else 0.0
    scaled = (noise * scale).astype(np.float32)
    return (clean + scaled).astype(np.float32), scaled


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """High-quality resampling (soxr); identity when the rates match."""
    if from_hz == to_hz:
        return samples.astype(np.float32)
    return soxr.resample(samples.astype(np.float32), from_hz, to_hz, quality="HQ").astype(np.float32)


def telephone_band(samples: np.ndarray, sample_rate_hz: int, *, low_hz: float = 300.0,
                   high_hz: float = 3400.0) -> tuple[np.ndarray, int, dict]:
    """Narrowband telephone: resample to 8 kHz, then a sharp (elliptic) 300-3400 Hz band-pass."""
    x = resample(samples, sample_rate_hz, 8000)
    low = signal.ellip(4, 0.5, 40, low_hz, btype="highpass", fs=8000, output="sos")
    high = signal.ellip(8, 0.5, 60, high_hz, btype="lowpass", fs=8000, output="sos")
    y = signal.sosfilt(high, signal.sosfilt(low, x))
    return y.astype(np.float32), 8000, {"band_low_hz": low_hz, "band_high_hz": high_hz}


def _peaking_sos(freq_hz: float, gain_db: float, q: float, fs: int) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one SOS row."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq_hz / fs
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def equalize(samples: np.ndarray, sample_rate_hz: int, *, low_hz: float, high_hz: float, peak_hz: float,
             peak_gain_db: float) -> tuple[np.ndarray, dict]:
    """A cheap-microphone EQ: high-pass, low-pass and one peaking band."""
    nyq = sample_rate_hz / 2
    high_hz = min(high_hz, 0.9 * nyq)
    peak_hz = min(peak_hz, 0.8 * nyq)
    sos = np.vstack([
        signal.butter(2, low_hz, btype="highpass", fs=sample_rate_hz, output="sos"),
        signal.butter(4, high_hz, btype="lowpass", fs=sample_rate_hz, output="sos"),
        _peaking_sos(peak_hz, peak_gain_db, 1.0, sample_rate_hz),
    ])
    y = signal.sosfilt(sos, samples.astype(np.float64))
    labels = {"band_low_hz": round(low_hz, 1), "band_high_hz": round(high_hz, 1), "eq_peak_hz": round(peak_hz, 1),
              "eq_peak_gain_db": round(peak_gain_db, 2)}
    return y.astype(np.float32), labels


def clip_hard(samples: np.ndarray, threshold: float) -> tuple[np.ndarray, dict]:
    """Overdrive: gain 1/threshold on the peak-normalized signal, then hard clipping at full scale."""
    peak = float(np.max(np.abs(samples))) or 1.0
    y = np.clip(samples / peak / threshold, -1.0, 1.0) * 0.99
    return y.astype(np.float32), {"clip_threshold": round(threshold, 3)}


def reduce_bit_depth(samples: np.ndarray, bits: int) -> tuple[np.ndarray, dict]:
    """Quantize the peak-normalized signal to ``bits`` bits (mid-tread), as a cheap ADC would."""
    peak = float(np.max(np.abs(samples))) or 1.0
    steps = 2 ** (bits - 1)
    y = np.clip(np.round(samples / peak * steps), -steps, steps - 1) / steps
    return y.astype(np.float32), {"bit_depth": int(bits)}
