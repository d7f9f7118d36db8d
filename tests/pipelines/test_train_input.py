"""The streaming training input on a tiny real lake: epoch contents, filters, shuffles, exact codes, Ray Train."""

from __future__ import annotations

import json

import lance
import numpy as np
import pytest

from pipelines.lance_io import table_uri
from pipelines.train_input import (index_training_rows, make_training_dataset, plan_epoch, read_training_batch,
                                   synthetic_rows_per_epoch, train_data_config)
from schemas.train_input import (LABELS, SPLITS, TRAIN_PLAN_SCHEMA, TrainInputError, parse_train_input_config)
from tests.train_input_lake import CODEC, FACTORIZER, OTHER_CODEC, train_input_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return train_input_lake(tmp_path_factory.mktemp("train_input"))


def _config(root: str, **kw):
    return parse_train_input_config({"lake_root": root, "codec_id": CODEC, "max_frames": 16, **kw})


def _sources(index) -> dict:
    return {n: (index.uris[n], index.versions[n]) for n in ("latents", "synthetic", "factors") if n in index.versions}


def _read(index, plan) -> dict[str, np.ndarray]:
    batch = {name: plan.column(name).to_numpy() for name in plan.column_names}
    return read_training_batch(batch, sources=_sources(index), max_frames=index.config.max_frames,
                               num_stages=index.num_stages)


@pytest.mark.parametrize("ratio", [0, 0.25, 0.5, 1, 4])
def test_an_epoch_holds_every_real_row_once_and_the_synthetic_quota(lake, ratio):
    root, segs, _ = lake
    index = index_training_rows(_config(root, synthetic_per_real=ratio))
    plan = plan_epoch(index, 0)
    assert plan.schema == TRAIN_PLAN_SCHEMA
    origin, items = plan.column("origin").to_numpy(), plan.column("item").to_numpy()
    real_items = items[origin == 0]
    assert index.n_real == 12 and sorted(real_items) == list(range(12))  # every train row, once
    assert (origin == 1).sum() == synthetic_rows_per_epoch(index) == int(np.floor(ratio * 12 + 0.5))
    syn = items[origin == 1] - index.n_real
    if ratio * 12 <= index.n_synthetic:  # enough pool: no repeats
        assert len(set(syn)) == len(syn)
    else:  # pool of 5 smaller than the quota: every row k or k + 1 times
        counts = np.bincount(syn, minlength=index.n_synthetic)
        assert counts.max() - counts.min() <= 1 and counts.sum() == len(syn)


def test_splits_gates_codec_and_lineage_are_filtered(lake):
    root, segs, recipes = lake
    index = index_training_rows(_config(root, synthetic_per_real=4))
    train_ids = {s["segment_id"] for s in segs if s["split"] == "train"}
    assert set(index.real.column("key").to_pylist()) == train_ids
    assert set(index.real.column("split").to_pylist()) == {SPLITS.index("train")}
    # synthetic: the 5 passed rows of this codec with train lineage; not the failed one (5), the test-content
    # one (6) nor the other codec's (7)
    assert sorted(index.synthetic.column("key").to_pylist()) == [f"syn{j:03d}" for j in range(5)]
    assert index.dropped["synthetic rows outside lineage_splits or lineage_filter, or without factors"] == 1
    no_check = index_training_rows(_config(root, synthetic_per_real=4, lineage_splits=None))
    assert sorted(no_check.synthetic.column("key").to_pylist()) == [f"syn{j:03d}" for j in range(5)] + ["syn006"]
    valid = index_training_rows(_config(root, real_filter="split = 'valid'"), vocab=index.vocab)
    assert valid.n_real == 2 and valid.vocab == index.vocab
    other = index_training_rows(_config(root, codec_id=OTHER_CODEC))
    assert other.n_real == 3


def test_lineage_filter_keeps_only_synthetic_rows_made_entirely_from_matching_segments(lake):
    root, segs, recipes = lake
    out = segs[1]["segment_id"]  # content of syn001, speaker donor of syn000
    index = index_training_rows(_config(root, synthetic_per_real=1, lineage_filter=f"segment_id <> '{out}'"))
    assert sorted(index.synthetic.column("key").to_pylist()) == ["syn002", "syn003", "syn004"]
    with pytest.raises(TrainInputError, match="lineage_filter"):
        index_training_rows(_config(root, synthetic_per_real=1, lineage_filter="no_such_column = 1"))
    with pytest.raises(TrainInputError, match="lineage_filter"):  # nothing left: says which check removed it
        index_training_rows(_config(root, synthetic_per_real=1, lineage_filter="split = 'test'"))


