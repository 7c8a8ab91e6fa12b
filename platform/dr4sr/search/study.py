"""A study: one search space run as a Ray Tune experiment (grid or Optuna TPE, optional ASHA).

Folder layout (`--out DIR`):
  DIR/study.json           the space, the settings, the objective
  DIR/tune/                Tune's experiment (restore state, per-trial TensorBoard event files)
  DIR/trials/<trial id>/   trial.json, progress.jsonl, run/ (metrics.json, user_metrics.parquet)
  DIR/results.csv          one row per trial; DIR/best.json; DIR/sweep_<key>.png for grid sweeps
Trials share one artifact store, so trials that differ only in a late stage reuse the earlier ones.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError
from dr4sr.pipeline import SMOKE_REGEN
from dr4sr.search.space import SearchSpace
from dr4sr.search.trial import STUDY_KEY, run_trial

EXPERIMENT = "tune"
SMOKE_EPOCHS = 4  # enough for ASHA rungs at 1, 2, 4 epochs
SMOKE_TRIALS = 4
SMOKE_USERS = 300


@dataclasses.dataclass
class StudyOptions:
    out: Path
    store: str | None = None  # artifact store shared by the trials (default $DR4SR_ARTIFACTS or ./artifacts)
    data_dir: str | None = None
    smoke_test: bool = False
    resume: bool = False
    cpus_per_trial: float = 1.0  # single-worker trials train inside the trial
    gpus_per_trial: float = 0.0  # fractional GPUs pack small trials onto one GPU
    driver_resource: str | None = None  # multi-worker trials: their driver takes 0.01 of this (cluster head)
    max_concurrent: int | None = None  # overrides search.max_concurrent


def smoke_space(space: SearchSpace, dataset_path: str) -> SearchSpace:
    """A few trials of a few epochs on a user sample, tiny stage budgets: checks the path in minutes."""
    fixed = deep_merge(space.fixed, deep_merge(SMOKE_REGEN, {"train": {"max_epochs": SMOKE_EPOCHS,
                                                                        "patience": SMOKE_EPOCHS}}))
    search = dataclasses.replace(space.search, num_trials=min(space.search.num_trials, SMOKE_TRIALS))
    if search.asha is not None:
        search.asha = dataclasses.replace(search.asha, max_t=SMOKE_EPOCHS, grace_period=1)
    dims = tuple(dataclasses.replace(d, values=d.values[:3]) if d.kind == "grid" else d for d in space.dimensions)
    return dataclasses.replace(space, dataset=dataset_path, fixed=fixed, search=search, dimensions=dims)


def constants(space: SearchSpace, opts: StudyOptions) -> dict:
    store = str(Path(opts.store).resolve()) if opts.store else None
    return {"run": {"dataset": space.dataset, "backbone": space.backbone, "variant": space.variant},
            "fixed": space.fixed, "preset": space.preset, "composition": space.composition,
            "workers": space.workers,
            "store": store, "data_dir": opts.data_dir, "out": str(Path(opts.out).resolve())}


def optuna_distributions(space: SearchSpace) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for d in space.dimensions:
        if d.kind == "choice":
            out[d.key] = CategoricalDistribution(list(d.values))
        elif d.kind == "int":
            out[d.key] = IntDistribution(int(d.low), int(d.high), step=d.step)
        else:
            out[d.key] = FloatDistribution(float(d.low), float(d.high), log=d.kind == "loguniform")
    return out


def max_epochs(space: SearchSpace) -> int:
    from dr4sr.train.runner import build_run_config

    target = {k: v for k, v in space.fixed.items() if k in ("data", "model", "train")}
    return build_run_config(space.backbone, space.dataset, target).train.max_epochs


def asha_max_t(space: SearchSpace) -> int:
    """ASHA's top rung: search.asha.max_t, never beyond the trials' train.max_epochs (0 = that)."""
    return min(space.search.asha.max_t or max_epochs(space), max_epochs(space))


def trainable(space: SearchSpace, opts: StudyOptions):
    from ray import tune

    if space.workers > 1:  # the trial is a Ray Train driver: its workers hold the CPUs/GPUs
        res = {opts.driver_resource: 0.01} if opts.driver_resource else {"CPU": 0.01}
    else:
        res = {"CPU": opts.cpus_per_trial, **({"GPU": opts.gpus_per_trial} if opts.gpus_per_trial else {})}
    return tune.with_resources(run_trial, res)


def trial_dirname(trial) -> str:
    """Short trial folders (the default name spells out the whole config): the trial id."""
    return trial.trial_id


def build_tuner(space: SearchSpace, opts: StudyOptions, callbacks=()):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    s = space.search
    scheduler = None
    if s.asha is not None:
        scheduler = ASHAScheduler(time_attr="epoch", max_t=asha_max_t(space),
                                  grace_period=s.asha.grace_period, reduction_factor=s.asha.reduction_factor,
                                  stop_last_trials=False)  # top-rung trials end on their own, cleanly
    param_space: dict = {STUDY_KEY: constants(space, opts)}
    search_alg, num_samples = None, 1
    if s.kind == "grid":
        param_space.update({d.key: tune.grid_search(list(d.values)) for d in space.dimensions})
    else:
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(optuna_distributions(space), metric=space.objective, mode="max", seed=s.seed)
        num_samples = s.num_trials
    tune_config = tune.TuneConfig(metric=space.objective, mode="max", num_samples=num_samples,
                                  max_concurrent_trials=opts.max_concurrent or s.max_concurrent,
                                  search_alg=search_alg, scheduler=scheduler,
                                  trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(name=EXPERIMENT, storage_path=str(Path(opts.out).resolve()),
                                failure_config=tune.FailureConfig(max_failures=1), callbacks=list(callbacks))
    return tune.Tuner(trainable(space, opts), param_space=param_space, tune_config=tune_config,
                      run_config=run_config)


def study_info(space: SearchSpace, opts: StudyOptions) -> dict:
    return {"space": str(space.path), "name": space.name, "objective": space.objective, "kind": space.search.kind,
            "dimensions": [d.key for d in space.dimensions], "dataset": space.dataset, "backbone": space.backbone,
            "variant": space.variant, "smoke_test": opts.smoke_test,
            "asha": {**dataclasses.asdict(space.search.asha), "max_t": asha_max_t(space)} if space.search.asha else None,
            "trials_planned": len(space.grid_points()) if space.search.kind == "grid" else space.search.num_trials}


def check_fits(space: SearchSpace, opts: StudyOptions) -> None:
    """Multi-worker trials need their workers' CPUs (1 each) beside the driver's 0.01: on a fixed local
    Ray that has fewer, the Train run would wait forever (RAY_TUNE_NOTES §3), so stop here instead."""
    import os

    import ray

    if space.workers <= 1 or os.environ.get("RAY_ADDRESS") or opts.driver_resource:
        return  # a cluster may autoscale
    cpus = ray.cluster_resources().get("CPU", 0)
    if space.workers + 0.01 > cpus:
        raise ConfigError(f"{space.path}: workers: {space.workers} Ray Train workers (1 CPU each) plus the "
                          f"trial's driver do not fit this Ray's {cpus:g} CPUs; use workers: 1 here")


def run_study(space: SearchSpace, opts: StudyOptions) -> dict:
    """Run (or `resume`) the study; returns the summary that `dr4sr.search.results` writes."""
    from ray import tune

    from dr4sr.search.progress import StudyProgress
    from dr4sr.search.results import write_study_report
    from dr4sr.train.ray_train import ensure_ray

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    exp = out / EXPERIMENT
    info = study_info(space, opts)
    ensure_ray(dashboard=True)  # Train's placement-group cleaner needs the State API (RAY_TUNE_NOTES §3)
    check_fits(space, opts)
    started = time.time()
    if opts.resume and tune.Tuner.can_restore(str(exp.resolve())):
        print(f"[study] resuming {exp}: finished trials are kept, unfinished ones continue", flush=True)
        tuner = tune.Tuner.restore(str(exp.resolve()), trainable=trainable(space, opts), resume_errored=True)
    else:
        if exp.exists() and any(exp.iterdir()):
            hint = ("it has no restorable state yet (killed before the first snapshot): delete it"
                    if opts.resume else "pass --resume to continue it")
            raise ConfigError(f"{exp} already holds a study; {hint}, or give a new --out")
        (out / "study.json").write_text(json.dumps(info, indent=2, default=str))
        tuner = build_tuner(space, opts, [StudyProgress(info["trials_planned"])])
    tuner.fit()
    summary = write_study_report(out)
    summary["wall_seconds"] = round(time.time() - started, 1)
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
