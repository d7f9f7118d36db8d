"""Quality filters: turn a segment's measurements into keep, or a reject reason with a readable message."""

from __future__ import annotations

import math

from schemas.curate import FilterConfig, SegmentationConfig
from schemas.rejects import RejectReason, RejectStage

__all__ = ["check_segment"]


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def check_segment(
    *,
    duration_s: float,
    snr_db: float | None,
    clipping_ratio: float,
    silence_ratio: float,
    loudness_lufs: float | None,
    bandwidth_hz: float | None,
    segmentation: SegmentationConfig,
    filters: FilterConfig,
) -> tuple[RejectStage, RejectReason, str] | None:
    """``None`` to keep the segment, else (stage, reason, message). First failing rule wins, in a fixed order."""
    if duration_s < segmentation.min_segment_s:
        return RejectStage.SEGMENT, RejectReason.TOO_SHORT, f"too_short: {duration_s:.2f} s < min_segment_s {segmentation.min_segment_s} s"
    if duration_s > segmentation.max_segment_s + 1e-6:
        return RejectStage.SEGMENT, RejectReason.TOO_LONG_SEGMENT, f"too_long_segment: {duration_s:.2f} s > max_segment_s {segmentation.max_segment_s} s"
    f = filters
    if f.min_snr_db is not None and not _bad(snr_db) and snr_db < f.min_snr_db:  # type: ignore[operator]
        return RejectStage.FILTER, RejectReason.LOW_SNR, f"low_snr: estimated SNR {snr_db:.1f} dB < min_snr_db {f.min_snr_db}"
    if f.max_clipping_ratio is not None and clipping_ratio > f.max_clipping_ratio:
        return RejectStage.FILTER, RejectReason.CLIPPING, f"clipping: {clipping_ratio:.2%} of samples clipped > max_clipping_ratio {f.max_clipping_ratio:.2%}"
    if f.max_silence_ratio is not None and silence_ratio > f.max_silence_ratio:
        return RejectStage.FILTER, RejectReason.TOO_SILENT, f"too_silent: {silence_ratio:.0%} non-speech frames > max_silence_ratio {f.max_silence_ratio:.0%}"
    if not _bad(loudness_lufs):
        if f.min_loudness_lufs is not None and loudness_lufs < f.min_loudness_lufs:  # type: ignore[operator]
            return RejectStage.FILTER, RejectReason.LOUDNESS, f"loudness: {loudness_lufs:.1f} LUFS < min_loudness_lufs {f.min_loudness_lufs}"
        if f.max_loudness_lufs is not None and loudness_lufs > f.max_loudness_lufs:  # type: ignore[operator]
            return RejectStage.FILTER, RejectReason.LOUDNESS, f"loudness: {loudness_lufs:.1f} LUFS > max_loudness_lufs {f.max_loudness_lufs}"
    if f.min_bandwidth_hz is not None and not _bad(bandwidth_hz) and bandwidth_hz < f.min_bandwidth_hz:  # type: ignore[operator]
        return RejectStage.FILTER, RejectReason.NARROW_BANDWIDTH, f"narrow_bandwidth: {bandwidth_hz:.0f} Hz < min_bandwidth_hz {f.min_bandwidth_hz}"
    return None
