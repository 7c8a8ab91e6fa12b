"""Run `run_worker` on N Ray Train workers (TorchTrainer, Train V2, DDP: gloo on CPU, NCCL on GPU)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from ray.train.v2.api.callback import UserCallback  # this module is imported only when Ray is used

from dr4sr.train.loop import LoopContext
from dr4sr.train.worker import (
    CHECKPOINT_NAME,
    TrainingInput,
    json_default,
    load_checkpoint,
    run_worker,
    save_checkpoint,
)

MAX_FAILURES = 3  # worker-group restarts per training run before it fails
FILES_DIR = "files"  # an extension's output files, in the final checkpoint


class RayTrainContext(LoopContext):
    def __init__(self, checkpoint_dir: str | None, resume_state: dict | None, progress_path: str | None = None):
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.show_progress = self.rank == 0
        super().__init__(ray.train.torch.get_device(), None, resume_state)
        self.checkpoint_dir = checkpoint_dir
        if self.rank == 0 and progress_path:  # the driver prints this file's lines: once, without Ray's prefix
            self.progress_stream = open(progress_path, "a", buffering=1)

    def wrap(self, model):
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sum(self, values):
        if self.world_size == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def all_reduce_tensor(self, tensor):
        if self.world_size > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather(self, array):
        if self.world_size == 1:
            return [array]
        out = [None] * self.world_size
        dist.all_gather_object(out, array)
        return out

    def end_epoch(self, epoch, metrics, state_fn):
        import ray.train

        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.rank != 0:
            ray.train.report(report)
            return
        state = {**state_fn(), **self.checkpoint_meta}
        if self.checkpoint_dir:
            save_checkpoint(self.checkpoint_dir, state)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(state, os.path.join(tmp, CHECKPOINT_NAME))
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def verbose() -> bool:
    """Show Ray's own log lines (`dr4sr --verbose`); by default only dr4sr's lines reach the terminal."""
    return os.environ.get("DR4SR_VERBOSE", "") not in ("", "0")


def ensure_ray(dashboard: bool = False) -> None:
    """Join the cluster this process was submitted to (RAY_ADDRESS), else start a local Ray.

    `dashboard=True` starts the local Ray with its dashboard on 127.0.0.1: Tune studies need it, since
    Train's placement-group cleaner finds dead controllers (ASHA-stopped trials) through the State API."""
    import logging

    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {} if verbose() else {"log_to_driver": False, "logging_level": logging.ERROR}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address="auto", **quiet)
    elif dashboard:
        ray.init(include_dashboard=True, dashboard_host="127.0.0.1", **{"log_to_driver": True, **quiet})
    else:
        ray.init(include_dashboard=False, **{"log_to_driver": True, **quiet})


