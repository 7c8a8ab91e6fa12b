"""One training run on one worker: build the model and batches, fit, test. Shared by the local path
and every Ray Train worker, so the two cannot drift apart."""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dr4sr.config import from_dict
from dr4sr.data.batching import TrainBatcher
from dr4sr.data.graph import ItemGraph, build_item_graph, graph_sequences
from dr4sr.data.splits import Splits
from dr4sr.errors import DR4SRError
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import build_backbone, get_backbone
from dr4sr.paths import atomic_write, atomic_write_text
from dr4sr.train.config import RunConfig
from dr4sr.train.extensions import Extension
from dr4sr.train.loop import LoopContext, fit, test_ranks
from dr4sr.train.losses import auxiliary_loss

CHECKPOINT_NAME = "last.pt"


class CheckpointError(DR4SRError):
    """A checkpoint that cannot be loaded or belongs to another run."""


@dataclasses.dataclass
class TrainingInput:
    """Everything a worker needs; picklable so Ray can ship it."""
    cfg: RunConfig
    splits: Splits
    sequences: Sequence[np.ndarray]  # what the model trains on (original or regenerated rows)
    row_weights: np.ndarray | None = None
    item_graph: ItemGraph | None = None  # a graph backbone's graph, built beforehand (else built here)
    checkpoint_dir: str | None = None  # where rank 0 keeps `last.pt` for --resume
    row_sources: Sequence[str] | None = None  # 'original' / 'mined' / 'generated' per row (DR4SR+ fixed rows)
    extension: Extension | None = None  # what the run config switches on (dr4sr.train.extensions), e.g. DR4SR+


def save_checkpoint(directory: str | Path, state: dict) -> Path:
    """Atomic write: a crash mid-save leaves the previous checkpoint intact."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=directory)
    with os.fdopen(fd, "wb") as f:  # a file object: torch's writer rejects some temp names
        torch.save(state, f)
    final = directory / CHECKPOINT_NAME
    os.replace(tmp, final)
    return final


def load_checkpoint(path: str | Path) -> dict:
    """A .pt file, tensors and plain containers only (weights_only): a tampered pickle cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # truncated zip, foreign pickle, not a torch file at all
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, tampered or not a torch "
                              f"file): {reason}") from None


def run_identity(cfg: RunConfig, num_items: int) -> dict:
    """What a training checkpoint must match to be resumed: the model and its vocabulary."""
    return {"backbone": cfg.backbone, "model": dict(cfg.model), "num_items": int(num_items)}


def check_resume_state(state: object, path: str | Path, expected: dict) -> dict:
    """The checkpoint's own record of its run must match this run's; one line says what differs."""
    needed = {"model", "optimizer", "epoch", "best_model", "history"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise CheckpointError(f"{path}: not a dr4sr training checkpoint (expected keys {sorted(needed)})")
    run = state.get("run")
    if not isinstance(run, dict):
        raise CheckpointError(f"{path}: the checkpoint does not record which model wrote it; cannot resume")
    if run.get("backbone") != expected["backbone"]:
        raise CheckpointError(f"{path}: checkpoint of a {run.get('backbone')} model, this run trains "
                              f"{expected['backbone']}")
    for key in sorted(set(run.get("model", {})) | set(expected["model"])):
        if run.get("model", {}).get(key) != expected["model"].get(key):
            raise CheckpointError(f"{path}: checkpoint has model.{key}={run.get('model', {}).get(key)!r}, "
                                  f"this run model.{key}={expected['model'].get(key)!r}")
    if run.get("num_items") != expected["num_items"]:
        raise CheckpointError(f"{path}: checkpoint was trained on {run.get('num_items')} items, this "
                              f"dataset has {expected['num_items']}")
    return state


def reset_peak_memory() -> None:
    """Start a run's peak-memory count from what is resident now: a process that runs one run after another
    (a grid's Ray worker, `dr4sr compare`) would otherwise report the highest peak of any earlier run.
    Linux: writing 5 to /proc/self/clear_refs resets the high-water mark (elsewhere nothing changes)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _high_water_kib() -> int:
    """VmHWM, which reset_peak_memory resets; ru_maxrss also keeps the peak of the process this one was
    forked from, so it is only the fallback (KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory_mb(device: torch.device | None) -> dict:
    """This process's peak resident memory since the run began (reset_peak_memory; data, model,
    evaluation), and on CUDA the peak tensor memory: what machine a run needs."""
    out = {"peak_rss_mb": round(_high_water_kib() / 1024, 1)}
    if device is not None and device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def run_worker(inp: TrainingInput, ctx: LoopContext) -> dict:
    """Fit and test; returns the metrics dict and (on every rank) all users' test ranks."""
    cfg = inp.cfg
    spec = get_backbone(cfg.backbone)
    model_cfg = from_dict(spec.config_cls, cfg.model, "model.")
    ctx.checkpoint_meta = {"run": run_identity(cfg, inp.splits.num_items)}
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    build = BuildContext(num_items=inp.splits.num_items, max_len=inp.splits.max_len,
                         original_train=inp.splits.train, training_rows=inp.sequences)
    if spec.item_graph is not None:  # the stage graph builds it once (a `graph` artifact); a bare run here
        graph = spec.item_graph(model_cfg)
        build.item_graph = inp.item_graph or build_item_graph(
            graph, graph_sequences(graph, inp.splits.train, inp.sequences), inp.splits.num_items)
    model = build_backbone(cfg.backbone, model_cfg, build)
    ext = inp.extension.setup(cfg, inp, model.training_mode, ctx) if inp.extension is not None else None
    sequences, row_weights, row_fixed, row_preset = inp.sequences, inp.row_weights, None, None
    if ext is not None:
        sequences, row_weights, row_fixed = ext.train_rows(sequences, row_weights)
        row_preset = ext.row_presets()
    batcher = TrainBatcher(sequences, cfg.train.batch_size, model.training_mode, inp.splits.max_len,
                           row_weights, cfg.train.seed, ctx.rank, ctx.world_size, row_fixed, row_preset)
    aux = auxiliary_loss(spec.auxiliary, model_cfg, inp)
    hook = ext.hook(cfg.train.loss, aux) if ext is not None else None
    result = fit(model, batcher, inp.splits, cfg.train, ctx, aux, hook=hook)
    test, ranks = test_ranks(model, inp.splits, ctx, cfg.train.eval_batch_size, hook)
    valid = {k[len("valid_"):]: v for k, v in result.best_valid.items() if k.startswith("valid_")}
    metrics = {
        "valid": valid, "test": test, "best_epoch": result.best_epoch, "epochs": result.epochs,
        "seconds_per_epoch": result.seconds_per_epoch, "eval_seconds_per_epoch": result.eval_seconds,
        "train_rows": batcher.num_rows, "train_targets": batcher.num_targets(),
        "skipped_rows": batcher.skipped_rows, "world_size": ctx.world_size,
        **peak_memory_mb(ctx.device), "history": result.history,
    }
    out = {"metrics": metrics, "ranks": ranks, "model_state": {k: v.cpu() for k, v in model.state_dict().items()}}
    if ext is not None:
        metrics[inp.extension.section], out["files"] = ext.results(model, ctx)
    return out


def write_outputs(out_dir: str | Path, metrics: dict, ranks: np.ndarray, users: np.ndarray,
                  model_state: dict | None = None, files: dict | None = None) -> None:
    """metrics.json + user_metrics.parquet (+ model.pt, + an extension's files: DR4SR+'s
    personalizer_weights.parquet and personalizer.pt), each written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table({"user": np.asarray(users, dtype=np.int64), "rank": np.asarray(ranks, dtype=np.int64)})
    atomic_write(out / "user_metrics.parquet", lambda p: pq.write_table(table, p))
    if model_state is not None:
        atomic_write(out / "model.pt", lambda p: _torch_save(model_state, p))
    for name, obj in (files or {}).items():
        if obj is None:
            continue
        if name.endswith(".parquet"):
            atomic_write(out / name, lambda p, obj=obj: pq.write_table(pa.table(obj), p))
        elif name.endswith(".pt"):
            atomic_write(out / name, lambda p, obj=obj: _torch_save(obj, p))
        else:
            raise ValueError(f"extension output {name!r}: expected a .parquet or .pt file name")
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=json_default))


def _torch_save(obj, path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)


def json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")
