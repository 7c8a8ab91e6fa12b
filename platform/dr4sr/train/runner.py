"""Training a model: config -> data -> fit (locally or on Ray Train) -> metrics.json + user_metrics.parquet
(the `train` stage of dr4sr.stages stores it as an artifact)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dr4sr.config import CONFIG_DIR, deep_merge, from_dict, load_yaml, to_dict
from dr4sr.data.datasets import load_dataset
from dr4sr.data.splits import Splits, leave_one_out
from dr4sr.errors import DR4SRError
from dr4sr.models.registry import get_backbone
from dr4sr.presets import TARGET_SECTIONS, load_preset
from dr4sr.smoke import SMOKE_TRAIN
from dr4sr.train.config import RunConfig
from dr4sr.train.extensions import EXTENSIONS, enabled_extension
from dr4sr.train.loop import LoopContext, resolve_device
from dr4sr.train.worker import (
    CHECKPOINT_NAME,
    CheckpointError,
    TrainingInput,
    check_resume_state,
    load_checkpoint,
    run_identity,
    run_worker,
    save_checkpoint,
    write_outputs,
)


def build_run_config(backbone: str, dataset: str | None = None, overrides: dict | None = None,
                     data_dir: str | None = None, smoke_test: bool = False, preset: str | None = None,
                     defaults: dict | None = None) -> RunConfig:
    """Backbone YAML defaults <- `defaults` (a baseline's own file, configs/melt.yaml) <- CLI dataset/data-dir
    <- preset <- smoke-test limits <- --set overrides (the order of dr4sr.regen.config.build_regen_config).

    An explicit `--set train.max_epochs=5` wins over --smoke-test's 2 epochs (the smoke label says 5)."""
    spec = get_backbone(backbone)
    base = deep_merge({"backbone": backbone, **load_yaml(CONFIG_DIR / "personalizer.yaml")}, spec.default_config())
    base = deep_merge(base, defaults or {})
    cli: dict = {"data": {}}
    if dataset is not None:
        cli["data"]["dataset"] = dataset
    if data_dir is not None:
        cli["data"]["data_dir"] = data_dir
    merged = deep_merge(deep_merge(base, cli), load_preset(preset, TARGET_SECTIONS))
    if smoke_test:
        merged = deep_merge(merged, SMOKE_TRAIN)
    merged = deep_merge(merged, overrides or {})
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
                workers: int = 1, gpus: bool = False, resume: bool = False, extra_metrics: dict | None = None,
                log=print, row_sources: Sequence[str] | None = None, on_epoch=None, item_graph=None,
                on_checkpoint=None) -> dict:
    """Train `cfg.backbone` on `sequences` (default: the original training sequences) and test it.
    `on_epoch(record)` gets every epoch's record (epoch, loss, valid_*), on the driver. `item_graph`: a graph
    backbone's graph built beforehand (the stage graph's `graph` artifact); else the worker builds it.
    `on_checkpoint(path)`: each epoch checkpoint once written (single-process training only: with Ray
    Train, rank 0 writes it on its own node)."""
    extension = enabled_extension(cfg)  # e.g. DR4SR+; an enabled one whose room is not loaded stops here
    splits = splits or prepare_splits(cfg)  # bad data stops before anything is written
    out = check_writable(out_dir)
    sequences = splits.train if sequences is None else sequences
    ckpt_dir = out / "checkpoints"
    resume_state = None
    if resume and (ckpt_dir / CHECKPOINT_NAME).exists():
        path = ckpt_dir / CHECKPOINT_NAME
        resume_state = check_resume_state(load_checkpoint(path), path, run_identity(cfg, splits.num_items))
    elif resume:
        log(f"no checkpoint in {ckpt_dir}; starting from scratch")
    inp = TrainingInput(cfg, splits, sequences, row_weights, item_graph, str(ckpt_dir.resolve()), row_sources,
                        extension)
    started = time.time()
    if gpus and not torch.cuda.is_available():
        raise DR4SRError("--gpus: no CUDA device is visible to this process")
    def checkpointed(path: Path) -> None:
        if on_checkpoint is not None:
            on_checkpoint(path)

    if use_ray_train(workers):
        from dr4sr.train.ray_train import run_ray_train

        if not resume:  # Ray Train resumes any run it finds under (storage, name): start clean
            shutil.rmtree(out / "ray", ignore_errors=True)
        storage = str((out / "ray").resolve())
        result = run_ray_train(inp, workers, gpus, storage, name=f"train-{cfg.backbone}", resume_state=resume_state,
                               on_epoch=on_epoch)
    else:  # one worker: the plain loop in this process, on the GPU with --gpus; Ray never starts
        ctx = LoopContext(resolve_device("cuda" if gpus else cfg.train.device),
                          checkpoint_fn=lambda epoch, rec, state: checkpointed(save_checkpoint(ckpt_dir, state)),
                          resume_state=resume_state, on_epoch=on_epoch)
        result = run_worker(inp, ctx)
    metrics = dict(result["metrics"])
    metrics["wall_seconds"] = time.time() - started
    metrics["config"] = to_dict(cfg)
    metrics["workers"] = workers
    if extra_metrics:
        metrics.update(extra_metrics)
    write_outputs(out, metrics, result["ranks"], splits.users, result["model_state"], result.get("files"))
    return metrics


