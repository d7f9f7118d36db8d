"""Decoding real files of every supported format into 16 kHz mono, and refusing bad ones."""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines.audio.decode import AudioDecodeError, decode_all, decode_stream, open_audio, probe_audio
from tests.factories import write_audio

RATES_HZ = (8000, 22050, 44100, 48000)


def _sine(freq_hz: float, duration_s: float, rate_hz: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _decode_path(path: Path, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        return decode_all(fh, **kwargs)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("channels", (1, 2))
def test_wav_any_rate_decodes_to_16k_with_right_length_and_content(tmp_path: Path, rate_hz: int, channels: int) -> None:
    duration_s = 1.5
    left = _sine(440.0, duration_s, rate_hz)
    data = left if channels == 1 else np.stack([left, np.zeros_like(left)], axis=1)  # right channel silent
    path = write_audio(tmp_path / f"x{rate_hz}.wav", data, rate_hz, subtype="PCM_16")

    samples, clipped = _decode_path(path)

    assert samples.dtype == np.float32 and clipped.dtype == bool and clipped.shape == samples.shape
    assert abs(samples.size - duration_s * 16000) <= 2
    expected = _sine(440.0, duration_s, 16000) / channels  # downmix = mean of channels
    core = slice(400, -400)  # away from the resampler's edge transients
    assert np.max(np.abs(samples[core] - expected[core])) < 2e-3
    assert not clipped.any()


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix", "tolerance_samples", "max_error"),
    [
        ("WAV", "PCM_U8", "wav", 2, 2e-2),
        ("WAV", "PCM_24", "wav", 2, 1e-3),
        ("WAV", "PCM_32", "wav", 2, 1e-3),
        ("WAV", "FLOAT", "wav", 2, 1e-3),
        ("WAV", "DOUBLE", "wav", 2, 1e-3),
        ("FLAC", "PCM_16", "flac", 2, 1e-3),
        ("FLAC", "PCM_24", "flac", 2, 1e-3),
        ("OGG", "VORBIS", "ogg", 2, None),
        ("OGG", "OPUS", "opus", 2, None),
        ("MP3", "MPEG_LAYER_III", "mp3", 2, None),
    ],
)
def test_each_container_and_codec_decodes(tmp_path: Path, fmt: str, subtype: str, suffix: str,
                                          tolerance_samples: int, max_error: float | None) -> None:
    rate_hz, duration_s = 44100 if fmt != "OGG" or subtype != "OPUS" else 48000, 2.0
    stereo = np.stack([_sine(300.0, duration_s, rate_hz), _sine(300.0, duration_s, rate_hz, 0.25)], axis=1)
    path = write_audio(tmp_path / f"x.{suffix}", stereo, rate_hz, format=fmt, subtype=subtype)

    samples, _ = _decode_path(path)

    assert abs(samples.size - duration_s * 16000) <= tolerance_samples
    expected = _sine(300.0, duration_s, 16000, 0.375)
    core = slice(1600, -1600)
    if max_error is not None:  # lossless (or 8-bit): sample-accurate
        assert np.max(np.abs(samples[core] - expected[core])) < max_error
    else:  # lossy: level and waveform preserved
        assert _rms(samples[core]) == pytest.approx(_rms(expected[core]), rel=0.1)
        assert np.corrcoef(samples[core], expected[core])[0, 1] > 0.95


def test_stream_chunks_are_contiguous_and_match_decode_all(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = (0.1 * rng.standard_normal((int(3.3 * 44100), 2))).astype(np.float32)
    path = write_audio(tmp_path / "noise.flac", data, 44100)
    with open(path, "rb") as fh:
        chunks = list(decode_stream(fh, block_s=0.5))
    assert len(chunks) >= 6
    starts = [c.start_sample for c in chunks]
    assert starts == list(np.cumsum([0] + [c.samples.size for c in chunks[:-1]]))
    assert all(c.sample_rate_hz == 16000 for c in chunks)
    streamed = np.concatenate([c.samples for c in chunks])
    whole, _ = _decode_path(path)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)  # block size does not change the output


def test_probe_reports_header(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "x.flac", np.zeros((44100 * 2, 2), np.float32), 44100, subtype="PCM_24")
    with open(path, "rb") as fh:
        info = probe_audio(fh)
    assert (info.sample_rate_hz, info.channels, info.frames) == (44100, 2, 88200)
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    assert info.duration_s == pytest.approx(2.0)


def test_one_open_gives_the_header_and_the_same_stream(tmp_path: Path) -> None:
    """open_audio: what probe_audio then decode_stream give, from one libsndfile open."""
    rng = np.random.default_rng(1)
    path = write_audio(tmp_path / "x.flac", (0.1 * rng.standard_normal((44100 * 2, 2))).astype(np.float32), 44100)
    with open(path, "rb") as fh:
        expected_info = probe_audio(fh)
        expected = np.concatenate([c.samples for c in decode_stream(fh, block_s=0.5)])
        with open_audio(fh) as audio:
            assert audio.info == expected_info
            got = np.concatenate([c.samples for c in audio.chunks(block_s=0.5)])
            with pytest.raises(RuntimeError, match="already called"):
                next(audio.chunks())
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fmt, subtype, suffix", [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"),
                                                  ("OGG", "VORBIS", "ogg")])
