"""∞-AE (Sachdeva et al., NeurIPS 2022): kernel ridge regression over users with the NTK of an infinitely
wide autoencoder with one hidden ReLU layer.

    X: binary user x item matrix of the training items,  K = NTK(X, X)  (U x U)
    A = (K + c I)^-1 X  with  c = lambda * tr(K) / U,     scores(q) = NTK(q, X) A

For the training rows themselves K A = X - c A (K (K + cI)^-1 = I - c (K + cI)^-1), so validation, whose
input is exactly the training row, needs no U x U x I product. Each lambda costs one in-place Cholesky
factorisation and inverse of K + cI (U^3 multiply-adds); A then reads only X's nonzeros.
Not one eigendecomposition for all lambdas: on one CPU core the tridiagonal reduction of a large matrix
is memory-bound (measured 9x slower than Cholesky + inverse at U = 9,000), and every lambda would still
need a dense U x U x I product to score the training rows.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import get_lapack_funcs

from dr4sr.baselines.ntk import B_STD, W_STD, kernel_rows, row_sq_norms
from dr4sr.errors import DR4SRError
from dr4sr.eval.ranking import USER_BLOCK, count_higher


class NotPositiveDefinite(DR4SRError):
    """K + cI lost positive definiteness in the working precision (a tiny lambda, float32)."""


def interaction_matrix(histories: Sequence[np.ndarray], num_items: int, dtype=np.float32) -> sp.csr_matrix:
    """Binary users x (num_items + 1) matrix; column 0 (padding) stays empty so item ids index columns."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] or [np.zeros(0, np.int64)])
    x = sp.csr_matrix((np.ones(len(cols), dtype=dtype), cols, indptr), shape=(len(histories), num_items + 1))
    x.sum_duplicates()
    x.data[:] = 1  # a repeated item is still one interaction
    return x


def pad_histories(histories: Sequence[np.ndarray]) -> torch.Tensor:
    width = max(1, max((len(h) for h in histories), default=1))
    out = np.zeros((len(histories), width), dtype=np.int64)
    for i, h in enumerate(histories):
        out[i, :len(h)] = h
    return torch.from_numpy(out)


def inverse_spd_(m: np.ndarray, block: int = 2048) -> None:
    """Invert the symmetric positive definite C-contiguous `m` in place (LAPACK potrf + potri on its
    Fortran view, so no second U x U buffer); raises NotPositiveDefinite."""
    potrf, potri = get_lapack_funcs(("potrf", "potri"), (m,))
    f = m.T  # the same memory, Fortran-ordered: LAPACK overwrites it instead of copying
    c, info = potrf(f, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        c, info = potri(c, lower=1, overwrite_c=1)
    if info > 0:
        raise NotPositiveDefinite(f"K + cI is not positive definite in {m.dtype} (pivot {info})")
    if info < 0 or c.ctypes.data != m.ctypes.data:
        raise RuntimeError(f"LAPACK inverse failed (info {info}) or did not work in place")
    # the inverse is in f's lower triangle, i.e. m's upper one: mirror it, a block of rows at a time
    n = m.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        m[i0:i1, :i0] = m[:i0, i0:i1].T
        d = m[i0:i1, i0:i1]
        low = np.tril_indices(i1 - i0, -1)
        d[low] = d.T[low]


class KernelRidge:
    """K = NTK(X, X) once; `dual(lambda)` -> A^T = ((K + cI)^-1 X)^T, (num_items + 1) x U."""

    def __init__(self, x: sp.csr_matrix, dim: int, dtype=np.float32, block: int = 512, depth: int = 1,
                 w_std: float = W_STD, b_std: float = B_STD):
        self.x, self.dim, self.dtype, self.block = x.astype(dtype), dim, np.dtype(dtype), block
        self.kernel_args = {"depth": depth, "w_std": w_std, "b_std": b_std}
        self.sq = row_sq_norms(x)
        users = x.shape[0]
        self.k = kernel_rows(x, x, dim, np.empty((users, users), dtype=self.dtype), block, self.sq,
                             **self.kernel_args)
        self.scale = float(np.trace(self.k, dtype=np.float64)) / users  # tr(K) / U
        self._m: np.ndarray | None = None
        self._xt = self.x.T.tocsr()

    def reg(self, lam: float) -> float:
        return lam * self.scale

    def dual(self, lam: float) -> np.ndarray:
        if self.k is None:
            raise RuntimeError("kernel released")
        if self._m is None:
            self._m = np.empty_like(self.k)
        m = self._m
        np.copyto(m, self.k)
        m.flat[::m.shape[0] + 1] += self.reg(lam)
        inverse_spd_(m)
        return self._xt @ m  # X^T (K + cI)^-1: one pass over X's nonzeros per row of m

    def release(self) -> None:
        """Drop K and the inverse buffer (the two U x U arrays); query scoring needs neither."""
        self.k = self._m = None

    def query_kernel(self, xq: sp.csr_matrix) -> np.ndarray:
        out = np.empty((xq.shape[0], self.x.shape[0]), dtype=self.dtype)
        return kernel_rows(xq, self.x, self.dim, out, self.block, self.sq, **self.kernel_args)


def rank_dense(scores: torch.Tensor, target: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """The rules of dr4sr.eval.ranking.count_higher on a materialised score block (overwritten):
    padding and history are masked, a masked target ranks last, rank = 1 + #unmasked items strictly above."""
    scores[:, 0] = float("-inf")
    scores.scatter_(1, history, float("-inf"))
    t = scores.gather(1, target[:, None])
    return (scores > t).sum(1) + 1


def train_row_ranks(model: KernelRidge, at: np.ndarray, lam: float, targets: np.ndarray,
                    histories: Sequence[np.ndarray]) -> np.ndarray:
    """Ranks when each user's input is their own training row: scores = X - cA, no kernel product."""
    c = model.reg(lam)
    ranks = np.empty(len(targets), dtype=np.int64)
    for r0 in range(0, len(targets), model.block):
        r1 = min(r0 + model.block, len(targets))
        s = model.x[r0:r1].toarray()
        s -= c * at[:, r0:r1].T
        ranks[r0:r1] = rank_dense(torch.from_numpy(s), torch.from_numpy(targets[r0:r1]),
                                  pad_histories(histories[r0:r1])).numpy()
    return ranks


def query_ranks(model: KernelRidge, at: np.ndarray, queries: Sequence[np.ndarray], targets: np.ndarray,
                histories: Sequence[np.ndarray]) -> np.ndarray:
    """Ranks for new input rows: scores = NTK(q, X) A, counted by the project's blockwise ranking."""
    xq = interaction_matrix(queries, model.x.shape[1] - 1, model.dtype)
    item_w = torch.from_numpy(at)
    ranks = np.empty(len(targets), dtype=np.int64)
    for r0 in range(0, len(targets), model.block):
        r1 = min(r0 + model.block, len(targets))
        kq = torch.from_numpy(model.query_kernel(xq[r0:r1]))
        hist, tgt = pad_histories(histories[r0:r1]), torch.from_numpy(targets[r0:r1])
        for u0 in range(0, r1 - r0, USER_BLOCK):
            sl = slice(u0, u0 + USER_BLOCK)
            ranks[r0 + u0:r0 + u0 + kq[sl].shape[0]] = count_higher(kq[sl], item_w, tgt[sl], hist[sl]).numpy()
    return ranks