def train_key(cfg: RunConfig) -> dict:
    """What identifies a training run besides its data (the data is identified by the splits)."""
    key = {k: v for k, v in to_dict(cfg).items() if k != "data"}
    if not cfg.personalizer.enabled:  # a disabled personalizer changes nothing: keep the ids of older runs
        key.pop("personalizer")
    elif cfg.personalizer.mode != "constant":  # constant-mode keys came later: earlier DR4SR+ ids stay the same
        key["personalizer"].pop("constant_weight")
        key["personalizer"].pop("source_weights")  # and they do nothing in the other modes
    if "personalizer" in key and not cfg.personalizer.source_weights:  # source_weights: unset keeps old ids
        key["personalizer"].pop("source_weights", None)
    if not cfg.melt.enabled:  # likewise MELT's section, added later
        key.pop("melt")
    return key


def train_into(w, cfg: RunConfig, splits: Splits, sequences: Sequence[np.ndarray] | None = None,
               row_sources: Sequence[str] | None = None, item_graph=None, workers: int = 1, gpus: bool = False,
               log=print, on_epoch=None) -> None:
    """Train into an artifact writer's staging folder (dr4sr.stages runs it). The folder is this id's: a
    checkpoint there is a killed run of this very config, resumed; an unreadable one is discarded."""
    def train(resume: bool) -> dict:
        # on an s3:// store each checkpoint also goes to the bucket, so a run moved to another node resumes
        return train_stage(cfg, w.dir, splits, sequences, workers=workers, gpus=gpus, resume=resume, log=log,
                           row_sources=row_sources, on_epoch=on_epoch, item_graph=item_graph,
                           on_checkpoint=w.save_progress)

    try:
        metrics = train((w.dir / "checkpoints" / CHECKPOINT_NAME).exists())
    except CheckpointError as exc:
        log(f"discarding the unreadable checkpoint of a killed run ({exc}); training from scratch")
        shutil.rmtree(w.dir / "checkpoints", ignore_errors=True)
        metrics = train(False)
    for scratch in ("checkpoints", "ray"):  # the artifact keeps only the best weights
        shutil.rmtree(w.dir / scratch, ignore_errors=True)
    w.info["test"] = metrics["test"]


def use_ray_train(workers: int) -> bool:
    """Ray Train only for DDP (more than one worker); one worker is the plain loop, with or without GPU."""
    return workers > 1


def format_metrics(metrics: dict) -> str:
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    head = " ".join(f"{k:>10}" for k in keys)
    rows = ([metrics["smoke_test"]] if metrics.get("smoke_test") else []) + [f"{'':6}{head}"]
    for split in ("valid", "test"):
        rows.append(f"{split:6}" + " ".join(f"{metrics[split].get(k, float('nan')):10.4f}" for k in keys))
    rows.append(f"best epoch {metrics['best_epoch']} of {metrics['epochs']}, "
                f"{metrics['seconds_per_epoch']:.2f} s/epoch train, "
                f"{metrics['eval_seconds_per_epoch']:.2f} s/epoch eval"
                + (f", peak RSS {metrics['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in metrics else "")
                + (f", peak GPU {metrics['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in metrics else ""))
    for section, ext in EXTENSIONS.items():
        if section in metrics and ext.describe is not None:
            rows.append(ext.describe(metrics[section]))
    return "\n".join(rows)
