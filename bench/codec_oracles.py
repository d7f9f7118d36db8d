"""What the codec's metrics reward: oracle STFT manipulations of held-out clips, scored like the codec evaluation.

Why: a 1 kbps codec cannot send phase, and a decoder trained with magnitude
losses only predicts a magnitude and some phase. These rows say how far
each part alone can take PESQ-WB, STOI and mel distance on the same clips:
the true STFT magnitude with a random phase (a perfect magnitude, no phase
model), with Griffin-Lim phase (a consistent phase recovered from it), and
the true phase with a magnitude smoothed over frequency (the harmonics
blurred away, as a regression to the mean tends to do). STFT: 640-point
Hann, hop 160 (the spectral codec's framing).

    .venv/bin/python bench/codec_oracles.py --clips 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from pipelines.eval.metrics import measure_mel_distance, measure_pesq_wb, measure_stoi  # noqa: E402
from pipelines.lance_io import read_test_clips  # noqa: E402

_N_FFT, _HOP = 640, 160
_WINDOW = torch.hann_window(_N_FFT)


def _stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, _N_FFT, _HOP, window=_WINDOW, return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(spec, _N_FFT, _HOP, window=_WINDOW, length=length)


def griffin_lim(magnitude: torch.Tensor, phase: torch.Tensor, length: int, iterations: int) -> torch.Tensor:
    """Plain Griffin-Lim: alternate projections onto consistent spectrograms, keeping ``magnitude``."""
    for _ in range(iterations):
        phase = _stft(_istft(torch.polar(magnitude, phase), length)).angle()
    return _istft(torch.polar(magnitude, phase), length)


def smooth_over_frequency(magnitude: torch.Tensor, bins: int) -> torch.Tensor:
    """Geometric mean over ``bins`` neighbouring frequency bins (a spectral envelope without harmonics)."""
    kernel = torch.ones(1, 1, bins) / bins
    log = torch.log(magnitude + 1e-5).T[:, None]  # [frames, 1, freq]
    return torch.exp(torch.nn.functional.conv1d(log, kernel, padding=bins // 2)[:, 0].T)


def oracles(seed: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> waveform -> manipulated waveform of the same length."""
    gen = torch.Generator().manual_seed(seed)

    def random_phase(x: torch.Tensor) -> torch.Tensor:
        mag = _stft(x).abs()
        return _istft(torch.polar(mag, torch.rand(mag.shape, generator=gen) * 2 * np.pi), x.numel())

    def gl32(x: torch.Tensor) -> torch.Tensor:
        mag = _stft(x).abs()
        return griffin_lim(mag, torch.rand(mag.shape, generator=gen) * 2 * np.pi, x.numel(), 32)

    def smoothed(x: torch.Tensor) -> torch.Tensor:
        spec = _stft(x)
        return _istft(torch.polar(smooth_over_frequency(spec.abs(), 9), spec.angle()), x.numel())

    return {"true magnitude, random phase": random_phase, "true magnitude, Griffin-Lim phase (32 it.)": gl32,
            "magnitude smoothed over 9 bins (~225 Hz), true phase": smoothed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake-root", default=str(REPO_ROOT / "data/lake"))
    parser.add_argument("--clips", type=int, default=40, help="first clips of the test split (scan order)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    clips = read_test_clips(args.lake_root, args.clips)
    if not clips:
        parser.error(f"no test-split clips of at least 0.5 s under {args.lake_root}")
    print(f"{len(clips)} test-split clips ({sum(c.size for c in clips) / 16000 / 60:.1f} min); medians")
    print("| oracle | PESQ-WB | STOI | mel distance |\n| --- | ---: | ---: | ---: |")
    for name, fn in oracles(args.seed).items():
        scores = []
        for clip in clips:
            out = fn(torch.from_numpy(clip)).numpy()
            scores.append((measure_pesq_wb(clip, out), measure_stoi(clip, out), measure_mel_distance(clip, out)))
        pesq, stoi, mel = (statistics.median(col) for col in zip(*scores))
        print(f"| {name} | {pesq:.2f} | {stoi:.3f} | {mel:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
