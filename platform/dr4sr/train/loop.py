"""The training loop: plain PyTorch, the same on one CPU and on N Ray Train (DDP) workers.

Distribution is behind `LoopContext` (rank, world size, all-reduce, checkpoint/report); the loop
never imports Ray. Early stopping on the validation metric; the best weights are restored at the end.
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

    def __init__(self, device: torch.device | None = None, checkpoint_fn=None, resume_state: dict | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        self.device = device or torch.device("cpu")
        self._checkpoint_fn = checkpoint_fn
        self.resume_state = resume_state
        self._on_epoch = on_epoch  # e.g. a Tune trial's per-epoch report (ASHA decides on it)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def all_reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def gather(self, array: np.ndarray) -> list[np.ndarray]:
        return [array]

    def end_epoch(self, epoch: int, metrics: dict, state_fn: Callable[[], dict]) -> None:
        if self._checkpoint_fn is not None:
            self._checkpoint_fn(epoch, metrics, state_fn())
        if self._on_epoch is not None:
            self._on_epoch(metrics)


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


def evaluate(model: Backbone, splits: Splits, stage: str, ctx: LoopContext, batch_size: int) -> tuple[dict, np.ndarray]:
    """Metrics over all users; each rank ranks its shard and the sums are all-reduced."""
    users = np.arange(splits.num_users)[ctx.rank::ctx.world_size]
    hist = splits.history(stage)
    ranks = rank_targets(model, [hist[u] for u in users], splits.target(stage)[users], splits.max_len,
                         batch_size, ctx.device)
    sums = ctx.all_reduce_sum(metric_sums(ranks))
    return {k: v / splits.num_users for k, v in sums.items()}, ranks


def state_bytes(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def fit(model: Backbone, batcher: TrainBatcher, splits: Splits, cfg: TrainConfig, ctx: LoopContext,
        aux_loss: AuxLoss | None = None, log: Callable[[str], None] = print) -> FitResult:
    torch.manual_seed(cfg.seed)
    model.to(ctx.device)
    net = ctx.wrap(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=ctx.device)
    start_epoch, best_score, best_epoch, bad, history = 0, -1.0, -1, 0, []
    best_state = state_bytes(model)
    if ctx.resume_state is not None:
        st = ctx.resume_state
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start_epoch, best_score, best_epoch, bad = st["epoch"] + 1, st["best_score"], st["best_epoch"], st["bad_epochs"]
        best_state, history = st["best_model"], st["history"]
        log(f"resumed from epoch {st['epoch']} (best {cfg.valid_metric} {best_score:.4f} at epoch {best_epoch})")
    progress = EpochProgress(cfg.max_epochs, len(batcher), enabled=ctx.rank == 0 and ctx.show_progress)
    train_time = eval_time = 0.0
    epoch = start_epoch - 1
    for epoch in range(start_epoch if bad < cfg.patience else cfg.max_epochs, cfg.max_epochs):
        gen.manual_seed(cfg.seed * 100003 + epoch * 101 + ctx.rank)
        net.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for batch in progress.batches(epoch, batcher.epoch(epoch)):
            batch = batch.to(ctx.device)
            hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets, net)
            loss, _ = next_item_loss(model, hidden, batch.targets, cfg.loss, batch.weights, gen)
            if aux_loss is not None:
                loss = loss + aux_loss(model, batch, hidden, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach())
            count += 1
            progress.set_loss(total / count)
        train_time += time.perf_counter() - t0
        red = ctx.all_reduce_sum({"loss": total, "batches": float(count)})  # the global mean, on every rank
        total, count = red["loss"], int(red["batches"])
        t1 = time.perf_counter()
        valid, _ = evaluate(model, splits, "valid", ctx, cfg.eval_batch_size)
        eval_time += time.perf_counter() - t1
        score = valid[cfg.valid_metric]
        if score > best_score:
            best_score, best_epoch, bad = score, epoch, 0
            best_state = state_bytes(model)
        else:
            bad += 1
        record = {"epoch": epoch, "loss": total / max(count, 1), **{f"valid_{k}": v for k, v in valid.items()},
                  "best_epoch": best_epoch, "seconds": time.perf_counter() - t0}
        history.append(record)
        progress.end_epoch(record, cfg.valid_metric, best_score)
        ctx.end_epoch(epoch, record, lambda: {
            "model": state_bytes(model), "optimizer": opt.state_dict(), "epoch": epoch, "best_score": best_score,
            "best_epoch": best_epoch, "bad_epochs": bad, "best_model": best_state, "history": history})
        if bad >= cfg.patience:
            break
    progress.close()
    model.load_state_dict(best_state)
    epoch = history[-1]["epoch"] if history else -1
    n_epochs = max(epoch + 1 - start_epoch, 1)
    best_valid = next((dict(h) for h in history if h["epoch"] == best_epoch), {})
    return FitResult(best_epoch, epoch + 1, best_valid, history, train_time / n_epochs, eval_time / n_epochs)


def test_ranks(model: Backbone, splits: Splits, ctx: LoopContext, batch_size: int) -> tuple[dict, np.ndarray]:
    """Test metrics and every user's test rank (gathered from all ranks, in user order)."""
    metrics, ranks = evaluate(model, splits, "test", ctx, batch_size)
    parts = ctx.gather(ranks)
    full = np.empty(splits.num_users, dtype=np.int64)
    for r, part in enumerate(parts):
        full[r::ctx.world_size] = part
    return metrics, full
