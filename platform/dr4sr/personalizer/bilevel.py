"""DR4SR+ inside `dr4sr.train.loop.fit`: the personalizer as a `LoopHook` (paper Algorithm 2).

Lower level: every batch, theta takes the loop's Adam step on the loss weighted by g_phi (Eq. 8).
Upper level: every `t_lower` lower steps after the warm-up, phi takes one SGD step on the implicit
hypergradient of the unweighted loss on a dev batch (Eq. 10), computed by `hypergrad`.
Under DDP every rank holds its shard of the same global batches; the dev gradient, each Hessian-vector
product and the mixed product are all-reduced, and losses are sums over the global batch's targets
divided by their global count, so every rank applies the same update a single process would.
Rows of a fixed source (mined patterns) keep weight 1.
"""
from __future__ import annotations

import contextlib
import copy
import time

import torch

from dr4sr.data.batching import Batch, TrainBatcher
from dr4sr.personalizer.hypergrad import implicit_hypergradient
from dr4sr.personalizer.scorer import Personalizer, gumbel_noise
from dr4sr.train.config import PersonalizerConfig
from dr4sr.train.loop import LoopContext, LoopHook
from dr4sr.train.losses import hidden_for_targets, next_item_loss

UPPER_NOISE = 1 << 40  # noise-stream offset of upper steps (lower steps count from 0)


def initial_scorer(hidden_size: int, cfg: PersonalizerConfig, seed: int) -> Personalizer:
    """g_phi's initial weights: a function of the seed alone, and the global RNG stream is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + 17)
        return Personalizer(hidden_size, cfg.hidden_size, cfg.temperature)


@contextlib.contextmanager
def double_backward_kernels(device: torch.device):
    """Kernels whose backward is itself differentiable: the math attention (the fused CPU/CUDA attention
    kernels have no double backward) and, on CUDA, the native RNN instead of cuDNN's."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH), torch.backends.cudnn.flags(enabled=device.type != "cuda"):
        yield


