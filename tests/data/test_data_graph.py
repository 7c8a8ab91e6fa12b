"""The item-item transition graph (GCE-GNN's), built from sequences outside any model."""
import numpy as np
import pytest

from dr4sr.data.graph import GraphSpec, build_item_graph, normalize_edges, transition_edges


def dense(rows, cols, vals, n):
    a = np.zeros((n, n))
    np.add.at(a, (rows, cols), vals)
    return a


def test_transition_edges_by_hand():
    # 1->2 (w1), 2->3 (w1), 1->3 (w1/2); second sequence repeats 1->2 and has a self-transition 3->3
    r, c, v = transition_edges([np.array([1, 2, 3]), np.array([1, 2]), np.array([3, 3])], 3, [1.0, 0.5])
    a = dense(r, c, v, 4)
    expected = np.zeros((4, 4))
    expected[1, 2] = expected[2, 1] = 2.0  # two occurrences add up
    expected[2, 3] = expected[3, 2] = 1.0
    expected[1, 3] = expected[3, 1] = 0.5
    np.testing.assert_allclose(a, expected)


def test_symmetric_normalisation_by_hand():
    r, c, v = transition_edges([np.array([1, 2, 3])], 3, [1.0, 0.5])
    rn, cn, vn = normalize_edges(r, c, v, 3, "symmetric")
    a = dense(rn, cn, vn, 4)
    deg = np.array([0.0, 1.5, 2.0, 1.5])  # weighted degrees
    assert a[1, 2] == pytest.approx(1.0 / np.sqrt(1.5 * 2.0))
    assert a[1, 3] == pytest.approx(0.5 / 1.5)
    np.testing.assert_allclose(a, a.T)
    assert (a[0] == 0).all() and deg[0] == 0  # padding is isolated
    assert list(rn) == sorted(rn)  # row-major for CSR


def test_authors_normalisation_with_self_loops():
    r, c, v = transition_edges([np.array([1, 2, 3])], 3, [1.0, 0.5])
    rn, cn, vn = normalize_edges(r, c, v, 3, "authors", self_loops=True)
    a = dense(rn, cn, vn, 4)
    # neighbour counts incl. the self-loop: every item has 3; A[1,2] = 1 * (1/3 + 1/3)
    assert a[1, 2] == pytest.approx(2 / 3)
    assert a[1, 1] == pytest.approx(2 / 3)
    assert a[1, 3] == pytest.approx(0.5 * 2 / 3)
    np.testing.assert_allclose(a, a.T)


def test_build_item_graph_is_the_normalised_transitions():
    seqs = [np.array([1, 2, 3]), np.array([3, 1])]
    spec = GraphSpec(window=1, weights=(1.0,), norm="authors", self_loops=True)
    graph = build_item_graph(spec, seqs, 3)
    expected = normalize_edges(*transition_edges(seqs, 3, [1.0]), 3, "authors", True)
    for got, want in zip((graph.rows, graph.cols, graph.values), expected):
        np.testing.assert_array_equal(got, want)
    assert len(graph) == len(expected[2])
    assert spec.key(3) == {"window": 1, "weights": [1.0], "norm": "authors", "self_loops": True, "num_items": 3}
