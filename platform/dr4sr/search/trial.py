"""One Tune trial = one `dr4sr run` (`dr4sr.pipeline.run_variant`), reporting validation every epoch.

The trial writes what a report needs into `<study>/trials/<trial id>/`: `trial.json` (its point and
settings), `progress.jsonl` (one line per epoch, what ASHA saw) and, when the run finishes, the run's
`metrics.json` + `user_metrics.parquet`. So `dr4sr report` reads a study without Ray.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from dr4sr.pipeline import RunRequest, run_variant
from dr4sr.search.results import ENDED
from dr4sr.search.space import apply_point
from dr4sr.storage.workcopy import OutFolder

STUDY_KEY = "_study"  # the constants every trial gets in its config (the rest is the point)
FINISHED = "run_finished"  # in the final result only: the run ended on its own (not stopped by ASHA)


class TuneReporter:
    """`on_epoch` hook: a per-epoch record -> a Tune result with `epoch` (epochs done, ASHA's time_attr)
    and the validation metrics. Multi-worker runs call it in the Ray Train controller, so it forwards
    through Tune's Train bridge there; single-worker runs call it in the trial itself."""

    def __init__(self, progress_path: Path, distributed: bool):
        self.progress_path = str(progress_path)
        self._bridge = None
        if distributed:
            from ray.tune.integration.ray_train import TuneReportCallback

            self._bridge = TuneReportCallback()

    def __call__(self, record: dict) -> None:
        result = {"epoch": int(record["epoch"]) + 1, "loss": float(record["loss"]),
                  **{k: float(v) for k, v in record.items() if k.startswith("valid_")}}
        with open(self.progress_path, "a") as f:
            f.write(json.dumps(result) + "\n")
        if self._bridge is not None:
            self._bridge.after_report(None, [result], None)
        else:
            from ray import tune

            tune.report(result)


def trial_request(config: dict) -> tuple[RunRequest, dict]:
    study = config[STUDY_KEY]
    point = {k: v for k, v in config.items() if k != STUDY_KEY}
    run, overrides = apply_point(study["run"], study["fixed"], point)
    req = RunRequest(run["dataset"], run["backbone"], run["variant"], study["composition"], overrides,
                     study.get("data_dir"), study["workers"], False, False, study.get("store"), study.get("preset"))
    return req, point


def run_trial(config: dict) -> None:
    """The Tune trainable (module level: the searcher state and tuner.pkl pickle it by reference)."""
    from ray import tune

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    study = config[STUDY_KEY]
    req, point = trial_request(config)
    trial_id = tune.get_context().get_trial_id()
    folder = OutFolder(study["out"])  # on s3://, this node's working copy of the study folder
    folder.pull("data")  # a smoke test's data sample, when this trial runs on another node
    rel = f"trials/{trial_id}"
    out = folder.local / rel
    out.mkdir(parents=True, exist_ok=True)

    def upload() -> None:  # this trial's folder is its own: the bucket gets it as it is now, stale files removed
        folder.push(rel, delete=True)

    try:
        _run(req, point, trial_id, out, upload)
    except BaseException:
        upload()
        raise


def _run(req: RunRequest, point: dict, trial_id: str, out: Path, upload) -> None:
    from ray import tune

    (out / "trial.json").write_text(json.dumps({"trial_id": trial_id, "point": point, "dataset": req.dataset,
                                                "backbone": req.backbone, "variant": req.variant}, indent=2))
    progress = out / "progress.jsonl"
    progress.unlink(missing_ok=True)  # a restarted trial (no Tune checkpoint) trains again from epoch 1
    (out / ENDED).unlink(missing_ok=True)  # a resumed errored trial is running again
    metrics = run_variant(req, out / "run", on_epoch=TuneReporter(progress, req.workers > 1),
                          log=lambda msg: print(f"[{trial_id}] {msg}", flush=True))
    # the final result: the run's best-epoch validation (whose weights were tested); also sent when the
    # train artifact was reused and no epoch was reported. FINISHED marks it: Tune sets its own `done`
    # on the result at which ASHA stops a trial too. The folder goes up first: Tune may end the trial's
    # process at this final result
    upload()
    tune.report({"epoch": int(metrics["epochs"]), "done": 1, FINISHED: 1,
                 **{f"valid_{k}": float(v) for k, v in metrics["valid"].items()}})