class PersonalizerHook(LoopHook):
    def __init__(self, cfg: PersonalizerConfig, loss: str, seed: int, dev_batcher: TrainBatcher | None = None,
                 aux_loss=None):
        self.cfg, self.loss, self.seed = cfg, loss, seed
        self.dev_batcher, self.aux_loss = dev_batcher, aux_loss
        self.bilevel = cfg.mode == "bilevel"
        self.steps = 0  # lower steps since weighting started
        self.upper_steps, self.upper_seconds = 0, 0.0
        self._stats = torch.zeros(3, dtype=torch.float64)  # this epoch's weights: sum, sum of squares, count
        self._dev_cache: tuple[int, list] | None = None

    # --- set-up -----------------------------------------------------------------------------------
    def start(self, model, ctx: LoopContext) -> None:
        self.model, self.ctx = model, ctx
        self.scorer = initial_scorer(model.hidden_size, self.cfg, self.seed).to(ctx.device)
        for p in self.scorer.parameters():  # bilevel: phi only ever changes by upper steps; constant: never
            p.requires_grad_(self.cfg.mode == "end-to-end")
        self.opt = torch.optim.SGD(self.scorer.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                                   weight_decay=self.cfg.weight_decay)
        self.gen = torch.Generator(device=ctx.device)
        self._stats = self._stats.to(ctx.device)  # no host sync per step
        self.best = copy.deepcopy(self.scorer.state_dict())

    def lower_parameters(self):
        return list(self.scorer.parameters()) if self.cfg.mode == "end-to-end" else []

    def active(self, epoch: int) -> bool:
        return epoch >= self.cfg.warmup_epochs

    # --- lower level ------------------------------------------------------------------------------
    def batch_weights(self, batch: Batch, hidden: torch.Tensor, noise_step: int) -> torch.Tensor:
        """g_phi's weight of every target (fixed rows 1), times the batch's own row weights if any."""
        h = hidden.detach() if self.cfg.detach_hidden else hidden
        noise = None if self.cfg.mode == "constant" else \
            gumbel_noise(batch.rows.to(h.device), h.size(1), noise_step, self.seed).to(h.device)
        w = self.weigh(h, noise, batch.preset)
        if batch.fixed is not None:
            w = torch.where(batch.fixed[:, None], torch.ones_like(w), w)
        return w if batch.weights is None else w * batch.weights

    def weigh(self, hidden: torch.Tensor, noise: torch.Tensor | None = None,
              preset: torch.Tensor | None = None) -> torch.Tensor:
        """The weight of every position of `hidden` (B, T, d): g_phi's, or mode=constant's: each row's
        `preset` (its source's weight) when given, else constant_weight."""
        if self.cfg.mode == "constant":
            if preset is not None:
                return preset.to(hidden.device, hidden.dtype)[:, None].expand(hidden.shape[:-1])
            return torch.full(hidden.shape[:-1], self.cfg.constant_weight, dtype=hidden.dtype, device=hidden.device)
        return self.scorer(hidden, noise)

    def weights(self, batch, hidden, epoch):
        if not self.active(epoch):
            return batch.weights
        grad = not (self.bilevel and self.cfg.detach_hidden)  # else the weights are constants of this step
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            w = self.batch_weights(batch, hidden, self.steps)
        real = batch.targets > 0
        if batch.fixed is not None:
            real = real & ~batch.fixed[:, None]
        vals = w.detach()[real].double()
        self._stats += torch.stack([vals.sum(), (vals ** 2).sum(), vals.new_tensor(float(vals.numel()))])
        return w

    def before_step(self) -> None:
        if not self.bilevel and self.ctx.world_size > 1:  # phi is outside the DDP module: average its grads
            params = [p for p in self.scorer.parameters() if p.grad is not None]
            if params:
                flat = self.ctx.all_reduce_tensor(torch.cat([p.grad.reshape(-1) for p in params]))
                self._unflatten(flat / self.ctx.world_size, params, into_grad=True)

    def after_step(self, batch, epoch):
        if not self.active(epoch):
            return
        self.steps += 1
        if self.bilevel and self.steps % self.cfg.t_lower == 0:
            t0 = time.perf_counter()
            self.upper_step(batch.to(self.ctx.device))
            self.upper_seconds += time.perf_counter() - t0

    # --- upper level ------------------------------------------------------------------------------
    def _reduce(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.ctx.world_size == 1:
            return tensors
        flat = self.ctx.all_reduce_tensor(torch.cat([t.reshape(-1) for t in tensors]))
        return self._unflatten(flat, tensors)

    @staticmethod
    def _unflatten(flat: torch.Tensor, like: list[torch.Tensor], into_grad: bool = False) -> list[torch.Tensor]:
        out, i = [], 0
        for t in like:
            part = flat[i:i + t.numel()].view_as(t)
            i += t.numel()
            if into_grad:
                t.grad.copy_(part)
            out.append(part)
        return out

    def _global_loss(self, batch: Batch, weights: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        """This rank's share of the global mean loss: its weighted sum over the global target count."""
        mean, _ = next_item_loss(self.model, hidden, batch.targets, self.loss, weights, self.gen)
        local = float((batch.targets > 0).sum())
        total = self.ctx.all_reduce_sum({"n": local})["n"]
        return mean * (max(local, 1.0) / max(total, 1.0))

    def dev_batch(self) -> Batch:
        """The upper step's batch: the next one of a second, differently shuffled pass over the dev rows."""
        n = len(self.dev_batcher)
        epoch, index = divmod(self.upper_steps, n)
        if self._dev_cache is None or self._dev_cache[0] != epoch:
            self._dev_cache = (epoch, self.dev_batcher.global_batches(epoch))
        rows = self._dev_cache[1][index]
        return self.dev_batcher.collate(rows[self.dev_batcher.rank::self.dev_batcher.world_size], epoch)

    def upper_step(self, batch: Batch) -> None:
        model, phi = self.model, list(self.scorer.parameters())
        theta = [p for p in model.parameters() if p.requires_grad]
        self.gen.manual_seed(self.seed * 7919 + self.upper_steps * 31 + self.ctx.rank)
        # a first-order gradient: the fast attention kernels will do (~5% of an upper step on SASRec)
        dev = self.dev_batch().to(self.ctx.device)
        h_dev = hidden_for_targets(model, dev.inputs, dev.lengths, dev.targets)  # the plain model: no DDP sync
        dev_grads = self._reduce(list(torch.autograd.grad(
            self._global_loss(dev, dev.weights, h_dev), theta, materialize_grads=True)))
        with double_backward_kernels(self.ctx.device):
            for p in phi:
                p.requires_grad_(True)
            try:
                hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets)
                w = self.batch_weights(batch, hidden, UPPER_NOISE + self.upper_steps)
                loss = self._global_loss(batch, w, hidden)
                if self.aux_loss is not None:  # part of the lower objective, so of its Hessian
                    loss = loss + self.aux_loss(model, batch, hidden, self.gen) / self.ctx.world_size
                train_grads = torch.autograd.grad(loss, theta, create_graph=True, materialize_grads=True)
                hyper = implicit_hypergradient(dev_grads, train_grads, theta, phi, self.cfg.neumann_terms,
                                               self.cfg.neumann_step, self._reduce)
            finally:
                for p in phi:
                    p.requires_grad_(False)
        for p, g in zip(phi, hyper):
            p.grad = g
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(phi, self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.upper_steps += 1

    # --- epochs, best state, resume -----------------------------------------------------------------
    def end_epoch(self, epoch, improved):
        if improved:
            self.best = copy.deepcopy(self.scorer.state_dict())
        red = self.ctx.all_reduce_sum(dict(zip(("s", "sq", "n"), self._stats.tolist())))
        s, sq, n = red["s"], red["sq"], red["n"]
        self._stats.zero_()
        if not self.active(epoch):
            return {}
        mean = s / max(n, 1.0)
        std = max(sq / max(n, 1.0) - mean ** 2, 0.0) ** 0.5
        return {"personalizer_weight_mean": mean, "personalizer_weight_std": std,
                "personalizer_upper_steps": self.upper_steps}

    def finish(self):
        self.scorer.load_state_dict(self.best)

    def state_dict(self):
        return {"scorer": copy.deepcopy(self.scorer.state_dict()), "best": self.best,
                "opt": self.opt.state_dict(), "steps": self.steps, "upper_steps": self.upper_steps,
                "upper_seconds": self.upper_seconds}

    def load_state_dict(self, state):
        if not state:
            return
        self.scorer.load_state_dict(state["scorer"])
        self.best = state["best"]
        self.opt.load_state_dict(state["opt"])
        self.steps, self.upper_steps, self.upper_seconds = state["steps"], state["upper_steps"], state["upper_seconds"]

    def summary(self) -> dict:
        return {"mode": self.cfg.mode, "upper_steps": self.upper_steps, "weighted_steps": self.steps,
                "upper_seconds": round(self.upper_seconds, 3)}