def test_synthetic_labels_are_the_targets_and_content_labels(lake):
    root, segs, recipes = lake
    index = index_training_rows(_config(root, synthetic_per_real=1))
    by_key = {k: i for i, k in enumerate(index.synthetic.column("key").to_pylist())}
    for j in range(5):
        row = index.synthetic.slice(by_key[f"syn{j:03d}"], 1).to_pylist()[0]
        content, donor = recipes[j]["content"], recipes[j]["donors"]["speaker"]
        assert index.vocab["speaker"][row["speaker"]] == donor["speaker"]
        assert index.vocab["transcript"][row["transcript"]] == content["transcript"]
        assert index.vocab["language"][row["language"]] == content["language"]


def test_epochs_differ_in_order_not_content_and_a_plan_is_a_function_of_seed_and_epoch(lake):
    root, _, _ = lake
    index = index_training_rows(_config(root, synthetic_per_real=0))
    e0, e1 = plan_epoch(index, 0), plan_epoch(index, 1)
    assert e0.column("item").to_pylist() != e1.column("item").to_pylist()
    assert sorted(e0.column("item").to_pylist()) == sorted(e1.column("item").to_pylist())
    plan_epoch(index, 7)  # what ran before does not matter
    assert plan_epoch(index, 1).equals(e1)
    again = index_training_rows(_config(root, synthetic_per_real=0))
    assert plan_epoch(again, 1).equals(e1)
    other_seed = index_training_rows(_config(root, synthetic_per_real=0, seed=3))
    assert plan_epoch(other_seed, 1).column("item").to_pylist() != e1.column("item").to_pylist()


def test_items_carry_the_tables_codes_for_their_window_and_the_lineage_vectors(lake):
    root, segs, recipes = lake
    index = index_training_rows(_config(root, synthetic_per_real=1, factorizer_id=FACTORIZER))
    plan = plan_epoch(index, 2)
    out = _read(index, plan)
    lat = lance.dataset(table_uri(root, "latents")).to_table(filter=f"codec_id = '{CODEC}'").to_pylist()
    syn = lance.dataset(table_uri(root, "synthetic")).to_table(columns=["synth_id", "codes", "num_stages"]).to_pylist()
    codes = {r["segment_id"]: np.asarray(r["codes"]).reshape(-1, r["num_stages"]) for r in lat}
    codes.update({r["synth_id"]: np.asarray(r["codes"]).reshape(-1, r["num_stages"]) for r in syn})
    seg_index = {s["segment_id"]: i for i, s in enumerate(segs)}
    recipe_of = {f"syn{j:03d}": r for j, r in enumerate(recipes)}
    assert out["codes"].dtype == np.uint16 and out["codes"].shape == (plan.num_rows, 16, 2)
    cropped = 0
    for i, (item, offset, length) in enumerate(zip(*(plan.column(c).to_pylist() for c in ("item", "offset",
                                                                                           "length")))):
        origin, key = index.key(item)
        full = codes[key]
        assert length == min(len(full), 16) == out["lengths"][i] and out["num_frames"][i] == len(full)
        np.testing.assert_array_equal(out["codes"][i, :length], full[offset:offset + length])
        assert not out["codes"][i, length:].any()
        cropped += offset > 0
        speaker_segment = key if origin == "real" else recipe_of[key]["donors"]["speaker"]["segment_id"]
        env_segment = key if origin == "real" else recipe_of[key]["content"]["segment_id"]
        assert out["speaker_vector"][i, 0] == pytest.approx(seg_index[speaker_segment] + 0.5)
        assert out["environment_vector"][i, 0] == pytest.approx(-(seg_index[env_segment] + 0.5))
        assert out["origin"][i] == (origin == "synthetic")
    assert cropped > 0  # rows longer than 16 frames were cropped at drawn offsets
    start = index_training_rows(_config(root, crop="start"))
    assert set(plan_epoch(start, 0).column("offset").to_pylist()) == {0}


