"""The personalizer's constant mode with per-source weights (`personalizer.source_weights`)."""
import numpy as np
import pyarrow.parquet as pq
import pytest

import dr4sr.personalizer  # noqa: F401  (registers the training extension)
from dr4sr.artifacts import artifact_id
from dr4sr.config import parse_overrides
from dr4sr.errors import ConfigError
from dr4sr.train.runner import build_run_config, prepare_splits, train_key, train_stage

FAST = ["model.dropout=0.0", "train.batch_size=16", "train.lr=0.005", "personalizer.enabled=true",
        "personalizer.mode=constant"]
SOURCES = ("mined", "generated", "original")  # row u has source SOURCES[u % 3]


def _cfg(dataset, extra=()):
    return build_run_config("sasrec", str(dataset), parse_overrides(FAST + list(extra)))


def test_weight_table_holds_each_sources_weight(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, ["train.max_epochs=1", "train.patience=5", "personalizer.warmup_epochs=0",
                              "personalizer.source_weights.original=0.25",
                              "personalizer.source_weights.generated=0.75"])
    splits = prepare_splits(cfg)
    sources = [SOURCES[u % 3] for u in range(len(splits.train))]
    m = train_stage(cfg, tmp_path / "run", row_sources=sources, log=lambda *_: None)
    table = pq.read_table(tmp_path / "run" / "personalizer_weights.parquet").to_pandas()
    source = np.array(SOURCES, dtype=object)[table["row"].to_numpy() % 3]
    # mined is absent from the mapping: today's rule keeps it fixed at 1
    expected = {"mined": 1.0, "generated": 0.75, "original": 0.25}
    for name, w in expected.items():
        rows = table[source == name]
        assert len(rows) > 0 and np.all(rows["weight"] == np.float32(w)), name
    assert np.array_equal(table["fixed"].to_numpy(), source == "mined")
    assert m["personalizer"]["fixed_rows"] == sources.count("mined")


def test_a_source_named_at_1_is_weighed_not_fixed(tiny_dataset):
    from dr4sr.personalizer.setup import fixed_mask, source_presets

    cfg = _cfg(tiny_dataset, ["personalizer.source_weights.mined=1", "personalizer.constant_weight=0.1"])
    p = cfg.personalizer
    assert p.source_weights == {"mined": 1.0}
    sources = ["mined", "original", "generated"]
    assert source_presets(p, sources, 3).tolist() == pytest.approx([1.0, 0.1, 0.1])
    assert fixed_mask(sources, [s for s in p.fixed_sources if s not in p.source_weights], 3) is None


def test_unset_source_weights_keep_the_ids_and_set_ones_change_them():
    inputs = {"splits": "x", "sequences": "original"}

    def tid(*extra):
        return artifact_id("train", train_key(build_run_config("sasrec", "beauty", parse_overrides(
            ["personalizer.enabled=true", *extra]))), inputs)

    assert tid() == "48901136b9386ce4"  # the golden DR4SR+ id (tests/personalizer/test_bilevel.py)
    const = tid("personalizer.mode=constant")
    assert tid("personalizer.mode=constant", "personalizer.source_weights={}") == const
    a = tid("personalizer.mode=constant", "personalizer.source_weights.original=0.5")
    assert a != const
    assert tid("personalizer.mode=constant", "personalizer.source_weights={original: 0.50}") == a


@pytest.mark.parametrize("item,match", [
    ("personalizer.source_weights.patterns=0.5", r"personalizer\.source_weights\.patterns: unknown source"),
    ("personalizer.source_weights.original=1.5", r"personalizer\.source_weights\.original must be .*\[0, 1\]"),
    ("personalizer.source_weights.original=-0.1", r"personalizer\.source_weights\.original must be"),
    ("personalizer.source_weights.generated=abc", r"personalizer\.source_weights\.generated must be"),
    ("personalizer.source_weights=0.5", r"personalizer\.source_weights"),
])
def test_bad_source_weights_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        _cfg("beauty", [item])


def test_source_weights_are_ignored_outside_constant_mode_and_keep_the_id():
    # like constant_weight: a study can vary them beside a personalizer-mode dimension; bilevel runs that
    # differ only in them are one artifact
    inputs = {"splits": "x", "sequences": "original"}

    def tid(*extra):
        return artifact_id("train", train_key(build_run_config("sasrec", "beauty", parse_overrides(
            ["personalizer.enabled=true", *extra]))), inputs)

    assert tid("personalizer.source_weights.original=0.5") == tid() == "48901136b9386ce4"
    assert tid("personalizer.enabled=false", "personalizer.source_weights.original=0.5") == tid(
        "personalizer.enabled=false")
