"""The query CLI on a lake in S3 (real S3 API on loopback): SQL, time travel, history, diff, show."""

from __future__ import annotations

import pytest

from pipelines.query.cli import main
from pipelines.query.lake import query_lake
from schemas.storage import StorageConfig
from tests.pipelines.query.history_lake import build_history_lake


def test_query_a_lake_in_s3(s3_bucket, capsys):
    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    lake = build_history_lake(f"s3://{bucket}/lake", storage)
    t = query_lake(lake.root, "SELECT count(*) AS n, sum(l.duration_s) AS s FROM segments JOIN latents l "
                              "USING (segment_id)", storage)
    assert t.column("n").to_pylist() == [4] and t.column("s").to_pylist()[0] == pytest.approx(sum(lake.durations_s))
    flags = ["--lake-root", lake.root, "--s3-endpoint-url", endpoint, "--s3-allow-http"]

    assert main(["sql", "SELECT count(*) AS n FROM segments@1", *flags]) == 0
    assert capsys.readouterr().out.splitlines()[2].strip() == "2"
    assert main(["show", "segments", "--run-id", "r1", "--columns", "segment_id", *flags]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 rows"
    assert main(["history", "segments", *flags]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:-1]] == ["r1", "r2"]
    assert main(["diff", "segments", "1", "2", *flags]) == 0
    assert "+2 added" in capsys.readouterr().err
    assert main(["sql", "SELECT * FROM nope", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
