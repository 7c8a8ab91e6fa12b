"""MELT (Kim et al., SIGIR 2023): mutual enhancement of long-tailed users and items, on a backbone
trained by the project's loop. Importing this module registers it as the run extension of the run
config's `melt` section (dr4sr.train.extensions); its keys are described in configs/melt.yaml.

Per training step, beside the next-item loss (as in the authors' code):
- user branch: a batch of head users; each one's full sequence and its last R items (R drawn from
  1 .. user threshold - 1, so it looks like a tail user) are encoded, and W_U maps the short encoding
  to the full one: L_u = mean(w_u * (W_U(h_short) - h_full)^2);
- item branch: a batch of head items; a few of each one's contexts (1 .. item threshold of them) are
  encoded, passed through the user branch (h + W_U h) and averaged, and W_I maps the average to the item
  embedding: L_i = mean(w_i * (W_I(mean) - e_item)^2);
- loss = next-item loss + lambda_user * L_u + lambda_item * L_i. Each epoch visits every head user and
  head item once. The curriculum weights w = |sin(pi/2 * epoch / E + a * (size - threshold - 1))| move
  from the longest heads early in training (a user of max_len items weighs 1 at epoch 0, one just above
  the threshold 0) to those nearest the threshold at epoch E (E = curriculum_epochs;
  a = pi / (2 (max_len - threshold - 1)) for users, pi / 100 for items).
Tail items: at the start of every epoch each tail item's embedding becomes W_I(mean encoding of all its
contexts), plus keep_old times its current embedding (the paper's gamma; 0 in the authors' code), and the
epoch trains on from there; validation and test rank with the embeddings as that
epoch left them, as the authors' code does (ranking straight after the rewrite put tail-item targets
almost never in the top 20 on Beauty). Tail users: an encoding h is ranked as h + W_U h.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from dr4sr.baselines.longtail import ItemContexts, LongTailSplit, padded, split_head_tail, windows
from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone
from dr4sr.train.config import MeltConfig, RunConfig
from dr4sr.train.extensions import Extension, RunExtension
from dr4sr.train.extensions import register as register_extension
from dr4sr.train.loop import LoopContext, LoopHook, state_bytes

ITEM_CONTEXT_MARGIN = 50  # the authors' cap on an item's context count in w_i: item threshold + 50
ITEM_CURRICULUM_STEP = math.pi / 100  # the authors' a for items
ENCODE_BATCH = 1024  # contexts per forward pass when rewriting tail items


class Branches(nn.Module):
    """W_U (user branch) and W_I (item branch): d x d linear maps, Xavier-normal weights as the authors'."""

    def __init__(self, d: int):
        super().__init__()
        self.w_u, self.w_i = nn.Linear(d, d), nn.Linear(d, d)
        for lin in (self.w_u, self.w_i):
            nn.init.xavier_normal_(lin.weight)


