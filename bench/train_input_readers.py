"""The baselines of ``bench/train_input.py``: one epoch's rows exported to WebDataset shards and to Parquet, and
the readers that stream them back with the same window cropping and batch size as the Lance input.

Shuffling differs by design, because each format allows a different one:

- Lance (``pipelines.train_input``): a full per-epoch permutation, done on the plan (random ``take``);
- WebDataset: shard order shuffled per epoch + a sample shuffle buffer (``wds.shuffle``), the usual way a tar
  stream is shuffled (a full permutation is impossible without random access);
- Parquet (``pyarrow.dataset``): row-group order shuffled per epoch + the same kind of shuffle buffer.

Every reader yields dicts of torch tensors: ``codes`` uint16 ``[n, max_frames, stages]`` zero past ``lengths``,
``lengths``, ``origin``, ``speaker``; a window of a longer row starts at a uniformly drawn frame, as in the plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

__all__ = ["export_rows", "make_webdataset_loader", "iter_webdataset_batches", "iter_parquet_batches",
           "collate_windows"]

_EXPORT_BLOCK = 2048


def _full_rows(index, plan: pa.Table) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(item, origin, speaker class, codes [frames, stages]) of every plan row, in item order (export order)."""
    from pipelines.lance_io import open_pinned

    stages = index.num_stages
    order = plan.sort_by("item")
    for start in range(0, order.num_rows, _EXPORT_BLOCK):
        block = order.slice(start, _EXPORT_BLOCK).to_pydict()
        for code, name in enumerate(("latents", "synthetic")):
            rows = [i for i, o in enumerate(block["origin"]) if o == code]
            if not rows:
                continue
            ds = open_pinned(index.uris[name], index.versions[name], index.config.storage)
            offsets = [block["row_offset"][i] for i in rows]
            codes = ds.take(offsets, columns=["codes"]).column("codes").to_pylist()
            for i, c in zip(rows, codes):
                yield block["item"][i], code, block["speaker"][i], np.asarray(c, dtype=np.uint16).reshape(-1, stages)


def export_rows(index, plan: pa.Table, out_dir: Path, *, rows_per_shard: int = 1000,
                rows_per_group: int = 1024) -> dict[str, Any]:
    """Write the plan's rows (full length, item order) as WebDataset tar shards and one Parquet file.

    Returns the shard paths, the Parquet path and their sizes in bytes.
    """
    import webdataset as wds

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("shard-*.tar"):
        old.unlink()
    columns: dict[str, list] = {"item": [], "origin": [], "speaker": [], "num_frames": [], "codes": []}
    with wds.ShardWriter(str(out_dir / "shard-%05d.tar"), maxcount=rows_per_shard, verbose=0) as sink:
        for n, (item, origin, speaker, codes) in enumerate(_full_rows(index, plan)):
            meta = {"item": item, "origin": origin, "speaker": speaker, "num_frames": len(codes)}
            sink.write({"__key__": f"{n:08d}", "codes.bin": codes.tobytes(), "meta.json": json.dumps(meta)})
            for key in ("item", "origin", "speaker", "num_frames"):
                columns[key].append(meta[key])
            columns["codes"].append(codes.reshape(-1))
    flat = np.concatenate(columns["codes"]) if columns["codes"] else np.zeros(0, np.uint16)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in columns["codes"]])]).astype(np.int32)
    table = pa.table({"item": pa.array(columns["item"], pa.int64()), "origin": pa.array(columns["origin"], pa.int8()),
                      "speaker": pa.array(columns["speaker"], pa.int32()),
                      "num_frames": pa.array(columns["num_frames"], pa.int32()),
                      "codes": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint16()))})
    parquet = out_dir / "rows.parquet"
    pq.write_table(table, parquet, row_group_size=rows_per_group)
    shards = sorted(str(p) for p in out_dir.glob("shard-*.tar"))
    return {"shards": shards, "parquet": str(parquet), "wds_bytes": sum(Path(s).stat().st_size for s in shards),
            "parquet_bytes": parquet.stat().st_size}


