"""GCE-GNN's item graph as a stored "graph" artifact: a stage of its own (dr4sr.stages), built once per
(spec, sequences), never by the model."""
from types import SimpleNamespace

import numpy as np
import pytest

import dr4sr.data.graph as graph_mod
from dr4sr.artifacts import ArtifactStore
from dr4sr.data.graph import GraphSpec
from dr4sr.errors import ConfigError
from dr4sr.regen.compose import TrainingRows, write_rows
from dr4sr.stages import StageGraph, execute, stage_id
from dr4sr.stages.kinds import GraphStage
from dr4sr.train.graph import read_graph

ORIGINAL = [np.array([1, 2, 3, 4]), np.array([2, 3, 5]), np.array([5, 1])]
ROWS = [np.array([1, 2]), np.array([4, 5])]
QUIET = {"log": lambda *_: None}


def splits(fingerprint="fp-1", train=ORIGINAL):
    return SimpleNamespace(fingerprint=fingerprint, num_items=6, train=train)


class Rows:
    """A stand-in compose stage that writes fixed rows."""
    kind, label, resumable = "compose", "rows", False
    inputs: dict = {}

    def __init__(self, rows):
        self.rows = rows

    def key(self):
        return {"rows": [r.tolist() for r in self.rows]}

    def id_inputs(self, ids, store):
        return {}

    def build(self, inputs, writer):
        write_rows(writer.dir / "rows.parquet", TrainingRows(self.rows, np.full(len(self.rows), "generated", object)))


def build(stage, store):
    return read_graph(execute(StageGraph(stage), store, **QUIET)[stage].path)


def test_graph_is_cached_as_an_artifact(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    first = build(GraphStage(splits(), GraphSpec()), store)
    (entry,) = list((tmp_path / "graph").iterdir())
    manifest = (entry / "manifest.json").read_text()
    assert '"splits": "fp-1"' in manifest and '"window": 2' in manifest

    def boom(*a, **k):
        raise AssertionError("graph rebuilt although cached")

    monkeypatch.setattr(graph_mod, "transition_edges", boom)
    second = build(GraphStage(splits(), GraphSpec()), store)
    np.testing.assert_array_equal(second.values, first.values)
    np.testing.assert_array_equal(second.cols, first.cols)
    with pytest.raises(AssertionError, match="rebuilt"):
        build(GraphStage(splits("fp-2"), GraphSpec()), store)  # another dataset: a new graph


def test_graph_ids_are_those_the_model_used_to_cache_under():
    # known answers from when GCE-GNN built and cached its graph inside its constructor (training = its rows)
    assert stage_id(GraphStage(splits(), GraphSpec("original"))) == "1b6210af997a4159"
    assert stage_id(GraphStage(splits(train=ROWS), GraphSpec("training"))) == "8a31027cdecbaf6b"


def test_one_graph_artifact_per_set_of_training_rows(tmp_path):
    store = ArtifactStore(tmp_path)
    spec = GraphSpec("training")
    a = build(GraphStage(splits(), spec, Rows(ROWS)), store)
    b = build(GraphStage(splits(), spec, Rows(ROWS[:1])), store)
    assert len(list((tmp_path / "graph").iterdir())) == 2 and len(b) < len(a)
    # the original-sequence graph ignores the rows: one artifact whatever the model trains on
    assert stage_id(GraphStage(splits(), GraphSpec(), Rows(ROWS))) == stage_id(GraphStage(splits(), GraphSpec()))


def test_a_graph_needs_its_sequences():
    with pytest.raises(ConfigError, match="training rows"):
        graph_mod.graph_sequences(GraphSpec("training"), ORIGINAL, None)
