"""Experiment tracking (`--track mlflow|wandb`) of a study's trials and a grid's cells: the names they share.

One run per trial (cell), in an experiment (project) named after the stored Optuna study: params are the
run's config as flat `section.key` names, metrics are the per-epoch validation and loss (step = epoch)
and, at the end, the best-epoch validation and the test metrics. MLflow's store is $MLFLOW_TRACKING_URI
when set, else SQLite in the study folder (`mlflow ui --backend-store-uri ...`). The loggers live in
dr4sr.search.mlflow_tracking and dr4sr.search.wandb_tracking (imported only when used: both are slow
to import).
"""
from __future__ import annotations

import os
from pathlib import Path

TRACKERS = ("mlflow", "wandb")
DB_FILE = "mlflow.db"


def tracking_uri(out: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out).resolve() / DB_FILE}"


def metric_name(key: str) -> str:
    """MLflow names allow no '@': valid_ndcg@20 -> valid_ndcg_at_20."""
    return key.replace("@", "_at_")


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def epoch_metrics(record: dict) -> dict[str, float]:
    """An epoch's loss and validation metrics (names as the run writes them)."""
    return {k: float(v) for k, v in record.items()
            if (k == "loss" or k.startswith("valid_")) and isinstance(v, (int, float))}


def final_metrics(m: dict) -> dict[str, float]:
    """A finished run's metrics.json -> its best epoch's validation, its test metrics and its epochs."""
    out = {**{f"best_valid_{k}": float(v) for k, v in m["valid"].items()},
           **{f"test_{k}": float(v) for k, v in m["test"].items()}}
    if "epochs" in m:
        out["epochs"] = float(m["epochs"])
    return out


def run_params(config: dict) -> dict:
    """The trial's `dr4sr run`: dataset/backbone/variant/composition and every set key, point included."""
    from dr4sr.search.trial import trial_request

    req, _ = trial_request(config)
    return {"dataset": req.dataset, "backbone": req.backbone, "variant": req.variant,
            "composition": req.composition, "workers": req.workers, "preset": req.preset,
            **flat(req.overrides)}


def check_tracker(track: str | None) -> str | None:
    if track and track not in TRACKERS:
        from dr4sr.errors import ConfigError

        raise ConfigError(f"--track must be one of {TRACKERS}, got {track!r}")
    return track


def tracking_callbacks(track: str | None, out: str | Path, experiment_name: str, objective: str) -> list:
    if not check_tracker(track):
        return []
    if track == "wandb":
        from dr4sr.search.wandb_tracking import StudyWandbLogger

        return [StudyWandbLogger(out, experiment_name)]
    from dr4sr.search.mlflow_tracking import StudyMlflowLogger

    return [StudyMlflowLogger(out, experiment_name, objective)]
