"""The `train` stage: config -> data -> fit (locally or on Ray Train) -> metrics.json + user_metrics.parquet."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from dr4sr.artifacts import Artifact, ArtifactStore, artifact_id
from dr4sr.config import deep_merge, from_dict, to_dict
from dr4sr.data.datasets import load_dataset
from dr4sr.data.splits import Splits, leave_one_out
from dr4sr.errors import DR4SRError
from dr4sr.models.registry import get_backbone
from dr4sr.train.config import RunConfig
from dr4sr.train.loop import LoopContext, resolve_device
from dr4sr.train.worker import CHECKPOINT_NAME, TrainingInput, load_checkpoint, run_worker, save_checkpoint, write_outputs

SMOKE_OVERRIDES = {"train": {"max_epochs": 2, "patience": 2}}


def build_run_config(backbone: str, dataset: str | None = None, overrides: dict | None = None,
                     data_dir: str | None = None, smoke_test: bool = False) -> RunConfig:
    """Backbone YAML defaults <- CLI dataset/data-dir <- --set overrides <- smoke-test limits."""
    spec = get_backbone(backbone)
    base = {"backbone": backbone, **spec.default_config()}
    cli: dict = {"data": {}}
    if dataset is not None:
        cli["data"]["dataset"] = dataset
    if data_dir is not None:
        cli["data"]["data_dir"] = data_dir
    merged = deep_merge(deep_merge(base, cli), overrides or {})
    if smoke_test:
        merged = deep_merge(merged, SMOKE_OVERRIDES)
    cfg = from_dict(RunConfig, merged)
    from_dict(spec.config_cls, cfg.model, "model.")  # validate model keys now, not inside a worker
    return cfg


def prepare_splits(cfg: RunConfig) -> Splits:
    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, cfg.data.k_core)
    return leave_one_out(data, cfg.data.max_len)


def check_writable(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DR4SRError(f"output directory {out} is not writable: {exc.strerror or exc}") from None
    return out


def train_stage(cfg: RunConfig, out_dir: str | Path, splits: Splits | None = None,
                sequences: Sequence[np.ndarray] | None = None, row_weights: np.ndarray | None = None,
                workers: int = 1, gpus: bool = False, resume: bool = False, store_root: str | None = None,
                extra_metrics: dict | None = None, log=print, on_epoch=None) -> dict:
    """Train `cfg.backbone` on `sequences` (default: the original training sequences) and test it.
    `on_epoch(record)` gets every epoch's record (epoch, loss, valid_*), on the driver."""
    splits = splits or prepare_splits(cfg)  # bad data stops before anything is written
    out = check_writable(out_dir)
    sequences = splits.train if sequences is None else sequences
    ckpt_dir = out / "checkpoints"
    resume_state = None
    if resume and (ckpt_dir / CHECKPOINT_NAME).exists():
        resume_state = load_checkpoint(ckpt_dir / CHECKPOINT_NAME)
    elif resume:
        log(f"no checkpoint in {ckpt_dir}; starting from scratch")
    inp = TrainingInput(cfg, splits, sequences, row_weights, store_root, str(ckpt_dir.resolve()))
    started = time.time()
    if workers > 1 or gpus:
        from dr4sr.train.ray_train import run_ray_train

        storage = str((out / "ray").resolve())
        result = run_ray_train(inp, workers, gpus, storage, name=f"train-{cfg.backbone}", resume_state=resume_state,
                               on_epoch=on_epoch)
    else:
        ctx = LoopContext(resolve_device(cfg.train.device),
                          checkpoint_fn=lambda epoch, rec, state: save_checkpoint(ckpt_dir, state),
                          resume_state=resume_state, on_epoch=on_epoch)
        result = run_worker(inp, ctx)
    metrics = dict(result["metrics"])
    metrics["wall_seconds"] = time.time() - started
    metrics["config"] = to_dict(cfg)
    metrics["workers"] = workers
    if extra_metrics:
        metrics.update(extra_metrics)
    write_outputs(out, metrics, result["ranks"], splits.users, result["model_state"])
    return metrics


def train_key(cfg: RunConfig) -> dict:
    """What identifies a training run besides its data (the data is identified by the splits)."""
    return {k: v for k, v in to_dict(cfg).items() if k != "data"}


def cached_train(store: ArtifactStore, cfg: RunConfig, splits: Splits, sequences: Sequence[np.ndarray] | None = None,
                 data_id: str = "original", workers: int = 1, gpus: bool = False, log=print,
                 on_epoch=None) -> Artifact:
    """A content-addressed `train` artifact: the same config on the same data is trained once."""
    inputs = {"splits": splits.fingerprint, "sequences": data_id}
    found = store.get("train", artifact_id("train", train_key(cfg), inputs))
    if found is not None:
        log(f"reusing trained {cfg.backbone} {found.path}")
        return found
    with store.create("train", train_key(cfg), inputs) as w:
        metrics = train_stage(cfg, w.dir, splits, sequences, workers=workers, gpus=gpus,
                              store_root=str(store.root), log=log, on_epoch=on_epoch)
        shutil.rmtree(w.dir / "checkpoints", ignore_errors=True)  # the artifact keeps only the best weights
        w.info["test"] = metrics["test"]
    return w.artifact


def format_metrics(metrics: dict) -> str:
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    head = " ".join(f"{k:>10}" for k in keys)
    rows = [f"{'':6}{head}"]
    for split in ("valid", "test"):
        rows.append(f"{split:6}" + " ".join(f"{metrics[split].get(k, float('nan')):10.4f}" for k in keys))
    rows.append(f"best epoch {metrics['best_epoch']} of {metrics['epochs']}, "
                f"{metrics['seconds_per_epoch']:.2f} s/epoch train, {metrics['eval_seconds_per_epoch']:.2f} s/epoch eval"
                + (f", peak RSS {metrics['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in metrics else "")
                + (f", peak GPU {metrics['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in metrics else ""))
    return "\n".join(rows)
