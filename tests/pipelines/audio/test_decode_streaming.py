"""Decoding a long file keeps memory bounded (never the whole file in RAM).

What is measured, honestly:
- ``tracemalloc`` peak: every numpy array and Python object allocated while
  decoding (numpy reports its buffers to tracemalloc). It does not see
  libsndfile's or soxr's own C buffers.
- ``VmHWM`` growth (Linux): the process's peak resident set, reset just
  before decoding via ``/proc/self/clear_refs``. This sees everything,
  including C buffers; skipped where clear_refs is not writable.
A file-sized leak would show as ~230 MB (1 h of 16 kHz float32) or ~690 MB
(the 48 kHz stereo PCM) in either measure.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf

from pipelines.audio.decode import decode_stream
from tests.factories import speechlike

RATE_HZ = 48000


def _write_long_stereo_wav(path: Path, duration_s: int) -> Path:
    """A 48 kHz stereo 16-bit WAV written 10 s at a time (the file is never in memory either)."""
    block = speechlike(10.0, RATE_HZ, seed=1)
    stereo = np.stack([block, 0.5 * block], axis=1)
    with sf.SoundFile(str(path), "w", RATE_HZ, 2, format="WAV", subtype="PCM_16") as out:
        for _ in range(duration_s // 10):
            out.write(stereo)
    return path


def _vm_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _decode_and_measure(path: Path) -> tuple[int, int, float | None]:
    """(samples decoded, tracemalloc peak bytes, VmHWM growth in MB or None)."""
    rss_before = _vm_kib("VmRSS")
    can_measure_rss = _reset_peak_rss() and rss_before is not None
    tracemalloc.start()
    total = 0
    clipped = 0
    with open(path, "rb") as fh:
        for chunk in decode_stream(fh):
            total += chunk.samples.size
            clipped += int(chunk.clipped.sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    growth_mb = (_vm_kib("VmHWM") - rss_before) / 1024 if can_measure_rss else None
    assert clipped == 0
    return total, peak, growth_mb


def _check_bounded(path: Path, duration_s: int) -> None:
    total, peak_bytes, rss_growth_mb = _decode_and_measure(path)
    assert total == duration_s * 16000
    assert peak_bytes < 40 * 2**20, f"tracemalloc peak {peak_bytes / 2**20:.0f} MB"
    if rss_growth_mb is not None:
        assert rss_growth_mb < 200, f"peak RSS grew {rss_growth_mb:.0f} MB"


def test_1_hour_48k_stereo_decodes_in_bounded_memory(tmp_path: Path) -> None:
    """~6 s here (writing the 690 MB file is most of it); measured: tracemalloc peak ~9 MB, VmHWM +13 MB."""
    duration_s = 60 * 60
    path = _write_long_stereo_wav(tmp_path / "hour.wav", duration_s)
    try:
        _check_bounded(path, duration_s)
    finally:
        path.unlink()
