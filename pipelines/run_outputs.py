"""A training run's files under its ``output_dir``: checkpoints, ``metrics.jsonl`` and ``loss_curve.png``.

Shared by every training job (codec, factorizer, ...). ``output_dir`` is a
local path or an ``s3://`` URI (through fsspec), so a cluster run needs no
code change. Every file is written to a scratch path first and then published
with one atomic step (a rename locally, one PUT on S3): a run killed at any
moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from schemas.storage import StorageConfig, is_remote

__all__ = ["RunOutputs", "checkpoint_paths", "LATEST"]

LATEST = "latest.pt"


def checkpoint_paths(output_dir: str) -> dict[str, str]:
    """Where a run's outputs go under ``output_dir``."""
    root = output_dir.rstrip("/")
    return {"dir": f"{root}/checkpoints", "latest": f"{root}/checkpoints/{LATEST}",
            "metrics": f"{root}/metrics.jsonl", "curve": f"{root}/loss_curve.png"}


class RunOutputs:
    """Reads and writes a run's files under ``output_dir`` (local or remote)."""

    def __init__(self, output_dir: str, storage: StorageConfig) -> None:
        import fsspec

        self.root = output_dir.rstrip("/")
        self.paths = checkpoint_paths(self.root)
        self.remote = is_remote(self.root)
        if self.remote:
            self.fs, _ = fsspec.core.url_to_fs(self.root, **storage.fsspec_options())
        else:
            self.fs = fsspec.filesystem("file")
            Path(self.paths["dir"]).mkdir(parents=True, exist_ok=True)

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(uri))

    def fetch(self, uri: str) -> Path:
        """A local path holding ``uri``'s bytes (the file itself when local)."""
        if not self.remote:
            return Path(uri)
        local = Path(tempfile.mkdtemp(prefix="lsm-ckpt-")) / Path(uri).name
        self.fs.get(uri, str(local))
        return local

    def publish(self, local: Path, uri: str) -> None:
        """Move a finished local file to ``uri`` atomically (rename locally; one PUT on S3)."""
        if self.remote:
            self.fs.put(str(local), uri)
            local.unlink(missing_ok=True)
        else:
            os.replace(local, uri)

    def scratch(self, name: str) -> Path:
        """A temp path to write ``name`` into before publishing (same directory when local: atomic rename)."""
        base = Path(tempfile.mkdtemp(prefix="lsm-out-")) if self.remote else Path(self.paths["dir"])
        return base / f".{name}.{os.getpid()}.tmp"

    def step_checkpoints(self) -> list[str]:
        found = [p for p in self.fs.ls(self.paths["dir"], detail=False) if Path(p).name.startswith("step_")]
        return sorted(("s3://" + p if self.remote and not p.startswith("s3://") else p) for p in found)

    def read_text(self, uri: str) -> str | None:
        return self.fs.cat_file(uri).decode() if self.exists(uri) else None

    def publish_checkpoint(self, scratch: Path, step: int, keep: int) -> None:
        """Publish a checkpoint written to ``scratch`` as ``latest.pt`` and ``step_<step>.pt``; keep the last ``keep``.

        ``latest.pt`` goes first: a kill between the two writes still leaves a resumable latest.
        """
        name = f"step_{step:07d}.pt"
        latest_scratch = self.scratch(LATEST)
        latest_scratch.write_bytes(scratch.read_bytes())
        self.publish(latest_scratch, self.paths["latest"])
        self.publish(scratch, f"{self.paths['dir']}/{name}")
        for old in self.step_checkpoints()[:-keep]:
            self.fs.rm(old)

    def read_metrics(self) -> list[dict]:
        text = self.read_text(self.paths["metrics"])
        return [json.loads(line) for line in (text or "").splitlines() if line.strip()]

    def write_metrics(self, history: list[dict]) -> None:
        scratch = self.scratch("metrics.jsonl")
        scratch.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
        self.publish(scratch, self.paths["metrics"])

    def plot_curve(self, history: list[dict], *, title: str, ylabel: str = "loss") -> None:
        """Train loss (per logged window) and valid loss against step, log scale."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = [(r["step"], r["total"]) for r in history if "total" in r]
        valid = [(r["step"], r["valid_total"]) for r in history if "valid_total" in r]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if train:
            ax.plot(*zip(*train), lw=0.8, label="train (mean per log window)")
        if valid:
            ax.plot(*zip(*valid), "o-", ms=3, label="valid (fixed clips)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        scratch = self.scratch("loss_curve.png")
        fig.savefig(scratch, format="png")
        plt.close(fig)
        self.publish(scratch, self.paths["curve"])
