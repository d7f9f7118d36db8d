"""The same curation job with raw audio and the lake on a real S3 API server on loopback."""

from __future__ import annotations

from pathlib import Path

import boto3
import lance
import pytest

from pipelines.curate import run_curation
from pipelines.lake_summary import summarize_lake
from schemas.curate import CurateConfig
from tests.raw_corpus import make_raw_corpus


def _upload(root: Path, endpoint: str, bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root)}")


@pytest.mark.integration
def test_curate_from_s3_into_an_s3_lake(tmp_path, s3_bucket, ray_session):
    endpoint, bucket = s3_bucket
    raw = tmp_path / "raw"
    make_raw_corpus(raw)
    _upload(raw, endpoint, bucket, "raw")
    config = CurateConfig.model_validate({
        "lake_root": f"s3://{bucket}/lake",
        "sources": [{"kind": "manifest", "uri": f"s3://{bucket}/raw/manifest.jsonl"},
                    {"kind": "webdataset", "uri": f"s3://{bucket}/raw/shards"}],
        "storage": {"s3_endpoint_url": endpoint, "s3_allow_http": True},
        "execution": {"commit_every_sources": 6},
    })
    s = run_curation(config, progress=lambda _: None)
    assert (s.inputs_processed, s.inputs_accepted, s.segments_written) == (12, 4, 4)
    opts = config.storage.lance_options()
    seg = lance.dataset(f"s3://{bucket}/lake/segments.lance", storage_options=opts)
    assert seg.count_rows() == 4
    uris = seg.to_table(columns=["source_uri"]).column("source_uri").to_pylist()
    assert all(u.startswith(f"s3://{bucket}/raw/") for u in uris)
    rej = lance.dataset(f"s3://{bucket}/lake/rejects.lance", storage_options=opts).to_table(columns=["reason"])
    assert "missing_file" in rej.column("reason").to_pylist()
    # nothing on local disk: the lake is only in the bucket
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("lake/segments.lance/") for k in keys)

    again = run_curation(config, progress=lambda _: None)
    assert again.inputs_processed == 0 and again.segments_written == 0
    assert lance.dataset(f"s3://{bucket}/lake/segments.lance", storage_options=opts).count_rows() == 4
    assert "segments" in summarize_lake(f"s3://{bucket}/lake", config.storage)
