"""`dr4sr run` with the personalizer: every backbone, locally and on 2 Ray Train workers, and `--variant dr4sr+`."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dr4sr.cli import main

BACKBONES = ["sasrec", "gru4rec", "fmlp", "gcegnn", "cl4srec", "bert4rec"]
ON = ["personalizer.enabled=true", "personalizer.warmup_epochs=0", "personalizer.t_lower=2",
      "train.batch_size=16", "model.dropout=0.0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")  # one mining artifact shared by every run of this module


def _run(dataset, out, store, variant, backbone="sasrec", workers=1, extra=()):
    """A --smoke-test run; `out` ends in -smoke, so the CLI writes there (not to OUT-smoke)."""
    args = ["run", "--dataset", str(dataset), "--out", str(out), "--store", str(store), "--smoke-test",
            "--variant", variant, "--backbone", backbone, "--workers", str(workers)]
    for item in [*ON, *extra]:
        args += ["--set", item]
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())


def _check_pattern_outputs(out, metrics):
    p = metrics["personalizer"]
    assert p["upper_steps"] >= 1 and p["upper_seconds"] > 0
    table = pq.read_table(out / "personalizer_weights.parquet").to_pandas()
    assert len(table) == metrics["train_targets"]
    fixed = table["fixed"].to_numpy()
    # pattern data = mined patterns (fixed at weight 1) + the originals (re-weighted)
    assert metrics["rows_by_source"]["mined"] == p["fixed_rows"] > 0
    assert np.all(table["weight"][fixed] == 1.0)
    assert table["weight"][~fixed].between(0, 1, inclusive="neither").all()
    assert (out / "personalizer.pt").exists()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_personalizer_on_pattern_data_every_backbone(tiny_dataset, tmp_path, store, backbone):
    metrics = _run(tiny_dataset, tmp_path / f"{backbone}-smoke", store, "pattern", backbone)
    assert metrics["variant"] == "pattern" and metrics["config"]["personalizer"]["enabled"]
    _check_pattern_outputs(tmp_path / f"{backbone}-smoke", metrics)


@pytest.mark.slow  # 20-40 s each: a Ray Train start on the shared 2-core machine
@pytest.mark.parametrize("backbone", BACKBONES)
def test_personalizer_on_two_workers_every_backbone(tiny_dataset, tmp_path, store, backbone, ray_session):
    # another seed than the local test's, else the shared store hands back that run's train artifact
    metrics = _run(tiny_dataset, tmp_path / f"{backbone}-smoke", store, "pattern", backbone, workers=2,
                   extra=["train.seed=1"])
    assert metrics["world_size"] == 2
    _check_pattern_outputs(tmp_path / f"{backbone}-smoke", metrics)


@pytest.mark.slow  # the whole regeneration pipeline, 2 epochs per stage
def test_dr4sr_plus_variant_is_dr4sr_data_with_the_personalizer(tiny_dataset, tmp_path, store):
    plus = _run(tiny_dataset, tmp_path / "plus-smoke", store, "dr4sr+", extra=["regen.k=2"])
    plain = _run(tiny_dataset, tmp_path / "plain-smoke", store, "dr4sr",
                 extra=["regen.k=2", "personalizer.enabled=false"])
    assert plus["variant"] == "dr4sr+" and plus["config"]["personalizer"]["enabled"]
    assert plus["regenerate_artifact"] == plain["regenerate_artifact"]  # the same data recipe
    assert plus["train_rows"] == plain["train_rows"] and plus["train_artifact"] != plain["train_artifact"]
    assert "personalizer" not in plain and not (tmp_path / "plain-smoke" / "personalizer_weights.parquet").exists()
    assert plus["personalizer"]["fixed_rows"] == plus["rows_by_source"]["mined"]
    table = pq.read_table(tmp_path / "plus-smoke" / "personalizer_weights.parquet").to_pandas()
    assert len(table) == plus["train_targets"]


@pytest.mark.slow  # the regeneration pipeline (reused from the test above when it ran first)
def test_dr4sr_plus_variant_trains_bert4rec_on_its_masked_targets(tiny_dataset, tmp_path, store):
    plus = _run(tiny_dataset, tmp_path / "b4r-plus-smoke", store, "dr4sr+", "bert4rec", extra=["regen.k=2"])
    assert plus["variant"] == "dr4sr+" and plus["config"]["backbone"] == "bert4rec"
    assert plus["personalizer"]["upper_steps"] >= 1
    assert plus["personalizer"]["fixed_rows"] == plus["rows_by_source"]["mined"] > 0
    # one weight per item of every row: the targets a mask can pick, each scored alone masked
    table = pq.read_table(tmp_path / "b4r-plus-smoke" / "personalizer_weights.parquet").to_pandas()
    assert len(table) == plus["train_targets"] and len(set(zip(table["row"], table["position"]))) == len(table)
    assert table["weight"][~table["fixed"].to_numpy()].between(0, 1, inclusive="neither").all()


@pytest.mark.slow  # the regeneration pipeline (reused from the test above when it ran first)
def test_constant_variant_weighs_every_non_mined_row_one_half(tiny_dataset, tmp_path, store):
    const = _run(tiny_dataset, tmp_path / "const-smoke", store, "constant", extra=["regen.k=2"])
    assert const["variant"] == "constant" and const["config"]["personalizer"]["mode"] == "constant"
    table = pq.read_table(tmp_path / "const-smoke" / "personalizer_weights.parquet").to_pandas()
    fixed = table["fixed"].to_numpy()
    assert fixed.sum() > 0 and (~fixed).sum() > 0
    assert set(table["weight"][fixed]) == {1.0} and set(table["weight"][~fixed]) == {0.5}
    # --set still wins over the variant's own personalizer settings
    other = _run(tiny_dataset, tmp_path / "const2-smoke", store, "constant",
                 extra=["regen.k=2", "personalizer.constant_weight=0.25"])
    assert other["config"]["personalizer"]["constant_weight"] == 0.25
    weights = pq.read_table(tmp_path / "const2-smoke" / "personalizer_weights.parquet").to_pandas()
    assert set(weights["weight"][~weights["fixed"].to_numpy()]) == {0.25}
    assert len(const["code_commit"]) >= 40 and const["run_wall_seconds"] > 0
