"""Experiment tracking of a study's trials: `dr4sr tune --track mlflow` (Ray's MLflowLoggerCallback).

One MLflow run per trial, in an experiment named after the stored Optuna study: params are the trial's
requested `dr4sr run` config as flat `section.key` names, metrics are the per-epoch validation and loss
(step = epoch) and, at the end, the best-epoch validation and the test metrics. The store is
$MLFLOW_TRACKING_URI when set, else SQLite in the study folder (`mlflow ui --backend-store-uri ...`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback

from dr4sr.search.trial import FINISHED

TRACKERS = ("mlflow",)
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


def run_params(config: dict) -> dict:
    """The trial's `dr4sr run`: dataset/backbone/variant/composition and every set key, point included."""
    from dr4sr.search.trial import trial_request

    req, _ = trial_request(config)
    return {"dataset": req.dataset, "backbone": req.backbone, "variant": req.variant,
            "composition": req.composition, "workers": req.workers, "preset": req.preset,
            **flat(req.overrides)}


class StudyMlflowLogger(MLflowLoggerCallback):
    """Ray's MLflow logger with dr4sr's names: run config instead of Tune's raw config (which holds the
    study's constants), epochs as steps, and the trial's outcome and folders as tags."""

    def __init__(self, out: str | Path, experiment_name: str, objective: str):
        super().__init__(tracking_uri=tracking_uri(out), experiment_name=experiment_name,
                         tags={"study_folder": str(Path(out).resolve())})
        self.out, self.objective = str(Path(out).resolve()), objective

    def log_trial_start(self, trial):
        if trial in self._trial_runs:
            return
        tags = {**self.tags, "trial_name": str(trial), "tune_trial_id": trial.trial_id,
                "trial_dir": str(Path(self.out) / "trials" / trial.trial_id)}
        run = self.mlflow_util.start_run(tags=tags, run_name=str(trial))
        self._trial_runs[trial] = run.info.run_id
        self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=run_params(trial.config))

    def log_trial_result(self, iteration: int, trial, result: dict):
        if result.get(FINISHED) or "epoch" not in result or trial not in self._trial_runs:
            return  # the final result repeats the best epoch: logged at the end under best_* names
        metrics = {metric_name(k): float(v) for k, v in result.items()
                   if (k == "loss" or k.startswith("valid_")) and isinstance(v, (int, float))}
        self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics,
                                     step=int(result["epoch"]))

    def log_trial_end(self, trial, failed: bool = False):
        if trial not in self._trial_runs:
            return
        run_id = self._trial_runs[trial]
        run_dir = Path(self.out) / "trials" / trial.trial_id / "run"
        final = {}
        if (run_dir / "metrics.json").is_file():
            m = json.loads((run_dir / "metrics.json").read_text())
            final = {**{metric_name(f"best_valid_{k}"): float(v) for k, v in m["valid"].items()},
                     **{metric_name(f"test_{k}"): float(v) for k, v in m["test"].items()},
                     "epochs": float(m["epochs"])}
            self.mlflow_util.log_metrics(run_id=run_id, metrics_to_log=final, step=int(m["epochs"]))
        done = bool((trial.last_result or {}).get(FINISHED))
        status = "error" if failed else "finished" if done else "stopped by ASHA"
        client = self.mlflow_util._get_client()  # no public tag setter on Ray's util
        client.set_tag(run_id, "status", status)
        client.set_tag(run_id, "run_dir", str(run_dir))
        super().log_trial_end(trial, failed)
        del self._trial_runs[trial]


def tracking_callbacks(track: str | None, out: str | Path, experiment_name: str, objective: str) -> list:
    if not track:
        return []
    if track not in TRACKERS:
        from dr4sr.errors import ConfigError

        raise ConfigError(f"--track must be one of {TRACKERS}, got {track!r}")
    return [StudyMlflowLogger(out, experiment_name, objective)]