class ProgressTail:
    """Prints the lines rank 0 appends to `path` while a Ray Train run goes on (polled by a thread)."""

    def __init__(self, path: Path, stream=None):
        self.path, self.stream = path, stream or sys.stderr
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        self.offset = path.stat().st_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProgressTail":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._drain()

    def _drain(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        done = data.rfind(b"\n") + 1  # whole lines only
        if done:
            self.stream.write(data[:done].decode(errors="replace"))
            self.stream.flush()
            self.offset += done


class EpochHook(UserCallback):
    """Runs in the Train controller: passes each per-epoch report of rank 0 to `fn` (which must be
    picklable); the final `{"done": 1}` report carries no epoch and is not passed on."""

    def __init__(self, fn):
        self.fn = fn

    def after_report(self, run_context, metrics, checkpoint):
        if "epoch" in metrics[0]:
            self.fn(dict(metrics[0]))


def _loop_per_worker(config: dict) -> None:
    """Generic Ray Train worker: resume, run `fit_fn(input, ctx)`, send rank 0's results back."""
    import ray.train

    inp, fit_fn = config["input"], config["fit_fn"]
    resume = config.get("resume_state")
    ckpt = ray.train.get_checkpoint()  # the last reported one, when Ray restarts workers after a failure
    if ckpt is not None:
        with ckpt.as_directory() as d:
            if Path(d, "metrics.json").exists():  # training had finished: hand its results back again
                _report_final(ray.train.get_context().get_world_rank(), d)
                return
            resume = load_checkpoint(Path(d) / CHECKPOINT_NAME)
    ctx = RayTrainContext(inp.checkpoint_dir, resume, config.get("progress_path"))
    out = fit_fn(inp, ctx)
    if ctx.rank == 0:
        # final results travel back to the driver in a last checkpoint
        with tempfile.TemporaryDirectory() as tmp:
            if out.get("ranks") is not None:
                np.save(os.path.join(tmp, "ranks.npy"), out["ranks"])
            torch.save(out["model_state"], os.path.join(tmp, "model.pt"))
            save_files(Path(tmp, FILES_DIR), out.get("files"))
            Path(tmp, "metrics.json").write_text(json.dumps(out["metrics"], default=json_default))
            _report_final(ctx.rank, tmp)
    else:
        _report_final(ctx.rank, None)


def save_files(directory: Path, files: dict | None) -> None:
    """An extension's output files (dr4sr.train.extensions), as they travel in the final checkpoint."""
    for name, obj in (files or {}).items():
        if obj is None:
            continue
        directory.mkdir(exist_ok=True)
        if name.endswith(".parquet"):  # a dict of columns
            np.savez(directory / f"{name}.npz", **obj)
        else:  # a state dict
            torch.save(obj, directory / name)


def load_files(directory: Path) -> dict:
    files = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".parquet.npz"):
            with np.load(path) as z:
                files[path.name[:-len(".npz")]] = {k: z[k] for k in z.files}
        else:
            files[path.name] = torch.load(path, map_location="cpu", weights_only=True)
    return files


def _report_final(rank: int, directory: str | None) -> None:
    import ray.train

    if rank == 0:
        ray.train.report({"done": 1}, checkpoint=ray.train.Checkpoint.from_directory(directory))
    else:
        ray.train.report({"done": 1})


def run_on_ray_train(fit_fn, inp, workers: int, use_gpu: bool, storage_path: str, name: str,
                     resume_state: dict | None = None, cpus_per_worker: float = 1.0,
                     max_failures: int = MAX_FAILURES, on_epoch=None) -> dict:
    """Run `fit_fn(inp, ctx)` on `workers` DDP workers; returns {model_state, metrics[, ranks][, files]}.

    A worker that dies (a killed process, a lost spot node) makes Ray restart the whole worker group, up
    to `max_failures` times; every worker then resumes from the last checkpoint rank 0 reported."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ensure_ray()
    progress = Path(storage_path) / f"{name}-progress.log"  # on the storage every worker reaches
    trainer = TorchTrainer(
        _loop_per_worker,
        train_loop_config={"input": inp, "fit_fn": fit_fn, "resume_state": resume_state,
                           "progress_path": str(progress)},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker=None if use_gpu else {"CPU": cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage_path,
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=max_failures),
                             logging_config=LoggingConfig(log_level="INFO" if verbose() else "ERROR"),
                             callbacks=[EpochHook(on_epoch)] if on_epoch is not None else None),
    )
    with ProgressTail(progress):
        result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        out = {"model_state": torch.load(Path(d) / "model.pt", map_location="cpu", weights_only=True),
               "metrics": json.loads(Path(d, "metrics.json").read_text())}
        if Path(d, "ranks.npy").exists():
            out["ranks"] = np.load(Path(d) / "ranks.npy")
        if Path(d, FILES_DIR).is_dir():
            out["files"] = load_files(Path(d, FILES_DIR))
    return out


def run_ray_train(inp: TrainingInput, workers: int, use_gpu: bool, storage_path: str,
                  name: str, resume_state: dict | None = None, cpus_per_worker: float = 1.0, on_epoch=None) -> dict:
    return run_on_ray_train(run_worker, inp, workers, use_gpu, storage_path, name, resume_state, cpus_per_worker,
                            on_epoch)