class TailRouted(nn.Module):
    """The model as ranking sees it: tail users' encodings go through h + W_U h. At `stage` the input is
    the training sequence (valid) or it plus the validation item (test), so a user's training length is
    the input length less `offset`."""

    def __init__(self, model: Backbone, w_u: nn.Linear, threshold: float, offset: int):
        super().__init__()
        self.model, self.w_u, self.threshold, self.offset = model, w_u, threshold, offset
        self.padding = model.padding
        self.train(model.training)

    def item_weights(self) -> torch.Tensor:
        return self.model.item_weights()

    def last_hidden(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.model.last_hidden(seqs, lengths)
        tail = (lengths - self.offset) <= self.threshold
        return torch.where(tail[:, None], h + self.w_u(h), h)


def curriculum(epoch: int, epochs: int, size: np.ndarray, threshold: float, step: float) -> np.ndarray:
    return np.abs(np.sin(math.pi / 2 * epoch / epochs + step * (size - threshold - 1)))


class MeltHook(LoopHook):
    def __init__(self, cfg: MeltConfig, split: LongTailSplit, matrix: np.ndarray, contexts: ItemContexts,
                 max_len: int, steps_per_epoch: int, seed: int):
        self.cfg, self.split, self.matrix, self.contexts = cfg, split, matrix, contexts
        self.max_len, self.steps, self.seed = max_len, max(1, steps_per_epoch), seed
        self.branches: Branches | None = None  # built in `start`, at the model's width
        self.best: dict = {}
        self.device = torch.device("cpu")
        self.epoch, self.step = -1, 0
        self.sums = {"user": 0.0, "item": 0.0, "steps": 0}
        self.rewrite_items = np.flatnonzero(split.tail_item & (contexts.count > 0))
        self.short_max = max(1, int(split.user_threshold) - 1)  # R in 1 .. threshold - 1, as the authors'

    def start(self, model: Backbone, ctx: LoopContext) -> None:
        self.device = ctx.device
        self.branches = Branches(model.hidden_size).to(ctx.device)
        self.best = state_bytes(self.branches)
        if self.cfg.init_from and ctx.resume_state is None:
            state = torch.load(self.cfg.init_from, map_location=ctx.device, weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise ConfigError(f"melt.init_from {self.cfg.init_from}: not this model's weights "
                                  f"({str(exc).splitlines()[0]})") from None

    def lower_parameters(self) -> list[nn.Parameter]:
        return list(self.branches.parameters())

    def _new_epoch(self, epoch: int) -> None:
        self.epoch, self.step = epoch, 0
        self.rng = np.random.default_rng([self.seed, epoch, 7])
        self.user_batches = np.array_split(self.rng.permutation(self.split.head_users), self.steps)
        self.item_batches = np.array_split(self.rng.permutation(self.split.head_items), self.steps)

    def _encode(self, model: Backbone, seqs: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        return model.last_hidden(torch.from_numpy(seqs).to(self.device), torch.from_numpy(lengths).to(self.device))

    def user_loss(self, model: Backbone, users: np.ndarray, epoch: int) -> torch.Tensor:
        n = np.minimum(self.split.lengths[users], self.max_len)
        ones = np.ones(len(users), np.int64)
        full = self._encode(model, *windows(self.matrix, users, self.split.lengths[users] - n, ones, n,
                                            model.padding))
        short = np.minimum(self.rng.integers(1, self.short_max + 1, len(users)), n)
        few = self._encode(model, *windows(self.matrix, users, self.split.lengths[users] - short, ones, short,
                                           model.padding))
        thr = self.split.user_threshold
        w = curriculum(epoch, self.cfg.curriculum_epochs, n, thr, math.pi / (2 * max(self.max_len - thr - 1, 1)))
        w = torch.as_tensor(w, dtype=full.dtype, device=self.device)[:, None]
        return (w * (self.branches.w_u(few) - full) ** 2).mean()

    def item_loss(self, model: Backbone, items: np.ndarray, epoch: int) -> torch.Tensor:
        ctx, thr = self.contexts, self.split.item_threshold
        picked, owner = [], []
        for k, item in enumerate(items):
            total = int(ctx.count[item])
            few = int(self.rng.integers(1, max(1, int(min(total, thr))) + 1))
            picked.append(ctx.start[item] + self.rng.choice(total, few, replace=False))
            owner.append(np.full(few, k))
        h = self._encode(model, *ctx.build(np.concatenate(picked), model.padding))
        h = h + self.branches.w_u(h)  # knowledge from the user branch
        owner_t = torch.from_numpy(np.concatenate(owner)).to(self.device)
        mean = torch.zeros(len(items), h.size(1), dtype=h.dtype, device=self.device).index_add_(0, owner_t, h)
        mean = mean / torch.bincount(owner_t, minlength=len(items)).to(h.dtype)[:, None]
        n_ctx = np.minimum(self.split.counts[items], thr + ITEM_CONTEXT_MARGIN)
        w = curriculum(epoch, self.cfg.curriculum_epochs, n_ctx, thr, ITEM_CURRICULUM_STEP)
        w = torch.as_tensor(w, dtype=h.dtype, device=self.device)[:, None]
        target = model.item_weights()[torch.from_numpy(items).to(self.device)]
        return (w * (self.branches.w_i(mean) - target) ** 2).mean()

    def extra_loss(self, model: Backbone, batch, epoch: int) -> torch.Tensor | None:
        if epoch != self.epoch:
            self._new_epoch(epoch)
        users = self.user_batches[self.step % self.steps]
        items = self.item_batches[self.step % self.steps]
        self.step += 1
        loss = None
        if len(users) and self.cfg.lambda_user > 0:
            lu = self.user_loss(model, users, epoch)
            self.sums["user"] += float(lu.detach())
            loss = self.cfg.lambda_user * lu
        if len(items) and self.cfg.lambda_item > 0:
            li = self.item_loss(model, items, epoch)
            self.sums["item"] += float(li.detach())
            loss = self.cfg.lambda_item * li if loss is None else loss + self.cfg.lambda_item * li
        self.sums["steps"] += 1
        return loss

    @torch.no_grad()
    def rewrite_tail_items(self, model: Backbone) -> None:
        """Every tail item that has contexts: embedding <- W_I(mean encoding of all its contexts)."""
        items, ctx = self.rewrite_items, self.contexts
        if not len(items):
            return
        idx = np.concatenate([ctx.start[i] + np.arange(ctx.count[i]) for i in items])
        owner = np.repeat(np.arange(len(items)), ctx.count[items])
        order = np.argsort(ctx.lengths(idx), kind="stable")  # similar lengths per pass: little padding
        was_training = model.training
        model.eval()
        d = model.item_weights().size(1)
        sums = torch.zeros(len(items), d, device=self.device)
        for s in range(0, len(order), ENCODE_BATCH):
            part = order[s:s + ENCODE_BATCH]
            h = self._encode(model, *ctx.build(idx[part], model.padding)).float()
            sums.index_add_(0, torch.from_numpy(owner[part]).to(self.device), h)
        counts = torch.from_numpy(ctx.count[items]).to(self.device, torch.float32)[:, None]
        weight = model.item_weights()
        rows = torch.from_numpy(items).to(self.device)
        new = self.branches.w_i(sums / counts).to(weight.dtype)
        if self.cfg.keep_old:  # the paper's Algorithm 1: q_i <- W_I(r_i) + gamma q_i
            new = new + self.cfg.keep_old * weight.data[rows]
        weight.data[rows] = new
        model.train(was_training)

    def start_epoch(self, model: Backbone, epoch: int) -> None:
        self.rewrite_tail_items(model)

    def ranking_model(self, model: Backbone, stage: str) -> TailRouted:
        return TailRouted(model, self.branches.w_u, self.split.user_threshold, 1 if stage == "test" else 0)

    def end_epoch(self, epoch: int, improved: bool) -> dict:
        if improved:
            self.best = state_bytes(self.branches)
        steps = max(self.sums["steps"], 1)
        out = {"melt_user_loss": self.sums["user"] / steps, "melt_item_loss": self.sums["item"] / steps}
        self.sums = {"user": 0.0, "item": 0.0, "steps": 0}
        return out

    def finish(self) -> None:
        self.branches.load_state_dict(self.best)

    def state_dict(self) -> dict:
        return {"branches": state_bytes(self.branches), "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.branches.load_state_dict(state["branches"])
            self.best = state["best"]


class MeltSetup(RunExtension):
    def __init__(self, cfg: RunConfig, sequences, num_items: int, max_len: int):
        self.cfg = cfg
        self.split = split_head_tail(sequences, num_items, cfg.melt.pareto, cfg.melt.item_pareto_offset)
        self.matrix = padded(sequences)
        self.contexts = ItemContexts(sequences, self.matrix, num_items, max_len)
        usable = int(sum(1 for s in sequences if len(s) >= 2))
        self.steps = -(-usable // cfg.train.batch_size)  # the loop's batches per epoch
        self.max_len = max_len
        self.loop_hook: MeltHook | None = None

    def hook(self, loss: str, aux_loss=None) -> MeltHook:
        self.loop_hook = MeltHook(self.cfg.melt, self.split, self.matrix, self.contexts, self.max_len, self.steps,
                                  self.cfg.train.seed)
        return self.loop_hook

    def results(self, model, ctx: LoopContext) -> tuple[dict, dict]:
        state = {k: v.cpu() for k, v in self.loop_hook.branches.state_dict().items()}
        return self.split.summary(), {"melt.pt": state}


def setup_run(cfg: RunConfig, inp, training_mode, ctx: LoopContext) -> MeltSetup:
    """The extension's `setup` on the training worker (inp: dr4sr.train.worker.TrainingInput)."""
    if ctx.world_size > 1:
        raise ConfigError("melt runs on one training worker: its branch losses encode outside DDP")
    if training_mode != "seq2seq":
        raise ConfigError(f"melt needs a next-item (seq2seq) backbone such as sasrec, not a {training_mode!r} one")
    return MeltSetup(cfg, inp.splits.train, inp.splits.num_items, inp.splits.max_len)


def describe(m: dict) -> str:
    return (f"melt: {m['head_users']:,} head / {m['tail_users']:,} tail users (length > {m['user_threshold']:g}), "
            f"{m['head_items']:,} head / {m['tail_items']:,} tail items (count > {m['item_threshold']:g})")


register_extension(Extension("melt", setup_run, describe))
