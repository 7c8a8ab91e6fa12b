"""GCE-GNN's item graph as a cached "graph" artifact, built by the training code, not by the model."""
import numpy as np
import pytest

import dr4sr.data.graph as graph_mod
from dr4sr.data.graph import GraphSpec
from dr4sr.errors import ConfigError
from dr4sr.train.graph import cached_item_graph

ORIGINAL = [np.array([1, 2, 3, 4]), np.array([2, 3, 5]), np.array([5, 1])]
ROWS = [np.array([1, 2]), np.array([4, 5])]


def test_graph_is_cached_as_an_artifact(tmp_path, monkeypatch):
    first = cached_item_graph(GraphSpec(), 6, ORIGINAL, None, str(tmp_path), "fp-1")
    (entry,) = list((tmp_path / "graph").iterdir())
    manifest = (entry / "manifest.json").read_text()
    assert '"splits": "fp-1"' in manifest and '"window": 2' in manifest

    def boom(*a, **k):
        raise AssertionError("graph rebuilt although cached")

    monkeypatch.setattr(graph_mod, "transition_edges", boom)
    second = cached_item_graph(GraphSpec(), 6, ORIGINAL, None, str(tmp_path), "fp-1")
    np.testing.assert_array_equal(second.values, first.values)
    np.testing.assert_array_equal(second.cols, first.cols)
    with pytest.raises(AssertionError, match="rebuilt"):
        cached_item_graph(GraphSpec(), 6, ORIGINAL, None, str(tmp_path), "fp-2")  # another dataset: a new graph


def test_graph_ids_are_those_the_model_used_to_cache_under(tmp_path):
    # known answers from when GCE-GNN built and cached its graph inside its constructor
    cached_item_graph(GraphSpec("original"), 6, ORIGINAL, ROWS, str(tmp_path), "fp-1")
    cached_item_graph(GraphSpec("training"), 6, ORIGINAL, ROWS, str(tmp_path), "fp-1")
    assert sorted(p.name for p in (tmp_path / "graph").iterdir()) == ["1b6210af997a4159", "8a31027cdecbaf6b"]


def test_one_graph_artifact_per_set_of_training_rows(tmp_path):
    spec = GraphSpec("training")
    a = cached_item_graph(spec, 6, ORIGINAL, ROWS, str(tmp_path), "fp")
    b = cached_item_graph(spec, 6, ORIGINAL, ROWS[:1], str(tmp_path), "fp")
    assert len(list((tmp_path / "graph").iterdir())) == 2 and len(b) < len(a)
    with pytest.raises(ConfigError, match="training rows"):
        cached_item_graph(spec, 6, ORIGINAL, None, str(tmp_path), "fp")


def test_without_a_store_the_graph_is_built_and_nothing_written(tmp_path):
    graph = cached_item_graph(GraphSpec(), 6, ORIGINAL, None, None, "fp")
    assert len(graph) == 16 and not any(tmp_path.iterdir())
