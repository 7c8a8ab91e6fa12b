"""Recording a grid's cells outside its folder: the grid's Optuna study, and MLflow or W&B runs.

The grid's driver calls `GridTracking.record()` before its runs start (so cells that ended before, or in
a grid that was never tracked, are backfilled) and after each run ends. It reads the ended cells from the
folder (`dr4sr.search.grid_cells`) and logs those not logged yet, so it never duplicates a cell and
never needs the workers. `<out>/tracking.json` keeps where the study is and which tracker the grid uses,
so a rerun without the flags keeps them.

MLflow and W&B: one run per cell named after the cell, tagged dataset, backbone, variant and seed; its
resolved config as flat `section.key` params; per-epoch loss and validation (step = epoch); the best
epoch's validation and the test metrics at the end; the store's artifact ids as tags. A failed cell is
logged as a failed run with its error; once it finishes on a rerun that run is replaced (MLflow) or a
finished run is added (W&B runs offline and cannot be deleted from here).
"""
from __future__ import annotations

import json
from pathlib import Path

from dr4sr.paths import atomic_write_text
from dr4sr.search.grid_cells import ended_cells
from dr4sr.search.grid_status import read_json
from dr4sr.search.grid_study import grid_study_name, sync_study
from dr4sr.search.optuna_db import StudyDB
from dr4sr.search.tracking import check_tracker, tracking_uri

TRACK_FILE = "tracking.json"


class GridTracking:
    """Where a grid records its cells: its Optuna study (always) and a tracker (`--track`)."""

    def __init__(self, out: str | Path, storage: str | None = None, track: str | None = None):
        self.out = Path(out)
        saved = read_json(self.out / TRACK_FILE)
        optuna_info = saved.get("optuna") or {}
        self.db = StudyDB(str(self.out.resolve()), optuna_info.get("study_name") or grid_study_name(self.out),
                          storage or optuna_info.get("storage"))
        self.track = check_tracker(track or saved.get("track"))

    def save(self) -> None:
        atomic_write_text(self.out / TRACK_FILE, json.dumps(
            {"optuna": {"storage": self.db.storage, "study_name": self.db.name}, "track": self.track}, indent=2))

    def announce(self) -> None:
        print(f"[grid] Optuna study {self.db.name!r} in {self.db.url}: dr4sr dashboard {self.out}", flush=True)
        if self.track == "mlflow":
            print(f"[grid] MLflow: mlflow ui --backend-store-uri {tracking_uri(self.out)}", flush=True)
        elif self.track == "wandb":
            from dr4sr.search.wandb_tracking import wandb_dir, wandb_mode

            print(f"[grid] W&B ({wandb_mode()}): runs under {wandb_dir(self.out) / 'wandb'}", flush=True)

    def tracker(self):
        if self.track == "mlflow":
            from dr4sr.search.mlflow_tracking import MlflowCells

            return MlflowCells(self.out, self.db.name)
        if self.track == "wandb":
            from dr4sr.search.wandb_tracking import WandbCells, wandb_project

            return WandbCells(self.out, wandb_project(self.db.name))
        return None

    def record(self, tracker: bool = True) -> dict[str, int]:
        """Log the ended cells not logged yet (to the study; with `tracker`, to the tracker too); returns
        how many went to each."""
        from filelock import FileLock

        with FileLock(str(self.out / ".tracking.lock")):  # the dashboard may backfill the same folder
            cells = ended_cells(self.out)
            meta = json.loads((self.out / "grid.json").read_text())
            done = {"optuna": sync_study(self.db, cells, meta)}
            logger = self.tracker() if tracker else None
            if logger is not None:
                done[self.track] = logger.log(cells)
        return done

    def record_quietly(self) -> None:
        """After a run ended: a tracking error must not stop the grid (the next record() catches up)."""
        try:
            self.record()
        except Exception as exc:
            print(f"[grid] recording the cells failed ({type(exc).__name__}: {exc}); the next finished run "
                  f"or rerun retries it", flush=True)
