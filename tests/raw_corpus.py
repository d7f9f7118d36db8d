"""A tiny raw corpus on disk, as users have it: mixed formats/rates, labels, duplicates, broken files.

Real speech from espeak-ng (three voices); writes in well under a second.
``EXPECTED`` says how the curation must end for each input.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tests.factories import espeak, flac_bytes, silence, write_audio

__all__ = ["make_raw_corpus", "EXPECTED_REJECTS"]

_LINES = [
    ("s001", "en+m3", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("s002", "en+f2", "Please call Stella and ask her to bring these things with her from the store."),
    ("s003", "en-us+m1", "A large fawn jumped quickly over white zinc boxes in the yard."),
]

#: bad file name -> reject reason the curation must record
EXPECTED_REJECTS = {
    "empty.wav": "empty_file",
    "random.wav": "decode_error",
    "truncated.flac": "decode_error",
    "nan.wav": "non_finite_samples",
    "silence.wav": "no_speech",
    "gone.wav": "missing_file",
}


def _utterance(voice: str, text: str, rate: int) -> np.ndarray:
    x, sr = espeak(text, voice=voice)
    x = np.concatenate([silence(0.3, sr), x, silence(0.3, sr)])
    return soxr.resample(x, sr, rate).astype(np.float32) if rate != sr else x


def make_raw_corpus(root: Path, *, with_bad: bool = True, with_shard: bool = True) -> Path:
    """Write the corpus under ``root`` and return the manifest path (``root/manifest.jsonl``)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    specs = [("wav", 22050, 1), ("flac", 44100, 2), ("ogg", 16000, 1)]
    for (text_id, voice, text), (ext, rate, ch) in zip(_LINES, specs):
        x = _utterance(voice, text, rate)
        if ch == 2:
            x = np.stack([x, 0.8 * x], axis=1)
        path = write_audio(root / "audio" / voice / f"{text_id}.{ext}", x, rate)
        rows.append({"path": str(path.relative_to(root)), "speaker": f"espeak-ng:{voice}", "text_id": text_id,
                     "transcript": text, "language": "en", "corpus": "test", "mood": "neutral"})
    # an exact duplicate of the first file under another name (same PCM -> dedup)
    dup = root / "audio" / "copies" / "s001-copy.wav"
    dup.parent.mkdir(parents=True, exist_ok=True)
    dup.write_bytes((root / rows[0]["path"]).read_bytes())
    rows.append({"path": str(dup.relative_to(root)), "speaker": "espeak-ng:en+m3", "corpus": "test"})
    if with_bad:
        bad = root / "bad"
        bad.mkdir(exist_ok=True)
        (bad / "empty.wav").write_bytes(b"")
        (bad / "random.wav").write_bytes(np.random.default_rng(0).bytes(4096))
        good = flac_bytes(_utterance("en", "truncated", 16000), 16000)
        (bad / "truncated.flac").write_bytes(good[:30])
        nan = np.full(16000, np.nan, dtype=np.float32)
        nan[::3] = np.inf
        sf.write(bad / "nan.wav", nan, 16000, subtype="FLOAT")
        write_audio(bad / "silence.wav", silence(3.0), 16000)
        rows.append({"path": "bad/gone.wav", "speaker": "nobody"})
        for name in ("empty.wav", "random.wav", "truncated.flac", "nan.wav", "silence.wav"):
            rows.append({"path": f"bad/{name}"})
    if with_shard:
        shard = root / "shards" / "shard-000000.tar"
        shard.parent.mkdir(exist_ok=True)
        x = _utterance("en+f4", "Shards carry labels in a json member next to the audio.", 16000)
        with tarfile.open(shard, "w") as tar:
            for name, data in [("u1.flac", flac_bytes(x, 16000)),
                               ("u1.json", json.dumps({"speaker": "espeak-ng:en+f4", "text_id": "s004"}).encode()),
                               ("../escape.flac", flac_bytes(x, 16000))]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest
