"""Regenerator pre-training on (sequence, pattern) pairs: one plain PyTorch loop, run locally or on
N Ray Train (TorchTrainer, DDP) workers through the same `LoopContext` as the target-model loop.

Loss: token cross-entropy over the pattern + EOS; with `restrict_to_source` the softmax runs over the
source's items + EOS only (as the authors trained; the pattern's own items are added because
patterns are mined from the untruncated sequence and may hold items cut from the <= 48-item source).
Validation loss on a seeded hold-out of pairs drives early stopping; the best weights are kept.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from dr4sr.regen.config import PretrainConfig, RegeneratorConfig
from dr4sr.regen.model import PAD, Regenerator, init_from_sasrec
from dr4sr.regen.pairs import PairBatch, PairBatcher, PairData
from dr4sr.train.loop import Epochs, LoopContext, adam, resolve_device, run_epochs
from dr4sr.train.progress import EpochProgress
from dr4sr.train.worker import CHECKPOINT_NAME, load_checkpoint, save_checkpoint


@dataclasses.dataclass
class PretrainInput:
    """Everything a worker needs; picklable so Ray can ship it."""
    model_cfg: RegeneratorConfig
    cfg: PretrainConfig
    num_items: int
    train: PairData
    valid: PairData
    init_state: dict | None = None  # SASRec state dict, or None for scratch
    checkpoint_dir: str | None = None
    init_copy: str = "embeddings+encoder"  # init.copy: what init_from_sasrec copies


def token_loss(model: Regenerator, net: torch.nn.Module, batch: PairBatch, tau: float,
               restrict: bool, causal: bool = False) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """(summed CE over target tokens, number of tokens, pi)."""
    select = batch.dec_out > 0
    targets = batch.dec_out[select]
    if restrict:
        # softmax over each row's distinct candidates only (source + pattern items + EOS): exactly
        # the masked full-vocabulary softmax, without scoring ~N items per target token
        b = batch.src.size(0)
        eos = torch.full((b, 1), model.eos, dtype=torch.long, device=batch.src.device)
        cand = torch.cat([batch.src, batch.pattern, eos], 1)
        c = cand.size(1)
        earlier = torch.ones(c, c, dtype=torch.bool, device=cand.device).tril(-1)
        dup = ((cand[:, :, None] == cand[:, None, :]) & earlier).any(2)
        invalid = dup | (cand == PAD)
        scores, pi = net(batch.src, batch.dec_in, batch.pattern, tau, select, cand, causal=causal)
        row = torch.arange(b, device=cand.device)[:, None].expand_as(select)[select]
        scores = scores.masked_fill(invalid[row], float("-inf"))
        hit = (cand[row] == targets[:, None]) & ~invalid[row]
        return F.cross_entropy(scores, hit.float().argmax(1), reduction="sum"), int(targets.numel()), pi
    logits, pi = net(batch.src, batch.dec_in, batch.pattern, tau, select, causal=causal)
    logits[:, [PAD, model.bos]] = float("-inf")
    return F.cross_entropy(logits, targets, reduction="sum"), int(targets.numel()), pi


def temperature(cfg: PretrainConfig, step: int, total_steps: int) -> float:
    """Gumbel temperature at `step`: geometric tau_start -> tau_end over all training steps ("run"), or
    x tau_decay per step with floor tau_end ("step", the authors' 0.995 per batch)."""
    if cfg.tau_schedule == "step":
        return max(cfg.tau_start * cfg.tau_decay ** step, cfg.tau_end)
    frac = min(step / max(total_steps - 1, 1), 1.0)
    return cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac


@torch.no_grad()
def validation_loss(model: Regenerator, batcher: PairBatcher, cfg: PretrainConfig, tau: float,
                    ctx: LoopContext) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batcher.epoch(0):
        loss, n, _ = token_loss(model, model, batch.to(ctx.device), tau, cfg.restrict_to_source, cfg.causal_encoder)
        total, count = total + float(loss), count + n
    sums = ctx.all_reduce_sum({"loss": total, "count": float(count)})
    return sums["loss"] / max(sums["count"], 1.0)


def build_model(inp: PretrainInput) -> tuple[Regenerator, list[str]]:
    torch.manual_seed(inp.cfg.seed)
    model = Regenerator(inp.model_cfg, inp.num_items)
    copied = (init_from_sasrec(model, inp.init_state, encoder=inp.init_copy == "embeddings+encoder")
              if inp.init_state is not None else [])
    return model, copied


def pretrain_fit(inp: PretrainInput, ctx: LoopContext, log: Callable[[str], None] = print) -> dict:
    """Train; returns {"model_state", "metrics"} with the best-validation weights."""
    cfg = inp.cfg
    model, copied = build_model(inp)
    model.to(ctx.device)
    net = ctx.wrap(model)
    opt = adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    train = PairBatcher(inp.train, cfg.batch_size, model.bos, model.eos, cfg.seed, ctx.rank, ctx.world_size)
    valid = PairBatcher(inp.valid, cfg.batch_size, model.bos, model.eos, cfg.seed, ctx.rank, ctx.world_size,
                        shuffle=False) if len(inp.valid) else None
    total_steps = cfg.max_epochs * len(train)
    run: dict = {"step": 0}

    def begin(start: int) -> None:
        run["tau"] = temperature(cfg, run["step"], total_steps)
        run["progress"] = EpochProgress(cfg.max_epochs, len(train), enabled=ctx.rank == 0 and ctx.show_progress,
                                        patience=cfg.patience or None,  # 0: a fixed epoch count, no early stop
                                        stream=ctx.progress_stream, start_epoch=start)

    def step(epoch: int) -> tuple[dict, float, float]:
        torch.manual_seed(cfg.seed * 100003 + epoch * 101 + ctx.rank)  # dropout and Gumbel noise
        net.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for batch in run["progress"].batches(epoch, train.epoch(epoch)):
            run["tau"] = tau = temperature(cfg, run["step"], total_steps)
            batch = batch.to(ctx.device)
            loss_sum, n, pi = token_loss(model, net, batch, tau, cfg.restrict_to_source, cfg.causal_encoder)
            loss = loss_sum / max(n, 1)
            if cfg.entropy_weight and pi is not None:
                loss = loss + cfg.entropy_weight * -(pi * pi.clamp_min(1e-9).log()).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total, count, run["step"] = total + float(loss_sum.detach()), count + n, run["step"] + 1
        seconds = time.perf_counter() - t0
        sums = ctx.all_reduce_sum({"loss": total, "count": float(count)})
        train_loss = sums["loss"] / max(sums["count"], 1.0)
        val = validation_loss(model, valid, cfg, run["tau"], ctx) if valid is not None else train_loss
        return {"epoch": epoch, "train_loss": train_loss, "valid_loss": val, "tau": run["tau"]}, val, seconds

    def report(epoch: int, record: dict, best: float, best_epoch: int) -> None:
        # without a hold-out (valid_fraction 0) the "best" is tracked on the train loss: say so
        scored = f"valid {record['valid_loss']:.4f}" if valid is not None else "no hold-out"
        run["progress"].line(epoch, best_epoch, record["seconds"],
                             f"pretrain epoch {epoch:3d} | train {record['train_loss']:.4f} | {scored} "
                             f"(best {best:.4f} @ {best_epoch}) | tau {record['tau']:.3f}")

    # patience 0: a fixed epoch count, the last weights kept
    spec = Epochs(cfg.max_epochs, cfg.patience, float("inf"), lambda v, best: v < best - 1e-6 or not cfg.patience,
                  "best_loss")
    res = run_epochs(model, opt, ctx, spec, step, begin,
                     lambda st, best, at: f"pre-training resumed from epoch {st['epoch']} (best valid loss "
                     f"{best:.4f} at epoch {at})", lambda epoch, improved: {}, report,
                     lambda: {"step": run["step"]}, lambda st: run.update(step=st["step"]), log)
    run["progress"].close()
    # counts the epoch early stopping skipped, as pre-training always reported it
    epoch = res.last + 1 if res.stopped and res.last + 1 < cfg.max_epochs else res.last
    n_epochs = max(epoch + 1 - res.start, 1)
    metrics = {"best_epoch": res.best_epoch, "best_valid_loss": res.best, "epochs": epoch + 1,
               "seconds_per_epoch": res.train_seconds / n_epochs, "train_pairs": len(inp.train),
               "valid_pairs": len(inp.valid), "world_size": ctx.world_size, "init_copied": copied,
               "history": res.history}
    return {"model_state": {k: v.cpu() for k, v in model.state_dict().items()}, "metrics": metrics}


def pretrain_local(inp: PretrainInput, resume: bool = False, log: Callable[[str], None] = print,
                   gpus: bool = False, on_checkpoint: Callable[[Path], None] = lambda path: None) -> dict:
    """`on_checkpoint(path)` after each epoch checkpoint is written (e.g. to copy it to the bucket)."""
    ckpt = inp.checkpoint_dir
    state = None
    if resume and ckpt and (Path(ckpt) / CHECKPOINT_NAME).exists():
        state = load_checkpoint(Path(ckpt) / CHECKPOINT_NAME)
    ctx = LoopContext(resolve_device("cuda" if gpus else inp.cfg.device),
                      checkpoint_fn=(lambda e, rec, st: on_checkpoint(save_checkpoint(ckpt, st))) if ckpt else None,
                      resume_state=state)
    return pretrain_fit(inp, ctx, log)


def pretrain_ray(inp: PretrainInput, workers: int, use_gpu: bool, storage_path: str,
                 resume_state: dict | None = None) -> dict:
    """The same loop on `workers` Ray Train workers (DDP: gloo on CPU, NCCL on GPU)."""
    from dr4sr.train.ray_train import run_on_ray_train

    return run_on_ray_train(pretrain_fit, inp, workers, use_gpu, storage_path, "pretrain", resume_state)


def load_regenerator(state: dict, model_cfg: RegeneratorConfig, num_items: int) -> Regenerator:
    model = Regenerator(model_cfg, num_items)
    model.load_state_dict(state)
    model.eval()
    return model
