"""The training loop: plain PyTorch, the same on one CPU and on N Ray Train (DDP) workers.

Distribution is behind `LoopContext` (rank, world size, all-reduce, checkpoint/report); the loop
never imports Ray. Early stopping on the validation metric; the best weights are restored at the end.
`run_epochs` is that epoch skeleton (resume, early stopping, best weights, a checkpoint per epoch), shared
with the regenerator's pre-training (dr4sr.regen.pretrain), which brings its own step.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import torch

from dr4sr.data.batching import TrainBatcher
from dr4sr.data.splits import Splits
from dr4sr.eval.ranking import metric_sums, rank_targets
from dr4sr.models.base import Backbone
from dr4sr.train.config import TrainConfig
from dr4sr.train.losses import hidden_for_targets, next_item_loss
from dr4sr.train.progress import EpochProgress

AuxLoss = Callable[[Backbone, Any, torch.Tensor, torch.Generator], torch.Tensor]


class LoopContext:
    """Single-process defaults; `dr4sr.train.ray_train` overrides these for DDP workers."""
    rank: int = 0
    world_size: int = 1
    show_progress: bool = True
    progress_stream = None  # where epoch lines go (None: stderr); Ray workers send them to the driver

    def __init__(self, device: torch.device | None = None, checkpoint_fn=None, resume_state: dict | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        self.device = device or torch.device("cpu")
        self._checkpoint_fn = checkpoint_fn
        self.resume_state = resume_state
        self.checkpoint_meta: dict = {}  # what run wrote a checkpoint: checked before resuming from it
        self._on_epoch = on_epoch  # e.g. a Tune trial's per-epoch report (ASHA decides on it)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def all_reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def all_reduce_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks, in place (DR4SR+ all-reduces its hypergradient products)."""
        return tensor

    def gather(self, array: np.ndarray) -> list[np.ndarray]:
        return [array]

    def end_epoch(self, epoch: int, metrics: dict, state_fn: Callable[[], dict]) -> None:
        if self._checkpoint_fn is not None:
            self._checkpoint_fn(epoch, metrics, {**state_fn(), **self.checkpoint_meta})
        if self._on_epoch is not None:
            self._on_epoch(metrics)


