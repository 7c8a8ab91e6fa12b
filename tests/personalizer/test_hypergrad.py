"""The Neumann hypergradient against the exact implicit gradient of ridge regression (closed form)."""
import numpy as np
import pytest
import torch

from dr4sr.personalizer.hypergrad import implicit_hypergradient, neumann_inverse_hvp

D = torch.float64  # exact comparisons: double precision throughout


def _problem(seed=0, n=40, m=30, d=5):
    g = torch.Generator().manual_seed(seed)
    X, Xd = torch.randn(n, d, generator=g, dtype=D), torch.randn(m, d, generator=g, dtype=D)
    w_true = torch.randn(d, generator=g, dtype=D)
    y = X @ w_true + 0.3 * torch.randn(n, generator=g, dtype=D)
    yd = Xd @ w_true + 0.3 * torch.randn(m, generator=g, dtype=D)
    phi = torch.linspace(-1.0, 0.5, d, dtype=D)  # per-coordinate log ridge penalties: the hyperparameters
    return X, y, Xd, yd, phi


def _train_loss(theta, phi, X, y):
    return 0.5 * ((X @ theta - y) ** 2).mean() + 0.5 * (phi.exp() * theta ** 2).sum()


def _dev_loss(theta, Xd, yd):
    return 0.5 * ((Xd @ theta - yd) ** 2).mean()


def _hessian(phi, X):
    return X.t() @ X / len(X) + torch.diag(phi.exp())


def _theta_star(phi, X, y):
    return torch.linalg.solve(_hessian(phi, X), X.t() @ y / len(X))


def _exact(phi, X, y, Xd, yd):
    """d L_dev(theta*(phi)) / d phi = -(d grad_theta L_train / d phi)^T H^-1 grad_theta L_dev, in closed form."""
    theta = _theta_star(phi, X, y)
    v = Xd.t() @ (Xd @ theta - yd) / len(Xd)
    return -(phi.exp() * theta) * torch.linalg.solve(_hessian(phi, X), v)


def _neumann(phi, X, y, Xd, yd, terms, step):
    theta = _theta_star(phi, X, y).requires_grad_(True)
    phi = phi.clone().requires_grad_(True)
    (v,) = torch.autograd.grad(_dev_loss(theta, Xd, yd), [theta])
    (g,) = torch.autograd.grad(_train_loss(theta, phi, X, y), [theta], create_graph=True)
    (hyper,) = implicit_hypergradient([v], [g], [theta], [phi], terms, step)
    return hyper


def test_closed_form_matches_finite_differences():
    X, y, Xd, yd, phi = _problem()
    exact = _exact(phi, X, y, Xd, yd)
    eps = 1e-6
    for j in range(len(phi)):
        e = torch.zeros_like(phi)
        e[j] = eps
        up = _dev_loss(_theta_star(phi + e, X, y), Xd, yd)
        down = _dev_loss(_theta_star(phi - e, X, y), Xd, yd)
        assert float((up - down) / (2 * eps)) == pytest.approx(float(exact[j]), rel=1e-5, abs=1e-9)


def test_neumann_hypergradient_converges_within_the_series_bound():
    X, y, Xd, yd, phi = _problem()
    H = _hessian(phi, X)
    eig = torch.linalg.eigvalsh(H)
    step = float(1.0 / eig.max())  # then ||I - step H|| = 1 - lambda_min / lambda_max < 1
    rate = float(1.0 - eig.min() / eig.max())
    exact = _exact(phi, X, y, Xd, yd)
    theta = _theta_star(phi, X, y)
    v = Xd.t() @ (Xd @ theta - yd) / len(Xd)
    mixed_norm = float((phi.exp() * theta).abs().max())  # the mixed Jacobian is diagonal
    errors = []
    for terms in (0, 1, 3, 10, 30, 100):
        err = float((_neumann(phi, X, y, Xd, yd, terms, step) - exact).norm())
        # tolerance from the series: ||H^-1 v - p_K|| <= rate^(K+1) ||H^-1 v||
        bound = rate ** (terms + 1) * float(torch.linalg.solve(H, v).norm()) * mixed_norm
        assert err <= bound * (1 + 1e-9) + 1e-12, (terms, err, bound)
        errors.append(err)
    assert all(b < a for a, b in zip(errors, errors[1:]))  # each added term tightens it
    assert errors[-1] < 1e-6 * float(exact.norm())


def test_inverse_hvp_with_the_default_small_step_is_step_times_the_partial_sum():
    # step 1e-3 (the paper's): p = step * (K + 1) v - O(step^2), i.e. a scaled gradient, not H^-1 v
    X, y, _, _, phi = _problem()
    theta = _theta_star(phi, X, y).requires_grad_(True)
    (g,) = torch.autograd.grad(_train_loss(theta, phi, X, y), [theta], create_graph=True)
    v = torch.ones_like(theta)
    (p,) = neumann_inverse_hvp([g], [theta], [v], terms=3, step=1e-3)
    H = _hessian(phi, X)
    expected = sum(torch.linalg.matrix_power(torch.eye(len(v), dtype=D) - 1e-3 * H, n) @ v for n in range(4)) * 1e-3
    assert np.allclose(p.detach().numpy(), expected.numpy(), rtol=1e-12)
