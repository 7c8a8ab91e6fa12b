"""The fast dropout and the functional encoder forward against torch's own modules."""
import pytest
import torch
from torch import nn

from dr4sr.models.layers import Dropout, dropout, encoder_forward, functional_encoder_forward


def _stack(d=16, heads=2, inner=32, p=0.0, layers=2):
    layer = nn.TransformerEncoderLayer(d, heads, inner, p, activation="gelu", layer_norm_eps=1e-12,
                                       batch_first=True, norm_first=False)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.9])
def test_dropout_rate_and_expectation(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(400_000), p)
    kept = (y != 0).float().mean().item()
    assert abs(kept - (1 - p)) < 0.004  # 400k Bernoulli draws: std <= 0.0008
    assert abs(y.mean().item() - 1.0) < 0.01  # scale 1/(1-p) keeps the expectation
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and len(values) == 2 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_dropout_lanes_are_independent():
    # four mask bits come from one 64-bit word: neighbouring elements must still be uncorrelated
    torch.manual_seed(1)
    m = (dropout(torch.ones(400_000), 0.5) != 0).float().view(-1, 4)
    corr = torch.corrcoef(m.t())
    assert (corr - torch.eye(4)).abs().max() < 0.01


def test_dropout_identity_cases_gradient_and_seed():
    x = torch.randn(3, 5, requires_grad=True)
    assert dropout(x, 0.0) is x and dropout(x, 0.5, training=False) is x
    torch.manual_seed(3)
    y = dropout(x, 0.5)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)  # the gradient goes through the same mask
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.5), y)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    mod = Dropout(0.5)
    assert mod.eval()(x) is x and isinstance(mod, nn.Dropout)


def test_encoder_forward_matches_torch_causal_and_padding():
    torch.manual_seed(0)
    stack = _stack().eval()
    x = torch.randn(4, 7, 16)
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)
    torch.testing.assert_close(functional_encoder_forward(stack, x, causal), stack(x, mask=causal),
                               atol=1e-5, rtol=1e-5)
    pad = torch.zeros(4, 7, dtype=torch.bool)
    pad[1, 4:] = pad[3, 2:] = True
    got = functional_encoder_forward(stack, x, key_padding_mask=pad)
    want = stack(x, src_key_padding_mask=pad)
    keep = ~pad  # torch's fast path may zero padded rows; only real positions are compared
    torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=1e-5)


def test_encoder_forward_trains_like_torch_without_dropout():
    torch.manual_seed(0)
    stack = _stack(p=0.0).train()
    x = torch.randn(2, 5, 16, requires_grad=True)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    encoder_forward(stack, x, causal).square().sum().backward()
    ours = [q.grad.clone() for q in stack.parameters()]
    stack.zero_grad()
    stack(x, mask=causal).square().sum().backward()
    for a, b in zip(ours, (q.grad for q in stack.parameters())):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_encoder_forward_applies_attention_dropout_in_training_only():
    torch.manual_seed(0)
    stack = _stack(p=0.5).train()
    x = torch.randn(2, 5, 16)
    torch.manual_seed(1)
    a = encoder_forward(stack, x)
    torch.manual_seed(2)
    assert not torch.allclose(a, encoder_forward(stack, x))
    stack.eval()
    assert torch.equal(encoder_forward(stack, x), stack(x))  # eval: torch's own path
    torch.testing.assert_close(functional_encoder_forward(stack, x), stack(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [6, 33])  # both sides of MIX_MATERIALISE_MAX_LEN: mix after / before W2
def test_regenerator_mixed_memory_equals_mixing_the_k_memories(length):
    from dr4sr.regen.config import RegeneratorConfig
    from dr4sr.regen.model import MIX_MATERIALISE_MAX_LEN, Regenerator

    assert 6 <= MIX_MATERIALISE_MAX_LEN < 33
    torch.manual_seed(0)
    model = Regenerator(RegeneratorConfig(hidden_size=16, num_heads=2, inner_size=32, k=3, max_positions=40),
                        num_items=20)
    with torch.no_grad():
        model.memory_mlp[2].bias.normal_()  # a non-zero bias: it is mixed by pi too
    m = torch.randn(4, length, 16, requires_grad=True)
    pi = torch.softmax(torch.randn(4, 3), -1).requires_grad_()
    want = (pi[:, :, None, None] * model.memories(m)).sum(1)
    got = model.mixed_memory(m, pi)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    g_want = torch.autograd.grad(want.square().sum(), [m, pi])
    g_got = torch.autograd.grad(got.square().sum(), [m, pi])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
