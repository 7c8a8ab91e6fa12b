"""`--track mlflow`: MLflow runs for a study's trials (Ray's MLflowLoggerCallback) and a grid's cells."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback

from dr4sr.search.grid_cells import Cell
from dr4sr.search.tracking import epoch_metrics, final_metrics, flat, metric_name, run_params, tracking_uri
from dr4sr.search.trial import FINISHED


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
        metrics = {metric_name(k): v for k, v in epoch_metrics(result).items()}
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
            final = {metric_name(k): v for k, v in final_metrics(m).items()}
            self.mlflow_util.log_metrics(run_id=run_id, metrics_to_log=final, step=int(m["epochs"]))
        done = bool((trial.last_result or {}).get(FINISHED))
        status = "error" if failed else "finished" if done else "stopped by ASHA"
        client = self.mlflow_util._get_client()  # no public tag setter on Ray's util
        client.set_tag(run_id, "status", status)
        client.set_tag(run_id, "run_dir", str(run_dir))
        super().log_trial_end(trial, failed)
        del self._trial_runs[trial]


class MlflowCells:
    """One MLflow run per cell, in the experiment named after the grid's study."""

    def __init__(self, out: Path, experiment: str):
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri(out))
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment)

    def logged(self) -> dict[str, tuple[str, str]]:
        """Cell name -> (run id, status) of the runs logged so far."""
        out, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token)
            out.update({r.data.tags["cell"]: (r.info.run_id, r.info.status) for r in page if "cell" in r.data.tags})
            token = page.token
            if not token:
                return out

    def log(self, cells: list[Cell]) -> int:
        logged = self.logged()
        n = 0
        for cell in cells:
            old = logged.get(cell.name)
            if old and (old[1] == "FINISHED" or not cell.ok):
                continue
            if old:  # it failed before and finished now: one run per cell
                self.client.delete_run(old[0])
            self.log_cell(cell)
            n += 1
        return n

    def log_cell(self, cell: Cell) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=cell.name)
        rid, now = run.info.run_id, int(time.time() * 1000)
        params = [Param(metric_name(k), str(v)[:6000]) for k, v in flat(cell.config()).items()]
        tags = [RunTag(k, v) for k, v in cell.tags().items()] + ([RunTag("error", cell.error)] if cell.error else [])
        metrics = [Metric(metric_name(k), v, now, h["epoch"])
                   for h in cell.epochs() for k, v in epoch_metrics(h).items()]
        if cell.ok:
            step = int(cell.metrics.get("epochs", 0))
            metrics += [Metric(metric_name(k), v, now, step) for k, v in final_metrics(cell.metrics).items()]
        for i in range(0, max(len(params), len(tags)), 100):  # log_batch takes 100 params/tags, 1000 metrics
            self.client.log_batch(rid, params=params[i:i + 100], tags=tags[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(rid, metrics=metrics[i:i + 1000])
        self.client.set_terminated(rid, "FINISHED" if cell.ok else "FAILED")
