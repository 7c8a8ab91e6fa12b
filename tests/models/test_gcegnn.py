import numpy as np
import pytest
import torch

import dr4sr.models.gcegnn as gcegnn
from dr4sr.config import from_dict
from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.gcegnn import GCEGNN, GCEGNNConfig, _SymmetricSpMM, normalize_edges, transition_edges


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


def make_model(store_root=None, fingerprint="", layers=3, seqs=None):
    torch.manual_seed(0)
    seqs = seqs or [np.array([1, 2, 3, 4]), np.array([2, 3, 5]), np.array([5, 1])]
    ctx = BuildContext(num_items=6, max_len=5, original_train=seqs, store_root=store_root,
                       dataset_fingerprint=fingerprint)
    return GCEGNN(GCEGNNConfig(graph_layers=layers), ctx)


def test_propagation_equals_dense_mean_of_layers():
    model = make_model()
    a = model.adjacency().to_dense()
    e = model.item_embedding.weight.detach()
    layers = [e]
    for _ in range(3):
        layers.append(a @ layers[-1])
    torch.testing.assert_close(model.propagate().detach(), torch.stack(layers).mean(0))
    assert model.num_edges == 16  # 8 undirected pairs among items 1..5


def test_symmetric_spmm_gradient_matches_dense():
    model = make_model()
    a = model.adjacency()
    x = torch.randn(7, 3, dtype=torch.float32, requires_grad=True)
    g = torch.randn(7, 3)
    _SymmetricSpMM.apply(a, x).backward(g)
    torch.testing.assert_close(x.grad, a.to_dense().t() @ g)


def test_table_is_shared_within_a_step_and_refreshed_after_an_update():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seqs, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    hidden = model(seqs, lengths)
    table = model.item_weights()
    assert model.item_weights() is table  # the loss reuses forward's propagation
    (hidden.sum() + table.sum()).backward()
    opt.step()
    new = model.item_weights()
    assert new is not table and not torch.equal(new, table)
    torch.testing.assert_close(new, model.propagate())
    model.eval()
    with torch.no_grad():
        t1 = model.item_weights()
        assert model.item_weights() is t1  # evaluation propagates once


def test_graph_is_cached_as_an_artifact(tmp_path, monkeypatch):
    first = make_model(str(tmp_path), "fp-1")
    (entry,) = list((tmp_path / "graph").iterdir())
    manifest = (entry / "manifest.json").read_text()
    assert '"splits": "fp-1"' in manifest and '"window": 2' in manifest

    def boom(*a, **k):
        raise AssertionError("graph rebuilt although cached")

    monkeypatch.setattr(gcegnn, "transition_edges", boom)
    second = make_model(str(tmp_path), "fp-1")
    torch.testing.assert_close(second.adj_val, first.adj_val)
    assert torch.equal(second.adj_col, first.adj_col)
    with pytest.raises(AssertionError, match="rebuilt"):
        make_model(str(tmp_path), "fp-2")  # another dataset: a new graph


def test_graph_from_the_training_rows_is_an_option_with_its_own_artifact(tmp_path):
    original = [np.array([1, 2, 3, 4]), np.array([2, 3, 5])]
    regenerated = [np.array([1, 2]), np.array([4, 5]), np.array([2, 3])]

    def build(source, rows):
        torch.manual_seed(0)
        ctx = BuildContext(num_items=6, max_len=5, original_train=original, store_root=str(tmp_path),
                           dataset_fingerprint="fp", training_rows=rows)
        return GCEGNN(GCEGNNConfig(graph_layers=1, graph_source=source), ctx)

    a, b = build("original", regenerated), build("training", regenerated)
    expected = normalize_edges(*transition_edges(regenerated, 6, [1.0, 0.5]), 6, "symmetric", False)
    assert np.allclose(b.adj_val.numpy(), expected[2]) and np.array_equal(b.adj_col.numpy(), expected[1])
    assert len(a.adj_val) != len(b.adj_val)  # (4, 5) is an edge only in the regenerated rows
    c = build("training", regenerated[:2])
    assert len(list((tmp_path / "graph").iterdir())) == 3  # one artifact per set of rows
    assert len(c.adj_val) < len(b.adj_val)
    with pytest.raises(ConfigError, match="training rows"):
        GCEGNN(GCEGNNConfig(graph_source="training"), BuildContext(num_items=6, max_len=5, original_train=original))
    with pytest.raises(ConfigError, match="model.graph_source"):
        from_dict(GCEGNNConfig, {"graph_source": "mined"}, "model.")


def test_state_dict_holds_no_graph_and_zero_layers_is_plain_sasrec_input():
    model = make_model(layers=0)
    assert not any(k.startswith("adj") for k in model.state_dict())
    assert not list(model.buffers())  # nothing for DDP to broadcast
    model.to(torch.float64)  # the graph moves with the module; indices stay integers
    assert model.adj_val.dtype == torch.float64 and model.adj_col.dtype == torch.int64
    assert model.propagate() is model.item_embedding.weight


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.graph_weights"):
        from_dict(GCEGNNConfig, {"graph_window": 3, "graph_weights": [1.0, 0.5]}, "model.")
    with pytest.raises(ConfigError, match="model.graph_norm"):
        from_dict(GCEGNNConfig, {"graph_norm": "row"}, "model.")
    with pytest.raises(ConfigError, match="original training"):
        GCEGNN(GCEGNNConfig(), BuildContext(num_items=3, max_len=5))


def test_deepcopy_and_pickle_after_a_forward_pass():
    import copy
    import pickle

    model = make_model()
    model(torch.tensor([[1, 2]]), torch.tensor([2]))  # leaves a cached table with an autograd graph
    clone = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    for other in (clone, restored):
        torch.testing.assert_close(other.propagate(), model.propagate())
