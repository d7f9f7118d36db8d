"""What the last build wrote: per file its spec hash, size and manifest row (``<root>/.build/ledger.json``).

Why: a re-run with the same config must rewrite nothing (same spec hash, file
present with the recorded size: reuse the recorded row), a changed item must
be rebuilt, and files no longer planned must go. The ledger is saved every
few hundred items, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.seed.formats import write_bytes_if_changed

__all__ = ["Ledger"]

_VERSION = 1


class Ledger:
    """Spec hashes and rows of built files, plus digests of the derived outputs (shards, bad inputs)."""

    def __init__(self, path: Path, data: dict | None = None):
        self.path = path
        data = data if data and data.get("version") == _VERSION else {}
        self.files: dict[str, dict] = data.get("files", {})
        self.extras: dict[str, object] = data.get("extras", {})

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """Read the ledger (an unreadable or missing one is empty: everything is rebuilt)."""
        try:
            return cls(path, json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return cls(path)

    def is_current(self, root: Path, rel_path: str, spec: str) -> bool:
        """True when ``rel_path`` was built from ``spec`` and is still on disk with the same size."""
        entry = self.files.get(rel_path)
        if entry is None or entry.get("spec") != spec:
            return False
        path = root / rel_path
        return path.exists() and path.stat().st_size == entry.get("size")

    def record(self, rel_path: str, spec: str, size: int, row: dict) -> None:
        self.files[rel_path] = {"spec": spec, "size": size, "row": row}

    def forget(self, rel_path: str) -> None:
        self.files.pop(rel_path, None)

    def row(self, rel_path: str) -> dict:
        return self.files[rel_path]["row"]

    def save(self) -> None:
        """Write (only if changed, so an idle re-run leaves every mtime alone)."""
        blob = json.dumps({"version": _VERSION, "files": dict(sorted(self.files.items())),
                           "extras": dict(sorted(self.extras.items()))}, ensure_ascii=False, sort_keys=True)
        write_bytes_if_changed(self.path, blob.encode())