def _crop(codes: np.ndarray, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    room = max(len(codes) - max_frames, 0)
    start = int(rng.random() * (room + 1))
    return codes[start:start + max_frames]


def collate_windows(samples: list[tuple[np.ndarray, int, int]], max_frames: int, stages: int) -> dict[str, Any]:
    """(window, origin, speaker) samples -> a padded torch batch like the Lance input's."""
    import torch

    codes = np.zeros((len(samples), max_frames, stages), dtype=np.uint16)
    for i, (window, _, _) in enumerate(samples):
        codes[i, :len(window)] = window
    return {"codes": torch.from_numpy(codes),
            "lengths": torch.tensor([len(s[0]) for s in samples], dtype=torch.int64),
            "origin": torch.tensor([s[1] for s in samples], dtype=torch.int64),
            "speaker": torch.tensor([s[2] for s in samples], dtype=torch.int64)}


class _DecodeCrop:
    """WebDataset sample -> (window, origin, speaker); picklable for spawned DataLoader workers."""

    def __init__(self, max_frames: int, stages: int, seed: int) -> None:
        self.max_frames, self.stages, self.seed, self.rng = max_frames, stages, seed, None

    def __call__(self, sample: dict) -> tuple[np.ndarray, int, int]:
        if self.rng is None:
            import torch.utils.data

            info = torch.utils.data.get_worker_info()
            self.rng = np.random.default_rng([self.seed, info.id if info else 0])
        meta = json.loads(sample["meta.json"])
        codes = np.frombuffer(sample["codes.bin"], dtype=np.uint16).reshape(-1, self.stages)
        return _crop(codes, self.max_frames, self.rng), meta["origin"], meta["speaker"]


class _Collate:
    def __init__(self, max_frames: int, stages: int) -> None:
        self.max_frames, self.stages = max_frames, stages

    def __call__(self, samples):
        return collate_windows(samples, self.max_frames, self.stages)


def make_webdataset_loader(shards: list[str], *, batch_size: int, max_frames: int, stages: int,
                           shuffle_buffer: int, seed: int, num_workers: int):
    """A torch DataLoader over the shards (shard order reshuffled each epoch; spawned, persistent workers).

    Workers are spawned, not forked: the bench process has lance loaded, which is not fork-safe.
    """
    import torch.utils.data
    import webdataset as wds

    dataset = (wds.WebDataset(shards, shardshuffle=len(shards), detshuffle=True, seed=seed, empty_check=False,
                              workersplitter=wds.split_by_worker)
               .shuffle(shuffle_buffer, initial=shuffle_buffer).map(_DecodeCrop(max_frames, stages, seed)))
    extra = {"multiprocessing_context": "spawn", "persistent_workers": True} if num_workers else {}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                       collate_fn=_Collate(max_frames, stages), **extra)


def iter_webdataset_batches(loader) -> Iterator[dict[str, Any]]:
    """One epoch of a loader from :func:`make_webdataset_loader`."""
    yield from loader


def iter_parquet_batches(path: str, *, batch_size: int, max_frames: int, stages: int, shuffle_buffer: int,
                         epoch: int, seed: int) -> Iterator[dict[str, Any]]:
    """One epoch of Parquet rows: row groups in a per-epoch order, through a shuffle buffer, cropped, batched."""
    rng = np.random.default_rng([seed, epoch])
    fragment = next(iter(pads.dataset(path, format="parquet").get_fragments()))
    groups = fragment.split_by_row_group()
    buffer: list[tuple[np.ndarray, int, int]] = []
    out: list[tuple[np.ndarray, int, int]] = []

    def emit(sample):
        out.append(sample)
        return len(out) == batch_size

    for g in rng.permutation(len(groups)):
        table = groups[g].to_table(columns=["origin", "speaker", "codes"])
        codes = table.column("codes").combine_chunks()
        flat, offsets = codes.values.to_numpy(), codes.offsets.to_numpy()
        origins, speakers = table.column("origin").to_numpy(), table.column("speaker").to_numpy()
        for i in range(table.num_rows):
            window = _crop(flat[offsets[i]:offsets[i + 1]].reshape(-1, stages), max_frames, rng)
            buffer.append((window, int(origins[i]), int(speakers[i])))
            if len(buffer) >= shuffle_buffer:
                j = int(rng.integers(len(buffer)))
                buffer[j], buffer[-1] = buffer[-1], buffer[j]
                if emit(buffer.pop()):
                    yield collate_windows(out, max_frames, stages)
                    out = []
    rng.shuffle(buffer)
    for sample in buffer:
        if emit(sample):
            yield collate_windows(out, max_frames, stages)
            out = []
    if out:
        yield collate_windows(out, max_frames, stages)