class LoopHook:
    """Extension point of `fit` (the DR4SR+ personalizer plugs in here); these defaults change nothing.

    Called on every rank in the same order, so a hook may use the context's collectives.
    """

    def start(self, model: Backbone, ctx: LoopContext) -> None:
        """Once, after the model is on its device and before the optimizer is built."""

    def lower_parameters(self) -> list[torch.nn.Parameter]:
        """Extra parameters the loop's optimizer trains with the model's (the end-to-end ablation)."""
        return []

    def weights(self, batch, hidden: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """Per-target loss weights of this batch (shape of batch.targets), or None."""
        return batch.weights

    def extra_loss(self, model: Backbone, batch, epoch: int) -> torch.Tensor | None:
        """A loss added to this batch's next-item loss (MELT's user and item branches), or None."""
        return None

    def before_step(self) -> None:
        """After the lower loss's backward, before the optimizer step."""

    def after_step(self, batch, epoch: int) -> None:
        """After every lower optimizer step (DR4SR+ takes an upper step every T_lower of these)."""

    def start_epoch(self, model: Backbone, epoch: int) -> None:
        """Before an epoch's first training step (MELT rewrites its tail-item embeddings here)."""

    def ranking_model(self, model: Backbone, stage: str) -> Backbone:
        """What validation and test rank with at `stage`: the model, or a view of it (MELT routes tail
        users through its transfer map)."""
        return model

    def end_epoch(self, epoch: int, improved: bool) -> dict:
        """Numbers to add to the epoch's history record; `improved`: this epoch is the best so far."""
        return {}

    def finish(self) -> None:
        """After training, when the best epoch's model weights are restored."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` of a checkpoint."""


@dataclasses.dataclass
class FitResult:
    best_epoch: int
    epochs: int
    best_valid: dict[str, float]
    history: list[dict]
    seconds_per_epoch: float
    eval_seconds: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate(model: Backbone, splits: Splits, stage: str, ctx: LoopContext, batch_size: int,
             hook: LoopHook | None = None) -> tuple[dict, np.ndarray]:
    """Metrics over all users; each rank ranks its shard and the sums are all-reduced."""
    users = np.arange(splits.num_users)[ctx.rank::ctx.world_size]
    hist = splits.history(stage)
    ranker = hook.ranking_model(model, stage) if hook is not None else model
    ranks = rank_targets(ranker, [hist[u] for u in users], splits.target(stage)[users], splits.max_len,
                         batch_size, ctx.device)
    sums = ctx.all_reduce_sum(metric_sums(ranks))
    return {k: v / splits.num_users for k, v in sums.items()}, ranks


def adam(params, **kwargs) -> torch.optim.Adam:
    """Adam with torch's fused kernel: one pass over all parameters instead of a dozen foreach passes
    (9.3 -> 1.1 ms a step for SASRec on Beauty, a dense 12k x 64 embedding gradient; the same update)."""
    return torch.optim.Adam(list(params), fused=True, **kwargs)


def state_bytes(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


@dataclasses.dataclass
class Epochs:
    """The epoch bookkeeping every fit shares (target training and regenerator pre-training): resume from
    a checkpoint, a validation score per epoch, early stopping, the best weights kept and restored, and a
    checkpoint after every epoch."""
    max_epochs: int
    patience: int  # epochs without improvement before stopping; 0 = never stop early
    best: float  # the score to beat at the start
    improves: Callable[[float, float], bool]  # (this epoch's score, the best so far)
    best_key: str  # the checkpoint's name for the best score (each fit keeps its own: old checkpoints resume)


@dataclasses.dataclass
class EpochsResult:
    history: list[dict]
    best: float
    best_epoch: int
    start: int  # the first epoch this process ran (after a resume: the checkpoint's + 1)
    last: int  # the last finished epoch (start - 1 when none ran)
    stopped: bool  # early stopping ended the run
    train_seconds: float


def run_epochs(model: torch.nn.Module, opt: torch.optim.Optimizer, ctx: LoopContext, spec: Epochs,
               step: Callable[[int], tuple[dict, float, float]], begin: Callable[[int], None],
               resumed: Callable[[dict, float, int], str], record_extra: Callable[[int, bool], dict],
               report: Callable[[int, dict, float, int], None], state_extra: Callable[[], dict],
               on_resume: Callable[[dict], None] = lambda st: None, log: Callable[[str], None] = print
               ) -> EpochsResult:
    """The shared skeleton: `step(epoch)` trains and validates one epoch, returning (record, score, training
    seconds); `begin(start)` runs after a resume; `record_extra(epoch, improved)` adds to the epoch's record
    and `report(epoch, record, best, best_epoch)` shows it (on every rank, in this order); `state_extra()`
    adds to a checkpoint and `on_resume(state)` reads it back; `resumed(...)` is the line a resume prints."""
    best, best_epoch, bad, history, start = spec.best, -1, 0, [], 0
    best_state = state_bytes(model)
    if ctx.resume_state is not None:
        st = ctx.resume_state
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start, best, best_epoch, bad = st["epoch"] + 1, st[spec.best_key], st["best_epoch"], st["bad_epochs"]
        best_state, history = st["best_model"], st["history"]
        on_resume(st)
        if ctx.rank == 0:
            log(resumed(st, best, best_epoch))
    begin(start)

    def stop() -> bool:
        return spec.patience > 0 and bad >= spec.patience

    stopped, last, train_seconds = stop(), start - 1, 0.0
    for epoch in range(spec.max_epochs if stopped else start, spec.max_epochs):
        t0 = time.perf_counter()
        record, score, seconds = step(epoch)
        train_seconds += seconds
        improved = spec.improves(score, best)
        if improved:
            best, best_epoch, bad = score, epoch, 0
            best_state = state_bytes(model)
        else:
            bad += 1
        record = {**record, "best_epoch": best_epoch, "seconds": time.perf_counter() - t0,
                  **record_extra(epoch, improved)}
        history.append(record)
        report(epoch, record, best, best_epoch)
        ctx.end_epoch(epoch, record, lambda: {
            "model": state_bytes(model), "optimizer": opt.state_dict(), "epoch": epoch, spec.best_key: best,
            "best_epoch": best_epoch, "bad_epochs": bad, "best_model": best_state, "history": history,
            **state_extra()})
        last, stopped = epoch, stop()
        if stopped:
            break
    model.load_state_dict(best_state)
    return EpochsResult(history, best, best_epoch, start, last, stopped, train_seconds)


def fit(model: Backbone, batcher: TrainBatcher, splits: Splits, cfg: TrainConfig, ctx: LoopContext,
        aux_loss: AuxLoss | None = None, log: Callable[[str], None] = print,
        hook: LoopHook | None = None) -> FitResult:
    torch.manual_seed(cfg.seed)
    model.to(ctx.device)
    net = ctx.wrap(model)
    hook = hook or LoopHook()
    hook.start(model, ctx)
    opt = adam([*model.parameters(), *hook.lower_parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=ctx.device)
    run: dict = {"eval_time": 0.0, "rng": None}

    def on_resume(st: dict) -> None:
        hook.load_state_dict(st.get("hook", {}))
        if len(st.get("rng", ())) == ctx.world_size:  # dropout masks continue as in an uninterrupted run
            torch.set_rng_state(torch.as_tensor(st["rng"][ctx.rank]))

    def begin(start: int) -> None:
        run["progress"] = EpochProgress(cfg.max_epochs, len(batcher), enabled=ctx.rank == 0 and ctx.show_progress,
                                        stream=ctx.progress_stream, patience=cfg.patience, start_epoch=start)

    def step(epoch: int) -> tuple[dict, float, float]:
        gen.manual_seed(cfg.seed * 100003 + epoch * 101 + ctx.rank)
        net.train()
        t0 = time.perf_counter()
        hook.start_epoch(model, epoch)
        total, count = 0.0, 0
        for batch in run["progress"].batches(epoch, batcher.epoch(epoch)):
            batch = batch.to(ctx.device)
            hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets, net)
            loss, _ = next_item_loss(model, hidden, batch.targets, cfg.loss, hook.weights(batch, hidden, epoch), gen)
            if aux_loss is not None:
                loss = loss + aux_loss(model, batch, hidden, gen)
            extra = hook.extra_loss(model, batch, epoch)
            if extra is not None:
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            hook.before_step()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            hook.after_step(batch, epoch)
            total += float(loss.detach())
            count += 1
            run["progress"].set_loss(total / count)
        seconds = time.perf_counter() - t0
        red = ctx.all_reduce_sum({"loss": total, "batches": float(count)})  # the global mean, on every rank
        total, count = red["loss"], int(red["batches"])
        t1 = time.perf_counter()
        valid, _ = evaluate(model, splits, "valid", ctx, cfg.eval_batch_size, hook)
        run["eval_time"] += time.perf_counter() - t1
        record = {"epoch": epoch, "loss": total / max(count, 1), **{f"valid_{k}": v for k, v in valid.items()}}
        return record, valid[cfg.valid_metric], seconds

    def report(epoch: int, record: dict, best: float, best_epoch: int) -> None:
        run["progress"].end_epoch(record, cfg.valid_metric, best)
        run["rng"] = ctx.gather(torch.get_rng_state().numpy())  # every rank's, for an exact resume

    res = run_epochs(model, opt, ctx, Epochs(cfg.max_epochs, cfg.patience, -1.0, lambda s, b: s > b, "best_score"),
                     step, begin, lambda st, best, at: f"resumed from epoch {st['epoch']} (best {cfg.valid_metric} "
                     f"{best:.4f} at epoch {at})", hook.end_epoch, report,
                     lambda: {"rng": [torch.from_numpy(r) for r in run["rng"]], "hook": hook.state_dict()},
                     on_resume, log)
    run["progress"].close()
    hook.finish()
    epoch = res.history[-1]["epoch"] if res.history else -1
    n_epochs = max(epoch + 1 - res.start, 1)
    best_valid = next((dict(h) for h in res.history if h["epoch"] == res.best_epoch), {})
    return FitResult(res.best_epoch, epoch + 1, best_valid, res.history, res.train_seconds / n_epochs,
                     run["eval_time"] / n_epochs)


def test_ranks(model: Backbone, splits: Splits, ctx: LoopContext, batch_size: int,
               hook: LoopHook | None = None) -> tuple[dict, np.ndarray]:
    """Test metrics and every user's test rank (gathered from all ranks, in user order)."""
    metrics, ranks = evaluate(model, splits, "test", ctx, batch_size, hook)
    parts = ctx.gather(ranks)
    full = np.empty(splits.num_users, dtype=np.int64)
    for r, part in enumerate(parts):
        full[r::ctx.world_size] = part
    return metrics, full
