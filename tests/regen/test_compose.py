"""Training-row composition: which mined patterns join, cross-source dedupe, per-row source labels."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dr4sr.errors import ConfigError
from dr4sr.regen.compose import (
    ComposeConfig,
    TrainingRows,
    compose,
    composition_rows,
    mined_patterns,
    read_rows,
    regenerated_parts,
    write_rows,
)
from dr4sr.regen.config import build_regen_config


def _a(*x):
    return np.asarray(x, dtype=np.int64)


@pytest.fixture
def mine_dir(tmp_path):
    """A mine artifact with 4 patterns, of which patterns 2 and 0 are paired (2 first, twice)."""
    pats = [[1, 2], [3, 4], [5, 6, 7], [8, 9]]
    offsets = np.cumsum([0] + [len(p) for p in pats]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(pats), pa.int64()))
    pq.write_table(pa.table({"pattern": lists, "support": pa.array([2, 2, 3, 2], pa.int64())}),
                   tmp_path / "patterns.parquet")
    pq.write_table(pa.table({"user": pa.array([10, 11, 12], pa.int64()),
                             "pattern_id": pa.array([2, 0, 2], pa.int64())}),
                   tmp_path / "pairs.parquet")
    return tmp_path


def test_mined_paired_or_all(mine_dir):
    assert [p.tolist() for p in mined_patterns(mine_dir, "paired")] == [[5, 6, 7], [1, 2]]
    assert [p.tolist() for p in mined_patterns(mine_dir, "all")] == [[1, 2], [3, 4], [5, 6, 7], [8, 9]]


def test_dedupe_across_keeps_first_source_none_concatenates():
    parts = {"original": [_a(1, 2), _a(3, 4, 5), _a(1, 2)], "mined": [_a(1, 2), _a(7, 8)],
             "generated": [_a(7, 8), _a(9, 1)]}
    across = compose(parts, "across")
    assert [r.tolist() for r in across.rows] == [[1, 2], [3, 4, 5], [7, 8], [9, 1]]
    assert across.sources.tolist() == ["original", "original", "mined", "generated"]
    assert across.counts() == {"original": 2, "mined": 1, "generated": 1}
    none = compose(parts, "none")
    assert len(none) == 7 and none.counts() == {"original": 3, "mined": 2, "generated": 2}


def pattern_rows(train, mine_dir, cfg: ComposeConfig) -> TrainingRows:
    return composition_rows("mined+original", regenerated_parts(train, mine_dir, None, cfg.mined), cfg.dedupe)


def test_pattern_rows_and_data_id_follow_the_content(mine_dir):
    train = [_a(1, 2), _a(4, 3, 2)]
    paired = pattern_rows(train, mine_dir, ComposeConfig(mined="paired", dedupe="across"))
    assert [r.tolist() for r in paired.rows] == [[1, 2], [4, 3, 2], [5, 6, 7]]  # [1, 2] once, as original
    every = pattern_rows(train, mine_dir, ComposeConfig(mined="all", dedupe="none"))
    assert len(every) == 6 and every.counts() == {"original": 2, "mined": 4}
    assert paired.data_id("p") != every.data_id("p")
    assert paired.data_id("p") == pattern_rows(train, mine_dir, ComposeConfig("paired", "across")).data_id("p")
    assert every.data_id("p") == pattern_rows(train, mine_dir, ComposeConfig()).data_id("p")  # the default: all, none


def test_compositions_pick_their_sources():
    avail = {"original": [_a(1, 2)], "mined": [_a(3, 4)], "generated": [_a(5, 6), _a(3, 4)]}
    assert composition_rows("regenerated", avail, "across").counts() == {"generated": 2}
    assert composition_rows("regenerated+mined", avail, "across").counts() == {"mined": 1, "generated": 1}
    assert composition_rows("original", avail, "across").counts() == {"original": 1}
    with pytest.raises(ConfigError, match="composition"):
        composition_rows("mined-only", avail, "across")


def test_compose_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="compose.mined"):
        build_regen_config({"compose": {"mined": "some"}})
    with pytest.raises(ConfigError, match="compose.dedupe"):
        build_regen_config({"compose": {"dedupe": "within"}})
    with pytest.raises(ConfigError, match="compose.extra"):
        build_regen_config({"compose": {"extra": 1}})


def test_rows_round_trip_with_their_sources(tmp_path):
    rows = TrainingRows([_a(1, 2), _a(7), _a(3, 4, 5)], np.asarray(["original", "mined", "generated"], dtype=object))
    write_rows(tmp_path / "rows.parquet", rows)
    back = read_rows(tmp_path)
    assert [r.tolist() for r in back.rows] == [[1, 2], [7], [3, 4, 5]]
    assert back.sources.tolist() == ["original", "mined", "generated"]
    assert back.data_id("x") == rows.data_id("x")
