"""Decode one ``latents`` row (a segment's codes under one codec) back to a WAV file.

Usage::

    python jobs/decode_latents.py --lake-root data/lake --segment-id <id> --checkpoint checkpoints/codec_50hz_2x8555.pt --out x.wav
    python jobs/decode_latents.py --lake-root data/lake --segment-id <id> --codec-id <codec id> --out x.wav

With ``--codec-id`` alone the weights are the checkpoint that the encode run
which wrote the row recorded. Exit codes: 0 written, 2 unknown segment or
codec, or an unusable checkpoint (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail  # noqa: E402
from models.codec import CheckpointError  # noqa: E402
from pipelines.latents import LatentsLookupError, decode_latents  # noqa: E402
from schemas.storage import StorageConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", default="data/lake", help="lake root (a path or s3:// URI)")
    parser.add_argument("--segment-id", required=True)
    parser.add_argument("--codec-id", help="which codec's latents (default: the checkpoint's)")
    parser.add_argument("--checkpoint", help="codec checkpoint (default: the one the encode run recorded)")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint for an s3:// lake (credentials from AWS_* env vars)")
    parser.add_argument("--out", required=True, help="WAV file to write (16-bit PCM)")
    args = parser.parse_args(argv)
    if not (args.codec_id or args.checkpoint):
        parser.error("give --codec-id or --checkpoint (or both)")
    import soundfile as sf

    storage = StorageConfig(s3_endpoint_url=args.s3_endpoint_url)
    try:
        wav, rate = decode_latents(args.lake_root, args.segment_id, codec_id=args.codec_id,
                                   checkpoint=args.checkpoint, storage=storage)
    except (LatentsLookupError, CheckpointError) as exc:
        fail(str(exc))
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), wav.clip(-1.0, 1.0), rate, subtype="PCM_16")
    print(f"{out}: {len(wav)} samples at {rate} Hz ({len(wav) / rate:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
