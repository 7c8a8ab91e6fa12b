"""Closed-form neural tangent kernel of a fully connected ReLU network (NTK parameterisation), as
neural_tangents' `stax.serial(Dense, Relu, ..., Dense)` defines it for the infinite-width limit:
each Dense layer computes W_std / sqrt(fan_in) * W h + b_std * b with W, b ~ N(0, 1).

Recursion (Jacot et al. 2018), with the ReLU expectations in the arc-cosine form of Cho & Saul (2009):
    Sigma_0(x, y) = W^2 <x, y> / d + b^2,             Theta_0 = Sigma_0
    theta = arccos(Sigma(x, y) / sqrt(Sigma(x, x) Sigma(y, y)))
    Sigma'(x, y) = W^2 sqrt(Sigma(x, x) Sigma(y, y)) (sin theta + (pi - theta) cos theta) / (2 pi) + b^2
    Theta'(x, y) = Sigma'(x, y) + W^2 (pi - theta) / (2 pi) * Theta(x, y)
one step per hidden layer; Sigma(x, x) steps to W^2 Sigma(x, x) / 2 + b^2. Depth 1 is the infinite
autoencoder of Sachdeva et al. (NeurIPS 2022), whose code uses W_std = sqrt(2), b_std = 0.1.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

W_STD = math.sqrt(2.0)
B_STD = 0.1


def relu_ntk(gram: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray, dim: int, depth: int = 1,
             w_std: float = W_STD, b_std: float = B_STD) -> np.ndarray:
    """NTK between inputs a (rows) and b (columns) from their inner products `gram` (A x B) and squared
    norms `sq_a` (A), `sq_b` (B); `dim` is the input width. float64 throughout: the kernel of sparse
    binary rows sits close to its bias floor, and arccos near 1 amplifies any rounding."""
    w2, b2 = w_std * w_std, b_std * b_std
    nngp = np.asarray(gram, dtype=np.float64) * (w2 / dim) + b2
    var_a = np.asarray(sq_a, dtype=np.float64)[:, None] * (w2 / dim) + b2
    var_b = np.asarray(sq_b, dtype=np.float64)[None, :] * (w2 / dim) + b2
    ntk = nngp.copy()
    for _ in range(depth):
        norm = np.sqrt(var_a * var_b)
        cos = np.clip(nngp / norm, -1.0, 1.0)
        theta = np.arccos(cos)
        # new NNGP, written over `nngp` (the old one is no longer needed once cos is taken)
        np.multiply(np.pi - theta, cos, out=nngp)
        nngp += np.sin(theta)
        nngp *= norm
        nngp *= w2 / (2 * np.pi)
        nngp += b2
        # Theta' = Sigma' + W^2 * E[relu'(u) relu'(v)] * Theta, with E[relu' relu'] = (pi - theta) / (2 pi)
        np.subtract(np.pi, theta, out=theta)
        theta *= w2 / (2 * np.pi)
        ntk *= theta
        ntk += nngp
        var_a = var_a * (w2 / 2) + b2
        var_b = var_b * (w2 / 2) + b2
    return ntk


def row_sq_norms(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel()


def kernel_rows(xq: sp.csr_matrix, x: sp.csr_matrix, dim: int, out: np.ndarray, block: int = 512,
                sq_x: np.ndarray | None = None, depth: int = 1, w_std: float = W_STD,
                b_std: float = B_STD) -> np.ndarray:
    """NTK(xq, x) into `out` (len(xq) x len(x), any float dtype), `block` query rows at a time: only the
    block's float64 intermediates exist beside `out`. Inner products come from the sparse rows."""
    sq_x = row_sq_norms(x) if sq_x is None else sq_x
    xt = x.T.tocsr()  # one conversion, reused by every block's sparse product
    for r0 in range(0, xq.shape[0], block):
        rows = xq[r0:r0 + block]
        gram = (rows @ xt).toarray()
        out[r0:r0 + rows.shape[0]] = relu_ntk(gram, row_sq_norms(rows), sq_x, dim, depth, w_std, b_std)
    return out
