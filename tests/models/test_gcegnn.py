import numpy as np
import pytest
import torch

from dr4sr.config import from_dict
from dr4sr.data.graph import build_item_graph, normalize_edges, transition_edges
from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.gcegnn import GCEGNN, GCEGNNConfig, _SymmetricSpMM, graph_spec
from dr4sr.models.registry import build_backbone


def make_model(layers=3, seqs=None):
    torch.manual_seed(0)
    seqs = seqs or [np.array([1, 2, 3, 4]), np.array([2, 3, 5]), np.array([5, 1])]
    cfg = GCEGNNConfig(graph_layers=layers)
    ctx = BuildContext(num_items=6, max_len=5, item_graph=build_item_graph(graph_spec(cfg), seqs, 6))
    return GCEGNN(cfg, ctx)


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


def test_the_graph_comes_from_outside_the_model():
    original = [np.array([1, 2, 3, 4]), np.array([2, 3, 5])]
    regenerated = [np.array([1, 2]), np.array([4, 5]), np.array([2, 3])]

    def build(source):
        torch.manual_seed(0)
        ctx = BuildContext(num_items=6, max_len=5, original_train=original, training_rows=regenerated)
        return build_backbone("gcegnn", {"graph_layers": 1, "graph_source": source}, ctx)

    a, b = build("original"), build("training")
    expected = normalize_edges(*transition_edges(regenerated, 6, [1.0, 0.5]), 6, "symmetric", False)
    assert np.allclose(b.adj_val.numpy(), expected[2]) and np.array_equal(b.adj_col.numpy(), expected[1])
    assert len(a.adj_val) != len(b.adj_val)  # (4, 5) is an edge only in the regenerated rows
    with pytest.raises(ConfigError, match="item graph"):  # the model itself never builds one
        GCEGNN(GCEGNNConfig(), BuildContext(num_items=6, max_len=5, original_train=original))
    with pytest.raises(ConfigError, match="training rows"):
        build_backbone("gcegnn", {"graph_source": "training"}, BuildContext(num_items=6, max_len=5,
                                                                             original_train=original))
    with pytest.raises(ConfigError, match="model.graph_source"):
        from_dict(GCEGNNConfig, {"graph_source": "mined"}, "model.")
    too_big = build_item_graph(graph_spec(GCEGNNConfig()), [np.array([1, 9])], 9)
    with pytest.raises(ConfigError, match="num_items"):
        GCEGNN(GCEGNNConfig(), BuildContext(num_items=6, max_len=5, item_graph=too_big))


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
        build_backbone("gcegnn", {}, BuildContext(num_items=3, max_len=5))


def test_deepcopy_and_pickle_after_a_forward_pass():
    import copy
    import pickle

    model = make_model()
    model(torch.tensor([[1, 2]]), torch.tensor([2]))  # leaves a cached table with an autograd graph
    clone = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    for other in (clone, restored):
        torch.testing.assert_close(other.propagate(), model.propagate())
