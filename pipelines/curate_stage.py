"""The curation stage: one listed unit in, result rows out (segments, rejects, a source summary).

A callable class (STYLE.md: a stage that holds state is a class that sets up
in ``__init__`` and works in ``__call__``), run by ``curate_batch`` as Ray
Data tasks, since its state is only its configuration. It never
writes: it returns rows, and the driver decides (dedup) and commits.

Per source: read + sha256 -> open (header) -> streaming decode/resample to 16 kHz ->
VAD segmentation -> quality metrics -> filters -> FLAC + PCM hash. Any
failure of one source becomes that source's reject row; it never stops the
batch.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Iterator

import numpy as np
import pyarrow as pa

from pipelines.audio import (AudioDecodeError, OpenAudio, Segmenter, encode_flac, measure_quality, open_audio,
                             pcm_hash, quantize_pcm16)
from pipelines.filters import check_segment
from pipelines.labels import split_labels
from pipelines.reader import RawObject, iter_raw_objects
from pipelines.sources import SourceUnit
from pipelines.splits import assign_split
from schemas._arrow import stable_id
from schemas.curate import FilterConfig, SegmentationConfig, SplitConfig
from schemas.rejects import REJECTS_SCHEMA, RejectReason, RejectStage
from schemas.segments import SEGMENTS_SCHEMA, make_segment_id
from schemas.sources import SOURCES_SCHEMA
from schemas.storage import StorageConfig

__all__ = ["CurateSources", "RESULT_SCHEMA", "curate_batch", "make_reject"]

log = logging.getLogger(__name__)

RESULT_SCHEMA = pa.schema([
    pa.field("kind", pa.string()),  # segment | reject | source
    pa.field("segment", pa.struct(list(SEGMENTS_SCHEMA))),
    pa.field("reject", pa.struct(list(REJECTS_SCHEMA))),
    pa.field("source", pa.struct(list(SOURCES_SCHEMA))),
])

_FLUSH_BYTES = 64 * 1024 * 1024  # yield a batch once this much FLAC has piled up (bounded memory for long files)


def make_reject(*, source_uri: str, sha256: str, stage: RejectStage, reason: RejectReason, error: str, run_id: str,
                at: datetime, segment_id: str | None = None, start_s: float | None = None,
                end_s: float | None = None, duplicate_of: str | None = None) -> dict:
    """A ``rejects`` row; its id hashes what makes it the same rejection on a re-run."""
    return {
        "reject_id": stable_id(source_uri, sha256, segment_id, stage.value, reason.value),
        "source_uri": source_uri, "sha256": sha256, "segment_id": segment_id, "start_s": start_s, "end_s": end_s,
        "stage": stage.value, "reason": reason.value, "error": error.splitlines()[0][:1000] if error else reason.value,
        "duplicate_of": duplicate_of, "run_id": run_id, "rejected_at": at,
    }


class CurateSources:
    """``map_batches`` stage: a batch of :class:`SourceUnit` items -> :data:`RESULT_SCHEMA` tables."""

    def __init__(self, *, segmentation: SegmentationConfig, filters: FilterConfig, split: SplitConfig,
                 storage: StorageConfig, max_source_s: float, run_id: str, ingested_at: datetime) -> None:
        self.segmentation = segmentation
        self.filters = filters
        self.split = split
        self.storage = storage
        self.max_source_s = max_source_s
        self.run_id = run_id
        self.at = ingested_at

    # -- one source -------------------------------------------------------------------------------------------
    def _source_row(self, obj: RawObject, *, status: str, reason: str | None, found: int = 0, filtered: int = 0,
                    info=None, mtime_ns: int | None = None, etag: str | None = None) -> dict:
        return {
            "source_uri": obj.source_uri, "container_uri": obj.container_uri, "sha256": obj.sha256,
            "size_bytes": obj.size_bytes, "mtime_ns": mtime_ns, "etag": etag, "status": status, "reason": reason,
            "format": getattr(info, "format", None), "sample_rate_hz": getattr(info, "sample_rate_hz", None),
            "channels": getattr(info, "channels", None), "duration_s": getattr(info, "duration_s", None),
            "segments_found": found, "segments_written": 0, "segments_filtered": filtered, "segments_deduped": 0,
            "run_id": self.run_id, "ingested_at": self.at,
        }

    def _reject_source(self, obj: RawObject, stage: RejectStage, reason: str, error: str, unit: SourceUnit,
                       info=None) -> list[dict]:
        rej = make_reject(source_uri=obj.source_uri, sha256=obj.sha256, stage=stage, reason=RejectReason(reason),
                          error=error, run_id=self.run_id, at=self.at)
        src = self._source_row(obj, status="rejected", reason=reason, info=info, mtime_ns=unit.mtime_ns, etag=unit.etag)
        return [{"kind": "reject", "reject": rej}, {"kind": "source", "source": src}]

    def _curate_object(self, obj: RawObject, unit: SourceUnit) -> Iterator[list[dict]]:
        if obj.error_reason is not None:
            stage = RejectStage.LIST if obj.error_reason in ("missing_file", "unsafe_path") else RejectStage.READ
            yield self._reject_source(obj, stage, obj.error_reason, obj.error or obj.error_reason, unit)
            return
        assert obj.fileobj is not None
        try:
            audio = open_audio(obj.fileobj)  # one open for the header and the decode
        except AudioDecodeError as exc:
            yield self._reject_source(obj, RejectStage.DECODE, exc.reason, str(exc), unit)
            return
        with audio:
            yield from self._curate_audio(obj, unit, audio)

    def _curate_audio(self, obj: RawObject, unit: SourceUnit, audio: OpenAudio) -> Iterator[list[dict]]:
        info = audio.info
        if info.duration_s > self.max_source_s:
            yield self._reject_source(obj, RejectStage.DECODE, "too_long",
                                      f"too_long: {info.duration_s:.0f} s > execution.max_source_s {self.max_source_s:.0f} s",
                                      unit, info)
            return
        typed, extra_json = split_labels(obj.labels)
        seg_cfg = self.segmentation
        segmenter = Segmenter(vad=seg_cfg.vad, aggressiveness=seg_cfg.aggressiveness, min_segment_s=seg_cfg.min_segment_s,
                              max_segment_s=seg_cfg.max_segment_s, max_pause_s=seg_cfg.max_pause_s, pad_s=seg_cfg.pad_s,
                              source_duration_s=info.duration_s)
        if info.duration_s > seg_cfg.max_segment_s:
            # A file-level transcript cannot be cut with the audio: keep it, marked as the source's, in the extras.
            moved = {f"source_{k}": typed.pop(k) for k in ("transcript", "text_id") if typed.get(k) is not None}
            if moved:
                extra_json = json.dumps({**(json.loads(extra_json) if extra_json else {}), **moved}, sort_keys=True)
        split = assign_split(typed.get("speaker"), obj.source_uri, self.split)
        rows: list[dict] = []
        pending_bytes = found = filtered = 0
        try:
            def segments():
                for chunk in audio.chunks():
                    yield from segmenter.feed(chunk)
                yield from segmenter.flush()

            for seg in segments():
                found += 1
                rows.append(self._segment_row(obj, seg, info, typed, extra_json, split))
                if rows[-1]["kind"] == "reject":
                    filtered += 1
                else:
                    pending_bytes += len(rows[-1]["segment"]["audio"])
                if pending_bytes > _FLUSH_BYTES:  # long file: hand rows on, keep memory flat
                    yield rows
                    rows, pending_bytes = [], 0
        except AudioDecodeError as exc:
            # Rows already handed on for this source are dropped by the driver (source is rejected as a whole).
            yield self._reject_source(obj, RejectStage.DECODE, exc.reason, str(exc), unit, info)
            return
        if found == 0:
            rows += self._reject_source(obj, RejectStage.SEGMENT, "no_speech",
                                        f"no_speech: the VAD ({seg_cfg.vad}) found no speech in {info.duration_s:.1f} s",
                                        unit, info)
        else:
            kept = found - filtered
            status, reason = ("accepted", None) if kept else ("rejected", "no_segment_kept")
            if not kept:
                rows.append({"kind": "reject", "reject": make_reject(
                    source_uri=obj.source_uri, sha256=obj.sha256, stage=RejectStage.FILTER,
                    reason=RejectReason.NO_SEGMENT_KEPT, error=f"no_segment_kept: all {found} segments failed filters",
                    run_id=self.run_id, at=self.at)})
            rows.append({"kind": "source", "source": self._source_row(
                obj, status=status, reason=reason, found=found, filtered=filtered, info=info,
                mtime_ns=unit.mtime_ns, etag=unit.etag)})
        yield rows

    def _segment_row(self, obj: RawObject, seg, info, typed: dict, extra_json: str | None, split: str) -> dict:
        duration = seg.end_s - seg.start_s
        q = measure_quality(seg)
        sid = make_segment_id(obj.sha256, seg.start_s, seg.end_s)
        verdict = check_segment(duration_s=duration, snr_db=q.snr_db, clipping_ratio=q.clipping_ratio,
                                silence_ratio=q.silence_ratio, loudness_lufs=q.loudness_lufs,
                                bandwidth_hz=q.bandwidth_hz, segmentation=self.segmentation, filters=self.filters)
        if verdict is not None:
            stage, reason, msg = verdict
            return {"kind": "reject", "reject": make_reject(
                source_uri=obj.source_uri, sha256=obj.sha256, stage=stage, reason=reason, error=msg, run_id=self.run_id,
                at=self.at, segment_id=sid, start_s=seg.start_s, end_s=seg.end_s)}

        pcm = quantize_pcm16(seg.samples)  # once, for both the stored FLAC and the dedup hash

        def num(x):
            return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else float(x)

        row = {
            **{name: None for name in SEGMENTS_SCHEMA.names},
            **typed,
            "segment_id": sid, "source_uri": obj.source_uri, "source_sha256": obj.sha256,
            "start_s": float(seg.start_s), "end_s": float(seg.end_s), "duration_s": float(duration),
            "sample_rate_hz": 16000, "audio": encode_flac(pcm, 16000), "pcm_hash": pcm_hash(pcm),
            "split": split, "extra_labels_json": extra_json,
            "snr_db": num(q.snr_db), "clipping_ratio": float(q.clipping_ratio), "silence_ratio": float(q.silence_ratio),
            "loudness_lufs": num(q.loudness_lufs), "bandwidth_hz": num(q.bandwidth_hz), "peak_dbfs": num(q.peak_dbfs),
            "rms_dbfs": num(q.rms_dbfs), "source_sample_rate_hz": info.sample_rate_hz, "source_channels": info.channels,
            "source_format": info.format, "run_id": self.run_id, "ingested_at": self.at,
        }
        return {"kind": "segment", "segment": row}

    # -- a batch ---------------------------------------------------------------------------------------------
    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        """Curate every unit of the batch; rows are handed on in blocks of about ``_FLUSH_BYTES`` of audio."""
        rows: list[dict] = []
        pending = 0
        for item in batch.to_pylist():
            unit = SourceUnit(**item)
            for obj in iter_raw_objects(unit, self.storage):
                try:
                    for part in self._curate_object(obj, unit):
                        rows += part
                        pending += sum(len(r["segment"]["audio"]) for r in part if r["kind"] == "segment")
                        if pending > _FLUSH_BYTES:
                            yield _to_table(rows)
                            rows, pending = [], 0
                except Exception as exc:  # a bug or an unforeseen input must not kill the run: reject, loudly
                    log.exception("unexpected failure on %s", obj.source_uri)
                    rows += self._reject_source(obj, RejectStage.DECODE, "decode_error",
                                                f"decode_error: unexpected {type(exc).__name__}: {exc}", unit)
                finally:
                    obj.close()
        if rows:
            yield _to_table(rows)


def curate_batch(batch: pa.Table, **config: object) -> Iterator[pa.Table]:
    """``map_batches`` as Ray tasks: build the stage and run it on one batch.

    Why tasks and not an actor pool: the stage's set-up is a few attribute
    assignments, while starting a pool of actors cost ~2.6 s per chunk of
    sources here (2 CPUs), more than curating a hundred short files.
    """
    yield from CurateSources(**config)(batch)  # type: ignore[arg-type]


def _to_table(rows: list[dict]) -> pa.Table:
    cols = {"kind": [r["kind"] for r in rows]}
    for name in ("segment", "reject", "source"):
        cols[name] = [r.get(name) for r in rows]
    return pa.Table.from_pydict(cols, schema=RESULT_SCHEMA)