def test_a_real_file_decodes_as_its_bytes_do_and_stays_the_callers(tmp_path: Path, fmt: str, subtype: str,
                                                                    suffix: str) -> None:
    """A real file is read by libsndfile through its descriptor, anything else through Python calls: same samples,
    and closing the audio leaves the caller's file open."""
    rng = np.random.default_rng(2)
    path = write_audio(tmp_path / f"x.{suffix}", (0.1 * rng.standard_normal((44100, 2))).astype(np.float32), 44100,
                       format=fmt, subtype=subtype)
    with open(path, "rb") as fh:
        with open_audio(fh) as audio:
            from_file = np.concatenate([c.samples for c in audio.chunks()])
        assert not fh.closed and fh.seek(0) == 0 and len(fh.read()) == path.stat().st_size
    with open_audio(io.BytesIO(path.read_bytes())) as audio:
        from_bytes = np.concatenate([c.samples for c in audio.chunks()])
    np.testing.assert_array_equal(from_file, from_bytes)
    import tempfile

    with tempfile.SpooledTemporaryFile(max_size=1 << 24) as spool:  # how the reader holds S3 objects, tar members
        spool.write(path.read_bytes())
        with open_audio(spool) as audio:
            np.testing.assert_array_equal(np.concatenate([c.samples for c in audio.chunks()]), from_bytes)
        assert not spool._rolled  # decoded from memory: not moved to disk to get a descriptor


def test_non_finite_sample_is_found_at_its_frame_in_any_channel(tmp_path: Path) -> None:
    data = np.zeros((16000, 2), np.float32)
    data[12345, 1] = np.nan
    buf = io.BytesIO()
    sf.write(buf, data, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="frame 12345") as err:
        list(decode_stream(buf, block_s=0.25))
    assert err.value.reason == "non_finite_samples"


# -- clipping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_hz", (8000, 44100, 48000))
def test_clipping_is_detected_at_the_original_rate(tmp_path: Path, rate_hz: int) -> None:
    t = np.arange(2 * rate_hz) / rate_hz
    hot = np.clip(3.0 * np.sin(2 * np.pi * 200 * t), -1.0, 1.0).astype(np.float32)  # sine x3, clipped
    path = write_audio(tmp_path / "hot.wav", hot, rate_hz, subtype="PCM_16")

    samples, clipped = _decode_path(path)

    # |3 sin| >= 1 for 1 - (2/pi) asin(1/3) = 78% of the time (75% on the 8 kHz sample grid).
    assert 0.7 < clipped.mean() < 0.9
    t16 = np.arange(samples.size) / 16000
    expected = np.abs(3.0 * np.sin(2 * np.pi * 200 * t16)) >= 1.0
    assert np.mean(clipped == expected) > 0.9


def test_clean_loud_signal_is_not_clipped(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "clean.wav", _sine(200.0, 2.0, 44100, amplitude=0.99), 44100, subtype="PCM_16")
    _, clipped = _decode_path(path)
    assert not clipped.any()


def test_clipping_in_one_channel_only_is_detected(tmp_path: Path) -> None:
    left = _sine(200.0, 1.0, 48000, amplitude=0.3)
    right = np.clip(_sine(200.0, 1.0, 48000, amplitude=2.0), -1, 1)
    path = write_audio(tmp_path / "st.wav", np.stack([left, right], axis=1), 48000, subtype="PCM_16")
    samples, clipped = _decode_path(path)
    assert clipped.mean() > 0.5
    assert np.abs(samples).max() < 0.7  # the mono mix itself never reaches full scale


def test_clipping_in_8_bit_pcm_uses_its_own_full_scale(tmp_path: Path) -> None:
    hot = np.clip(_sine(200.0, 1.0, 16000, amplitude=3.0), -1, 1)
    path = write_audio(tmp_path / "u8.wav", hot, 16000, subtype="PCM_U8")  # +full scale is 127/128
    _, clipped = _decode_path(path)
    assert clipped.mean() > 0.7


# -- bad inputs -----------------------------------------------------------------------------------


def _wav_bytes(samples: np.ndarray, rate_hz: int = 16000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate_hz, format="WAV", subtype=subtype)
    return buf.getvalue()


def _flac_bytes() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _sine(300.0, 2.0, 16000), 16000, format="FLAC")
    return buf.getvalue()


