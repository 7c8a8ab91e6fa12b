import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from planted import planted_data
from planted import SMALL, planted_splits

from dr4sr.artifacts import ArtifactStore
from dr4sr.errors import ConfigError
from dr4sr.regen.config import build_regen_config
from dr4sr.regen.stage import (COMPOSITIONS, load_mined, regenerate_pipeline, regenerate_stage,
                               training_sequences)

OVERRIDES = {"init": {"mode": "scratch"}, "regen": dataclasses.asdict(SMALL),
             "pretrain": {"max_epochs": 3, "batch_size": 64, "device": "cpu"},
             "mine": {"alpha": 4, "beta": 5, "max_pairs_per_sequence": 3},
             "regenerate": {"gamma": 0.2, "max_length": 6, "device": "cpu"}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    seqs, users, _ = planted_data(150, seed=4)
    splits = planted_splits(seqs, users)
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    cfg = build_regen_config(OVERRIDES)
    logs = []
    art = regenerate_pipeline(splits, cfg, store, workers=1, log=logs.append)
    return splits, store, cfg, art, logs


def test_pipeline_writes_dataset_and_stats(pipeline):
    splits, store, cfg, art, _ = pipeline
    table = pq.read_table(art.path / "dataset.parquet")
    assert table.schema.names == ["sequence", "user", "k", "source"]
    src = table.column("source").to_numpy(zero_copy_only=False)
    stats = json.loads((art.path / "stats.json").read_text())
    assert stats["rows"]["original"] == len(splits.train) == 150
    assert stats["rows"]["generated"] == int((src == "generated").sum()) > 0
    assert stats["generated_rows_before_dedupe"] == 150 * SMALL.k
    gen = stats["regenerated"]
    assert gen["sequences"] == stats["rows"]["generated"] and gen["items"] == splits.num_items
    assert 2 <= gen["avg_length"] <= 6 and 0 < gen["sparsity"] < 1
    k = table.column("k").to_numpy()
    assert set(k[src == "generated"]) <= set(range(SMALL.k)) and (k[src != "generated"] == -1).all()
    manifest = art.manifest
    assert set(manifest["inputs"]) == {"splits", "pretrain", "mine"} and manifest["config"]["gamma"] == 0.2


def test_compositions(pipeline):
    splits, store, cfg, art, _ = pipeline
    comps = {c: training_sequences(art, c) for c in COMPOSITIONS}
    assert [s.tolist() for s in comps["original"]] == [s.tolist() for s in splits.train]
    as_set = {c: {tuple(s.tolist()) for s in v} for c, v in comps.items()}
    for c in ("regenerated", "regenerated+mined", "regenerated+mined+original"):
        assert len(as_set[c]) == len(comps[c])  # deduplicated
    assert as_set["regenerated"] <= as_set["regenerated+mined"] <= as_set["regenerated+mined+original"]
    patterns, pair_user, pair_pattern = load_mined(store.root / "mine" / art.manifest["inputs"]["mine"])
    mined = {tuple(patterns[p].tolist()) for p in pair_pattern}
    assert as_set["regenerated+mined"] == as_set["regenerated"] | mined
    assert as_set["regenerated+mined+original"] == as_set["regenerated+mined"] | as_set["original"]
    with pytest.raises(ConfigError, match="composition"):
        training_sequences(art, "mined-only")


def test_stages_are_reused_and_gamma_only_reruns_regenerate(pipeline):
    splits, store, cfg, art, logs = pipeline
    logs2 = []
    again = regenerate_pipeline(splits, cfg, store, workers=1, log=logs2.append)
    assert again.id == art.id and any("reusing regenerated" in line for line in logs2)
    cfg2 = dataclasses.replace(cfg, regenerate=dataclasses.replace(cfg.regenerate, gamma=0.0, batch_size=7))
    logs3 = []
    other = regenerate_pipeline(splits, cfg2, store, workers=1, log=logs3.append)
    assert other.id != art.id and any("reusing pretrained" in line for line in logs3)
    gen = training_sequences(other, "regenerated")
    allowed = set(np.concatenate(splits.train).tolist())
    assert all(set(s.tolist()) <= allowed for s in gen)


def test_unknown_keys_are_config_errors():
    with pytest.raises(ConfigError, match="regen.kk"):
        build_regen_config({"regen": {"kk": 3}})
    with pytest.raises(ConfigError, match="regenerate.gamma"):
        build_regen_config({"regenerate": {"gamma": 1.5}})
    with pytest.raises(ConfigError, match="regenerate.restrict"):
        build_regen_config({"regenerate": {"restrict": "sorted"}})
    for bad in ({"span": 5}, {"restrict": "ordered", "span": 1}):  # span needs ordered; 1 leaves no pair
        with pytest.raises(ConfigError, match="regenerate.span"):
            build_regen_config({"regenerate": bad})
    assert build_regen_config({"regenerate": {"restrict": "ordered", "span": 5}}).regenerate.span == 5


@pytest.mark.slow
def test_ray_data_rows_equal_local_rows(pipeline, ray_session):
    splits, store, cfg, art, _ = pipeline
    pre = store.get("pretrain", art.manifest["inputs"]["pretrain"])
    mine = store.get("mine", art.manifest["inputs"]["mine"])
    cfg2 = dataclasses.replace(cfg, regenerate=dataclasses.replace(cfg.regenerate, seed=5, batch_size=32))
    local = regenerate_stage(splits, cfg2, ArtifactStore(store.root / "a"), pre, mine, workers=1, log=lambda *_: None)
    cfg3 = dataclasses.replace(cfg2, regenerate=dataclasses.replace(cfg2.regenerate, batch_size=19))
    dist = regenerate_stage(splits, cfg3, ArtifactStore(store.root / "b"), pre, mine, workers=2, log=lambda *_: None)
    assert local.id == dist.id
    assert pq.read_table(local.path / "dataset.parquet").equals(pq.read_table(dist.path / "dataset.parquet"))
