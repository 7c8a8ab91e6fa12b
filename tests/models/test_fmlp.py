import numpy as np
import pytest
import torch

from dr4sr.config import from_dict
from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.fmlp import FMLP, FilterLayer, FMLPConfig


def test_filter_layer_is_a_circular_convolution_over_max_len():
    torch.manual_seed(0)
    cfg = FMLPConfig(hidden_size=3, dropout=0.0)
    layer = FilterLayer(cfg, max_len=6).eval()
    x = torch.randn(2, 6, 3)
    w = torch.view_as_complex(layer.complex_weight.detach()).numpy()  # (4, 3)
    # reference: per channel, irfft(rfft(x) * w) with orthonormal scaling, then residual + LayerNorm
    ref = np.fft.irfft(np.fft.rfft(x.numpy(), axis=1, norm="ortho") * w[None], n=6, axis=1, norm="ortho")
    expected = layer.norm(torch.from_numpy(ref).float() + x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_identity_filter_doubles_the_input_before_the_norm():
    cfg = FMLPConfig(hidden_size=4, dropout=0.0)
    layer = FilterLayer(cfg, max_len=8).eval()
    with torch.no_grad():
        layer.complex_weight.zero_()
        layer.complex_weight[..., 0] = 1.0  # W = 1 + 0i at every frequency: irfft(rfft(x)) = x
    x = torch.randn(1, 8, 4)
    torch.testing.assert_close(layer(x), layer.norm(2 * x), rtol=1e-5, atol=1e-5)


def test_forward_runs_the_filter_at_max_len_whatever_the_batch_width():
    torch.manual_seed(0)
    model = FMLP(FMLPConfig(), BuildContext(num_items=20, max_len=10)).eval()
    short = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])  # batch padded to its own longest row
    full = torch.nn.functional.pad(short, (5, 0))  # the same rows padded to max_len
    with torch.no_grad():
        h_short, h_full = model(short, None), model(full, None)
    assert h_short.shape == (2, 5, 64) and h_full.shape == (2, 10, 64)
    torch.testing.assert_close(h_short, h_full[:, -5:])
    # non-causal: changing the first item changes the output at every position, the last included
    other = short.clone()
    other[1, 0] = 7
    with torch.no_grad():
        assert not torch.allclose(model(other, None)[1, -1], h_short[1, -1])


def test_last_hidden_shortcut_equals_the_last_position_of_forward():
    torch.manual_seed(0)
    model = FMLP(FMLPConfig(), BuildContext(num_items=20, max_len=10)).eval()
    seqs = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(model.last_hidden(seqs, None), model(seqs, None)[:, -1])


@pytest.mark.parametrize("max_len", [6, 7])  # even and odd transform lengths
def test_filter_last_position_equals_the_fft_path(max_len):
    torch.manual_seed(0)
    layer = FilterLayer(FMLPConfig(hidden_size=5, dropout=0.0), max_len=max_len).eval()
    x = torch.randn(3, max_len, 5)
    torch.testing.assert_close(layer.last(x), layer(x)[:, -1], rtol=1e-5, atol=1e-5)


def test_last_only_training_path_matches_and_backpropagates_like_the_full_path():
    torch.manual_seed(0)
    model = FMLP(FMLPConfig(dropout=0.0), BuildContext(num_items=20, max_len=10)).train()
    seqs = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    fast = model(seqs, None, last_only=True)
    slow = model(seqs, None)[:, -1:]
    assert fast.shape == (2, 1, 64)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    g_fast = torch.autograd.grad(fast.square().sum(), model.layers[-1][0].complex_weight)[0]
    g_slow = torch.autograd.grad(slow.square().sum(), model.layers[-1][0].complex_weight)[0]
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-5)


def test_padding_row_is_zero_and_too_long_input_is_rejected():
    model = FMLP(FMLPConfig(), BuildContext(num_items=5, max_len=4))
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 5, dtype=torch.long), None)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.dropout"):
        from_dict(FMLPConfig, {"dropout": 1.5}, "model.")
    with pytest.raises(ConfigError, match="model.inner_size"):
        from_dict(FMLPConfig, {"inner_size": 0}, "model.")