def _float_wav_with(value: float) -> bytes:
    x = _sine(300.0, 0.5, 16000)
    x[1234] = value
    return _wav_bytes(x, subtype="FLOAT")


BAD_INPUTS = {
    "zero_bytes": (lambda: b"", "empty_file"),
    "wav_with_no_frames": (lambda: _wav_bytes(np.zeros(0, np.float32)), "empty_file"),
    "wav_first_20_bytes": (lambda: _wav_bytes(_sine(300.0, 1.0, 16000))[:20], "decode_error"),
    "flac_first_30_bytes": (lambda: _flac_bytes()[:30], "decode_error"),
    "flac_cut_mid_data": (lambda: _flac_bytes()[:3000], "decode_error"),
    "random_bytes": (lambda: np.random.default_rng(7).bytes(5000), "decode_error"),
    "float_wav_with_nan": (lambda: _float_wav_with(np.nan), "non_finite_samples"),
    "float_wav_with_inf": (lambda: _float_wav_with(np.inf), "non_finite_samples"),
    "float_wav_with_minus_inf": (lambda: _float_wav_with(-np.inf), "non_finite_samples"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_with_reason(name: str) -> None:
    make, reason = BAD_INPUTS[name]
    with pytest.raises(AudioDecodeError) as caught:
        list(decode_stream(io.BytesIO(make())))
    err = caught.value
    assert err.reason == reason
    assert str(err).startswith(f"{reason}: ") and "\n" not in str(err)
    assert isinstance(err, ValueError)


def test_decode_error_survives_pickling() -> None:
    """Ray ships a worker's exception to the driver by pickling it."""
    err = AudioDecodeError("decode_error", "file has no recognizable audio header")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.reason, str(copy)) == (AudioDecodeError, "decode_error", str(err))


def test_wav_cut_mid_data_decodes_the_frames_present() -> None:
    """A WAV whose data chunk is shorter than its header says (a cut copy) keeps what is there."""
    data = _wav_bytes(_sine(300.0, 2.0, 16000))
    samples, _ = decode_all(io.BytesIO(data[: 44 + 2 * 16000]))  # header + the first second
    assert samples.size == 16000
    np.testing.assert_allclose(samples, _sine(300.0, 1.0, 16000), atol=1e-4)


def test_probe_of_empty_and_garbage() -> None:
    with pytest.raises(AudioDecodeError, match="^empty_file: ") as caught:
        probe_audio(io.BytesIO(b""))
    assert caught.value.reason == "empty_file"
    with pytest.raises(AudioDecodeError) as caught:
        probe_audio(io.BytesIO(np.random.default_rng(1).bytes(300)))
    assert caught.value.reason == "decode_error"
    assert "no recognizable audio header" in str(caught.value)


def test_too_long_is_refused_before_decoding() -> None:
    data = _wav_bytes(_sine(300.0, 3.0, 16000))
    with pytest.raises(AudioDecodeError) as caught:
        next(decode_stream(io.BytesIO(data), max_duration_s=2.0))
    assert caught.value.reason == "too_long"
    assert sum(c.samples.size for c in decode_stream(io.BytesIO(data), max_duration_s=3.0)) == 48000


def test_non_seekable_input_is_a_programming_error() -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

    with pytest.raises(TypeError, match="seekable"):
        probe_audio(Pipe())


FFMPEG_CODECS = {
    "aac_in_m4a": (["-c:a", "aac"], "m4a", "MP4/M4A"),
    "aac_adts": (["-c:a", "aac", "-f", "adts"], "aac", "AAC"),
    "yamaha_adpcm_in_wav": (["-c:a", "adpcm_yamaha"], "wav", "WAV codec 0x0020"),
    "g726_in_wav": (["-c:a", "g726", "-ar", "8000"], "wav", "WAV codec 0x0045"),
    "opus_in_webm": (["-c:a", "libopus"], "webm", "Matroska/WebM"),
    "wma": (["-c:a", "wmav2"], "wma", "ASF/WMA"),
    "flac_in_ogg": (["-c:a", "flac", "-f", "ogg"], "oga", "Ogg stream with codec 'FLAC'"),
}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the real AAC/ADPCM/WMA files")
@pytest.mark.parametrize("name", sorted(FFMPEG_CODECS))
def test_real_format_libsndfile_cannot_read_is_unsupported(tmp_path: Path, name: str) -> None:
    args, suffix, label = FFMPEG_CODECS[name]
    source = write_audio(tmp_path / "src.wav", _sine(300.0, 1.0, 16000), 16000)
    target = tmp_path / f"out.{suffix}"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *args, str(target)],
                   check=True)
    with open(target, "rb") as fh, pytest.raises(AudioDecodeError) as caught:
        list(decode_stream(fh))
    assert caught.value.reason == "unsupported_format"
    assert label in str(caught.value)
