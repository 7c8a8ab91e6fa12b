"""The closed-form ReLU NTK against the empirical NTK of finite wide networks (Monte Carlo over inits)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dr4sr.baselines.ntk import kernel_rows, relu_ntk


def inputs(dim: int = 40, seed: int = 0) -> np.ndarray:
    """Sparse binary rows like users' item sets (1 to 12 items, two overlapping pairs), one dense row."""
    rng = np.random.default_rng(seed)
    x = np.zeros((6, dim))
    for i, n in enumerate((1, 3, 5, 12, 5)):
        x[i, rng.choice(dim, n, replace=False)] = 1
    x[4, :3] = x[2, :3] = 1  # an overlap
    x[5] = rng.standard_normal(dim)
    return x


def empirical_ntk(x: np.ndarray, widths: list[int], w_std: float, b_std: float, seed: int) -> np.ndarray:
    """Sum over parameters of df(x_i)/dp * df(x_j)/dp for one random init of an MLP in NTK parameterisation
    (each layer W_std / sqrt(fan_in) * W h + b_std * b, W, b ~ N(0, 1)) with one output."""
    g = torch.Generator().manual_seed(seed)
    sizes = [x.shape[1], *widths, 1]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64, requires_grad=True),
                   torch.randn(fan_out, generator=g, dtype=torch.float64, requires_grad=True)]

    def f(v: torch.Tensor) -> torch.Tensor:
        h = v
        for layer in range(len(sizes) - 1):
            w, b = params[2 * layer], params[2 * layer + 1]
            h = w_std / math.sqrt(w.shape[1]) * (w @ h) + b_std * b
            if layer < len(sizes) - 2:
                h = torch.relu(h)
        return h.sum()

    xs = torch.from_numpy(x)
    jac = torch.stack([torch.cat([g_.reshape(-1) for g_ in torch.autograd.grad(f(v), params)]) for v in xs])
    return (jac @ jac.T).numpy()


def closed_form(x: np.ndarray, depth: int, w_std: float, b_std: float) -> np.ndarray:
    sq = (x * x).sum(1)
    return relu_ntk(x @ x.T, sq, sq, x.shape[1], depth, w_std, b_std)


@pytest.mark.parametrize("w_std,b_std", [(math.sqrt(2), 0.1), (1.0, 0.5)])  # the reference's, and a large bias
def test_depth1_matches_a_width_20000_network(w_std, b_std):
    x = inputs()
    mc = np.mean([empirical_ntk(x, [20000], w_std, b_std, seed) for seed in range(4)], axis=0)
    exact = closed_form(x, 1, w_std, b_std)
    # finite width fluctuates by a few % on these inputs: the mean of four inits is within 2.2% here
    np.testing.assert_allclose(mc, exact, rtol=0.03)


def test_depth2_matches_a_wide_network():
    x = inputs(seed=1)
    # two hidden layers fluctuate more (~5% per init at width 3000): many narrower inits instead
    mc = np.mean([empirical_ntk(x, [2000, 2000], math.sqrt(2), 0.1, seed) for seed in range(16)], axis=0)
    np.testing.assert_allclose(mc, closed_form(x, 2, math.sqrt(2), 0.1), rtol=0.06)


def test_depth1_hand_value():
    # one item each, no overlap, d = 4: Sigma = 2/4 * <x,y> + 0.01, so 0.51 on the diagonal and 0.01 off it
    x = np.eye(4)[:2]
    k = closed_form(x, 1, math.sqrt(2), 0.1)
    q, cos = 0.51, 0.01 / 0.51
    theta = math.acos(cos)
    off = q * (math.sin(theta) + (math.pi - theta) * cos) / math.pi + 0.01 + (math.pi - theta) / math.pi * 0.01
    diag = q + 0.01 + q  # theta = 0: Sigma' = q + b^2, and the derivative term is 1 * Sigma
    np.testing.assert_allclose(k, [[diag, off], [off, diag]], rtol=1e-12)


def test_blockwise_sparse_kernel_equals_the_dense_formula():
    rng = np.random.default_rng(3)
    x = (rng.random((11, 9)) < 0.3).astype(np.float32)
    x[0] = 0  # an empty row is allowed
    xs = sp.csr_matrix(x)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        out = kernel_rows(xs, xs, 9, np.empty((11, 11), dtype), block=4)
        np.testing.assert_allclose(out, closed_form(x.astype(np.float64), 1, math.sqrt(2), 0.1), rtol=tol)
        np.testing.assert_array_equal(out, out.T)
