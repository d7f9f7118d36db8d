"""Training steps per second of a CTC recognizer preset on one CPU thread (batch 16 x 200 frames, 60 targets).

Run: ``.venv/bin/python bench/ctc_speed.py [preset] [--steps N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `models` importable
    sys.path.insert(0, str(REPO_ROOT))

from models.ctc import CtcBatch, build_ctc, build_ctc_loss, resolve_ctc_config  # noqa: E402

__all__ = ["measure_steps_per_s"]


def measure_steps_per_s(preset: str = "ctc_small", *, steps: int = 30, batch: int = 16, frames: int = 200,
                        target_length: int = 60, threads: int = 1, seed: int = 0) -> float:
    """Forward + CTC loss + backward + AdamW step on random codes; mean over ``steps`` after 3 warm-up steps."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = resolve_ctc_config(preset)
    model, loss_fn = build_ctc(cfg).train(), build_ctc_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    b = CtcBatch(codes=torch.randint(0, cfg.codebook_size, (batch, frames, cfg.num_stages), dtype=torch.int32),
                 lengths=torch.full((batch,), frames), targets=torch.randint(1, cfg.num_classes, (batch, target_length)),
                 target_lengths=torch.full((batch,), target_length))
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = loss_fn(model(b.codes, b.lengths), b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="ctc_small")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"{args.preset}: {measure_steps_per_s(args.preset, steps=args.steps):.1f} train steps/s "
          "(1 thread, batch 16 x 200 frames, 60 targets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
