"""`--track wandb`: Weights & Biases runs for a study's trials (Ray's WandbLoggerCallback) and a grid's cells.

Offline unless $WANDB_MODE says otherwise: the runs are written under `<out>/wandb/` ($WANDB_DIR
overrides), with no account and no network; `wandb sync <out>/wandb/offline-run-*` uploads them later.
Online mode needs a W&B login (WANDB_API_KEY). The project is the stored study's name ($WANDB_PROJECT
overrides). Imported only with --track wandb: importing wandb takes a while.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _set_api_key

from dr4sr.search.grid_cells import Cell
from dr4sr.search.tracking import epoch_metrics, final_metrics, flat, run_params

OFFLINE = ("offline", "disabled")


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE") or "offline"


def wandb_settings() -> dict:
    """wandb.init settings (a dict: Ray pickles it to the logging actor): no console capture, no system
    metrics sampling, no code or git snapshot."""
    return {"mode": wandb_mode(), "quiet": True, "console": "off", "x_disable_stats": True,
            "disable_git": True, "disable_code": True}


def wandb_project(name: str) -> str:
    """W&B project names allow no '/', '\\', '#', '?', '%' or ':'; $WANDB_PROJECT overrides."""
    return os.environ.get("WANDB_PROJECT") or re.sub(r"[/\\#?%:]", "-", name)


def wandb_dir(out: str | Path) -> Path:
    """The folder that holds the `wandb/` run folders."""
    return Path(os.environ.get("WANDB_DIR") or Path(out).resolve())


class StudyWandbLogger(WandbLoggerCallback):
    """Ray's W&B logger with dr4sr's names: the trial's `dr4sr run` config instead of Tune's raw config, the
    trial id as run id, and at the end the run's test metrics (from its metrics.json) in the summary."""

    def __init__(self, out: str | Path, project: str):
        self.out = str(Path(out).resolve())
        super().__init__(project=wandb_project(project), dir=str(wandb_dir(out)), settings=wandb_settings(),
                         excludes=["time_this_iter_s", "time_total_s", "time_since_restore", "timestamp",
                                   "iterations_since_restore"])

    def setup(self, *args, **kwargs):
        if wandb_mode() not in OFFLINE:
            _set_api_key(None, None)  # online: the same login check as Ray's

    def log_trial_start(self, trial):
        kwargs = dict(id=trial.trial_id, name=str(trial), resume=False, allow_val_change=True,
                      group=self.group or trial.experiment_dir_name, project=self.project,
                      config=run_params(trial.config), **self.kwargs)
        self._start_logging_actor(trial, [*self._exclude_results, *self.excludes, "config"], **kwargs)

    def log_trial_end(self, trial, failed: bool = False):
        metrics = Path(self.out) / "trials" / trial.trial_id / "run" / "metrics.json"
        if trial in self._trial_queues and metrics.is_file():
            self._trial_queues[trial].put((_QueueItem.RESULT, final_metrics(json.loads(metrics.read_text()))))
        super().log_trial_end(trial, failed)

    def __del__(self):
        try:
            super().__del__()
        except AttributeError:  # at interpreter exit Ray's module globals are gone already
            pass


class WandbCells:
    """One W&B run per cell (offline unless WANDB_MODE says otherwise), under `<out>/wandb/`."""

    def __init__(self, out: Path, project: str):
        self.out, self.project = Path(out), project

    def run_id(self, cell: Cell) -> str:
        """A fixed id per cell and outcome: a run folder with it means the cell was logged."""
        key = f"{self.project}/{cell.name}/{'finished' if cell.ok else 'failed'}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def folder(self) -> Path:
        return wandb_dir(self.out) / "wandb"

    def log(self, cells: list[Cell]) -> int:
        n = 0
        for cell in cells:
            if not any(self.folder().glob(f"*run-*-{self.run_id(cell)}")):
                self.log_cell(cell)
                n += 1
        return n

    def log_cell(self, cell: Cell) -> None:
        import wandb

        run = wandb.init(project=self.project, name=cell.name, id=self.run_id(cell),
                         dir=str(self.folder().parent), config=flat(cell.config()),
                         tags=[cell.run.dataset, cell.run.backbone, cell.run.variant, f"seed{cell.run.seed}"],
                         settings=wandb_settings())
        for h in cell.epochs():
            run.log(epoch_metrics(h), step=h["epoch"])
        run.summary.update({k: v for k, v in cell.tags().items() if k not in cell.params})
        if cell.ok:
            run.summary.update(final_metrics(cell.metrics))
        else:
            run.summary["error"] = cell.error
        run.finish(exit_code=0 if cell.ok else 1)
