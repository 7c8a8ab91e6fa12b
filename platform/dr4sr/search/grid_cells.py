"""A grid folder's cells as records: what the grid's study and trackers log, read from the folder alone.

A cell is one planned run (dataset x backbone x variant x seed, and the `tuned` retrains). It is
recorded once it ended: finished (its metrics.json holds test metrics) or failed (its driver's
status file says so, with the error). Everything comes from the run folder and the status files, so a
grid written before it was tracked, or by another driver, is recorded the same way.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dr4sr.search.grid import TUNED, GridRun, finished, planned_runs
from dr4sr.search.grid_status import STATUS_NAME, read_json

OBJECTIVE_METRIC = "ndcg@20"  # train.valid_metric of every grid run unless --set changes it


@dataclasses.dataclass(frozen=True)
class Cell:
    run: GridRun
    run_dir: Path
    metrics: dict | None  # metrics.json of a finished run
    error: str | None = None  # a failed run's last error line
    started: float | None = None  # when its driver started and ended it (status.json), if recorded
    ended: float | None = None

    @property
    def name(self) -> str:
        """The cell's key: its folder under the grid, e.g. tiny/sasrec/dr4sr-seed0."""
        return f"{self.run.dataset}/{self.run.backbone}/{self.run.variant}-seed{self.run.seed}"

    @property
    def ok(self) -> bool:
        return self.metrics is not None

    @property
    def params(self) -> dict:
        return {"dataset": self.run.dataset, "backbone": self.run.backbone, "variant": self.run.variant,
                "seed": self.run.seed}

    @property
    def valid_metric(self) -> str:
        return ((self.metrics or {}).get("config") or {}).get("train", {}).get("valid_metric", OBJECTIVE_METRIC)

    @property
    def value(self) -> float | None:
        """The validation score the run selected its epoch by (its best epoch's)."""
        return float(self.metrics["valid"][self.valid_metric]) if self.ok else None

    def epochs(self) -> list[dict]:
        """Per-epoch records with epochs counted from 1 (as a study's trials report them)."""
        return [{**h, "epoch": int(h["epoch"]) + 1} for h in (self.metrics or {}).get("history") or []]

    def intermediate_values(self) -> dict[int, float]:
        key = f"valid_{self.valid_metric}"
        return {h["epoch"]: float(h[key]) for h in self.epochs() if h.get(key) is not None}

    def test_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in (self.metrics or {}).get("test", {}).items()}

    def artifacts(self) -> dict[str, str]:
        """The store's artifact ids the run used: train_artifact, mine_artifact, regenerate_artifact."""
        return {k: str(v) for k, v in (self.metrics or {}).items() if k.endswith("_artifact") and v}

    def tags(self) -> dict[str, str]:
        """What a tracker tags the cell's run with: its params, name, folder, outcome and artifact ids."""
        return {**{k: str(v) for k, v in self.params.items()}, "cell": self.name, "run_dir": str(self.run_dir),
                "status": "finished" if self.ok else "failed", **self.artifacts()}

    def config(self) -> dict:
        """The run's resolved config (metrics.json's `config`) with the grid's names for the cell."""
        m = self.metrics or {}
        return {**(m.get("config") or {}), **self.params, "preset": m.get("preset")}


def tuned_runs(out: Path, meta: dict) -> list[GridRun]:
    """The `tuned` retrains (a grid with --space): one per dataset, backbone and seed."""
    if TUNED not in meta.get("variants", []):
        return []
    return [GridRun(d, b, TUNED, int(s), meta.get("data", {}).get(d, d))
            for s in meta["seeds"] for b in meta["backbones"] for d in meta["datasets"]]


def ended_cells(out: str | Path) -> list[Cell]:
    """Every cell of the grid in `out` that finished or failed, in the grid's start order."""
    out = Path(out)
    meta = json.loads((out / "grid.json").read_text())
    runs = planned_runs(out) + tuned_runs(out, meta)
    records = {**read_json(out / f"status-{TUNED}.json").get("runs", {}),
               **read_json(out / STATUS_NAME).get("runs", {})}
    cells = []
    for r in runs:
        run_dir, rec = r.dir(out), records.get(r.label, {})
        times = {"started": rec.get("started"), "ended": rec.get("ended")}
        if finished(run_dir):
            cells.append(Cell(r, run_dir.resolve(), json.loads((run_dir / "metrics.json").read_text()), **times))
        elif rec.get("state") == "failed":
            cells.append(Cell(r, run_dir.resolve(), None, rec.get("error") or "failed", **times))
    return cells
