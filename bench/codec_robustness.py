"""Do a codec's codes survive changes no listener hears? Share of codes unchanged, per checkpoint.

Why it matters: a query by audio file ("find this clip"), a re-ingest of the
same speech at another sample rate, and the recombination gates all encode
audio that went through a resampler or a 16-bit file on the way. A codec
whose codes move under such changes makes the same speech look like other
speech to everything downstream. The spectral codec's first version kept
only 17 % of its codes through a 22.05 kHz round trip (its encoder read the
bins where the resampler's anti-alias filter rolls off), which is why this
bench exists.

Perturbations (each on the same held-out clips, test split, codec training never read them):

- ``22.05 kHz round trip``: 16 -> 22.05 -> 16 kHz through 16-bit PCM (soxr HQ), as a user's file arrives;
- ``44.1 kHz round trip``: the same through 44.1 kHz;
- ``noise -80 dBFS``: white noise of RMS 1e-4 added;
- ``gain -1 dB``: the clip scaled by 0.891 (a loudness normalization).

    .venv/bin/python bench/codec_robustness.py --clips 60 --write-results
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import soxr  # noqa: E402
import torch  # noqa: E402

from models.codec import load_checkpoint  # noqa: E402
from pipelines.encode_stage import encode_samples  # noqa: E402
from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402
from pipelines.lance_io import read_test_clips  # noqa: E402

MARKER = "codec-robustness"
DEFAULT_CHECKPOINTS = ("checkpoints/codec_50hz_2x8555.pt", "checkpoints/codec_50hz_2x8555_stft_fullband.pt",
                       "checkpoints/codec_50hz_2x8555_stft.pt")
_RATE = 16000


def round_trip(rate_hz: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """16 kHz -> ``rate_hz`` as 16-bit PCM -> 16 kHz, trimmed to the input's length."""
    def perturb(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        up = soxr.resample(x, _RATE, rate_hz, quality="HQ")
        up = np.clip(np.rint(np.clip(up, -1.0, 1.0) * 32767.0), -32768, 32767) / 32767.0
        back = soxr.resample(up.astype(np.float32), rate_hz, _RATE, quality="HQ")[: x.size]
        return np.pad(back, (0, x.size - back.size)).astype(np.float32)
    return perturb


def white_noise(rms: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def perturb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (x + rms * rng.standard_normal(x.size)).astype(np.float32)
    return perturb


def gain(db: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def perturb(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return (x * np.float32(10.0 ** (db / 20.0))).astype(np.float32)
    return perturb


PERTURBATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "22.05 kHz round trip": round_trip(22050),
    "44.1 kHz round trip": round_trip(44100),
    "noise -80 dBFS": white_noise(1e-4),
    "gain -1 dB": gain(-1.0),
}


def unchanged_shares(codec, clips: list[np.ndarray], perturb, seed: int) -> list[float]:
    """Per clip: the share of (frame, stage) codes equal before and after ``perturb``."""
    rng = np.random.default_rng(seed)
    out = []
    with torch.inference_mode():
        for clip in clips:
            a, b = encode_samples(codec, clip), encode_samples(codec, perturb(clip, rng))
            out.append(float(np.mean(a == b)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake-root", default=str(REPO_ROOT / "data/lake"))
    parser.add_argument("--checkpoint", action="append", help=f"repeatable; default: {', '.join(DEFAULT_CHECKPOINTS)}")
    parser.add_argument("--clips", type=int, default=60, help="first clips of the test split (scan order)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-results", action="store_true", help=f"replace the {MARKER} block of bench/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    clips = read_test_clips(args.lake_root, args.clips)
    if not clips:
        parser.error(f"no test-split clips of at least 0.5 s under {args.lake_root}")
    checkpoints = args.checkpoint or list(DEFAULT_CHECKPOINTS)
    lines = [
        "## Codec robustness: codes under inaudible changes (issue #3)", "",
        f"Command: `.venv/bin/python bench/codec_robustness.py --clips {args.clips}"
        + "".join(f" --checkpoint {c}" for c in args.checkpoint or []) + " --write-results`  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(REPO_ROOT)}; {cpu_model()}  ",
        f"Clips: {len(clips)} test-split segments of `{Path(args.lake_root).name}` "
        f"({sum(c.size for c in clips) / _RATE / 60:.1f} min), never read by codec training", "",
        "Share of codes (frames x stages) unchanged after the change, median over clips (10th percentile). "
        "The perturbations are defined in the script's docstring.", "",
        "| checkpoint | codec id | " + " | ".join(PERTURBATIONS) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in PERTURBATIONS) + " |",
    ]
    for path in checkpoints:
        codec, _, meta = load_checkpoint(REPO_ROOT / path if not Path(path).is_absolute() else path)
        cells = []
        for i, perturb in enumerate(PERTURBATIONS.values()):
            shares = unchanged_shares(codec, clips, perturb, args.seed + i)
            cells.append(f"{100 * statistics.median(shares):.1f} % ({100 * float(np.percentile(shares, 10)):.1f})")
        lines.append(f"| `{path}` | {meta.architecture_id} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    body = "\n".join(lines)
    if args.write_results:
        replace_marked_section(REPO_ROOT / "bench" / "RESULTS.md", MARKER, body)
    else:
        print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