@pytest.mark.slow  # 34 s at load 2, 65-90 s under the other helpers' load: mostly TorchTrainer start/stop; the
@pytest.mark.integration  # Ray Data path runs by default in the several-epochs test below and in tests/bench
def test_a_ray_train_worker_consumes_one_epoch_and_counts_the_planned_frames(lake, ray_session, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    root, _, _ = lake
    index = index_training_rows(_config(root, synthetic_per_real=1, factorizer_id=FACTORIZER, batch_size=5,
                                        rows_per_block=7))
    plan = plan_epoch(index, 0)
    dataset = make_training_dataset(index, 0)

    out = tmp_path / "totals.json"

    def loop(config: dict) -> None:  # Train V2 keeps no checkpoint-less metrics: the worker writes its totals
        import json

        import torch

        totals = {"frames": 0, "real": 0, "synthetic": 0, "batches": 0, "position_sum": 0}
        for batch in ray.train.get_dataset_shard("train").iter_torch_batches(batch_size=config["batch_size"]):
            assert batch["codes"].dtype == torch.uint16 and batch["speaker_vector"].shape[1] == 64
            totals["frames"] += int(batch["lengths"].sum())
            totals["synthetic"] += int(batch["origin"].sum())
            totals["real"] += int((batch["origin"] == 0).sum())
            totals["batches"] += 1
            totals["position_sum"] += int(batch["position"].sum())
        with open(config["out"], "w") as f:
            json.dump(totals, f)
        ray.train.report(totals)

    trainer = TorchTrainer(loop, train_loop_config={"batch_size": index.config.batch_size, "out": str(out)},
                           scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
                           run_config=ray.train.RunConfig(name="train-input-test", storage_path=str(tmp_path)),
                           datasets={"train": dataset}, dataset_config=train_data_config())
    trainer.fit()
    got = json.loads(out.read_text())
    assert got["frames"] == int(np.sum(plan.column("length").to_numpy()))
    assert (got["real"], got["synthetic"]) == (12, 12)
    assert got["batches"] == -(-24 // 5) and got["position_sum"] == sum(range(24))


def test_bad_inputs_raise_one_line_errors_before_any_ray_work(lake, tmp_path):
    root, _, _ = lake
    cases = [
        ({"real_filter": "split = 'nope'"}, "no latents of codec .* for segments matching real_filter"),
        ({"real_filter": "split = = 1"}, "real_filter .* cannot run"),
        ({"codec_id": "codec_missing"}, "no latents of codec 'codec_missing'.*codecs there"),
        ({"synthetic_per_real": 1, "synthetic_filter": "passed AND num_frames > 10000"},
         "no synthetic row of codec .* matches synthetic_filter"),
        ({"factorizer_id": "factorizer_missing"}, "factorizer 'factorizer_missing' has no rows.*factorizers there"),
        ({"lake_root": str(tmp_path / "empty")}, "no segments table"),
    ]
    for update, pattern in cases:
        with pytest.raises(TrainInputError, match=pattern) as exc:
            index_training_rows(_config(root, **update))
        assert "\n" not in str(exc.value)
    from tests.tiny_lake import segment_row, write_latents, write_segments

    bare = str(tmp_path / "bare")  # segments and latents, no synthetic or factors tables
    write_segments(bare, [segment_row(0.3, seed=1)])
    write_latents(bare, [segment_row(0.3, seed=1)], codec_id=CODEC)
    for update, pattern in [({"synthetic_per_real": 1}, "no synthetic table"),
                            ({"factorizer_id": FACTORIZER}, "no factors table")]:
        with pytest.raises(TrainInputError, match=pattern):
            index_training_rows(_config(bare, **update))
    assert index_training_rows(_config(bare)).n_real == 1
    for data, key in [({"max_frames": 0}, "max_frames"), ({"synthetic_per_real": -1}, "synthetic_per_real"),
                      ({"bogus": 1}, "bogus"), ({"codec_id": None}, "codec_id or codec_checkpoint")]:
        with pytest.raises(TrainInputError, match=key) as exc:
            _config(root, **data)
        assert "\n" not in str(exc.value)
    assert set(LABELS) >= {"speaker", "transcript", "environment", "channel"}


def test_a_codec_checkpoint_names_the_codec_and_a_broken_one_is_one_line(tmp_path):
    import torch

    from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
    from tests.tiny_lake import segment_row, write_latents, write_segments

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(path)[2].codec_id
    lake = str(tmp_path / "lake")
    rows = [segment_row(0.3, seed=i) for i in range(3)]
    write_segments(lake, rows)
    write_latents(lake, rows, codec_id=codec_id)
    index = index_training_rows(parse_train_input_config({"lake_root": lake, "codec_checkpoint": str(path)}))
    assert index.codec_id == codec_id and index.n_real == 3
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainInputError) as exc:
        index_training_rows(parse_train_input_config({"lake_root": lake, "codec_checkpoint":
                                                      str(tmp_path / "broken.pt")}))
    assert "broken.pt" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.integration
def test_a_dataset_of_several_epochs_resumed_mid_epoch_streams_the_rest_of_the_plans(lake, ray_session):
    root, _, _ = lake
    index = index_training_rows(_config(root, synthetic_per_real=0.5, rows_per_block=4))
    rows = make_training_dataset(index, [3, 4], start_position=5).take_all()
    n = index.n_real + synthetic_rows_per_epoch(index)
    assert len(rows) == 2 * n - 5
    assert sorted((r["epoch"], r["position"]) for r in rows) == [(3, p) for p in range(5, n)] + [(4, p)
                                                                                                 for p in range(n)]
    plan = plan_epoch(index, 4).to_pylist()
    got = {r["position"]: r for r in rows if r["epoch"] == 4}
    assert all(got[p["position"]]["item"] == p["item"] and got[p["position"]]["lengths"] == p["length"]
               for p in plan)
