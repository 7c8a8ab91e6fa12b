"""The executor: one path for every stage kind (lookup, build, reuse) with progress as events."""
from __future__ import annotations

import pyarrow.parquet as pq

from dr4sr.pipeline import RunRequest, prepare_run
from dr4sr.regen.compose import read_rows
from dr4sr.stages import StageGraph, execute, stage_id


def test_events_then_reuse_and_the_composed_rows(tiny_dataset, tmp_path):
    run = prepare_run(RunRequest(str(tiny_dataset), variant="pattern", smoke_test=True,
                                 store_root=str(tmp_path / "store")), tmp_path / "out")
    rows_stage = run.graph.target.data  # mine -> compose: no training
    events = []
    built = execute(StageGraph(rows_stage), run.store, lambda e, s, aid: events.append((e, s.kind, aid)),
                    log=lambda *_: None)
    mine_id, rows_id = stage_id(rows_stage.mine), stage_id(rows_stage)
    assert events == [("start", "mine", mine_id), ("done", "mine", mine_id),
                      ("start", "compose", rows_id), ("done", "compose", rows_id)]
    assert built[rows_stage].path == run.store.root / "compose" / rows_id
    # the default compose (mined=all, dedupe=none): the 60 users' rows, then every mined pattern once
    n_patterns = pq.read_metadata(built[rows_stage.mine].path / "patterns.parquet").num_rows
    rows = read_rows(built[rows_stage].path)
    assert rows.sources.tolist() == ["original"] * 60 + ["mined"] * n_patterns
    assert [r.tolist() for r in rows.rows[:60]] == [s.tolist() for s in run.splits.train]
    assert built[rows_stage].manifest["rows"] == {"original": 60, "mined": n_patterns}
    events.clear()
    execute(StageGraph(rows_stage), run.store, lambda e, s, aid: events.append((e, s.kind)), log=lambda *_: None)
    assert events == [("cached", "mine"), ("cached", "compose")]
