"""The hypergradient of a bi-level problem by implicit differentiation (paper Eq. 10, Appendix A.2).

  phi* = argmin_phi L_dev(theta*(phi)),  theta*(phi) = argmin_theta L_train(theta, phi)
  d L_dev / d phi = direct - (d^2 L_train / d phi d theta) . H^-1 . grad_theta L_dev,  H = d^2 L_train / d theta^2

H^-1 v is a truncated Neumann series, H^-1 ~ step * sum_{n=0..K} (I - step * H)^n (exact as K -> inf when
0 < step < 2 / lambda_max(H)), each term one Hessian-vector product by double backward through the graph
of grad_theta L_train. Generic over any lists of parameters; `reduce` all-reduces each vector-Jacobian
product across DDP ranks (identity on one process), so every rank computes the global hypergradient.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

Tensors = list[torch.Tensor]
Reduce = Callable[[Tensors], Tensors]


def _same(tensors: Tensors) -> Tensors:
    return tensors


def _vjp(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], vectors: Sequence[torch.Tensor]) -> Tensors:
    """sum_i vectors_i . d outputs_i / d inputs, keeping the graph for more products; zeros where unused."""
    pairs = [(o, v) for o, v in zip(outputs, vectors) if o.requires_grad]
    if not pairs:
        return [torch.zeros_like(x) for x in inputs]
    outs, vecs = zip(*pairs)
    return list(torch.autograd.grad(outs, inputs, grad_outputs=vecs, retain_graph=True, materialize_grads=True))


def neumann_inverse_hvp(train_grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor],
                        vector: Sequence[torch.Tensor], terms: int, step: float, reduce: Reduce = _same) -> Tensors:
    """step * sum_{n=0..terms} (I - step * H)^n vector, with H the Jacobian of `train_grads` (built with
    create_graph=True) with respect to `params`: `terms` Hessian-vector products."""
    cur = [v.detach() for v in vector]
    acc = list(cur)
    for _ in range(terms):
        hv = reduce(_vjp(train_grads, params, cur))
        cur = [c - step * h.detach() for c, h in zip(cur, hv)]
        acc = [a + c for a, c in zip(acc, cur)]
    return [step * a for a in acc]


def implicit_hypergradient(dev_grads: Sequence[torch.Tensor], train_grads: Sequence[torch.Tensor],
                           params: Sequence[torch.Tensor], hyper_params: Sequence[torch.Tensor], terms: int,
                           step: float, reduce: Reduce = _same,
                           direct: Sequence[torch.Tensor] | None = None) -> Tensors:
    """d L_dev / d hyper_params. dev_grads = grad_theta L_dev (already reduced); train_grads =
    grad_theta L_train with its graph; direct = d L_dev / d phi where L_dev depends on phi itself."""
    p = neumann_inverse_hvp(train_grads, params, dev_grads, terms, step, reduce)
    mixed = reduce(_vjp(train_grads, hyper_params, p))
    if direct is None:
        return [-m.detach() for m in mixed]
    return [d.detach() - m.detach() for d, m in zip(direct, mixed)]
