"""A study: one search space run as a Ray Tune experiment (grid or Optuna TPE, optional ASHA).

Folder layout (`--out DIR`):
  DIR/study.json           the space, the settings, the objective, where the Optuna study is stored
  DIR/optuna.db            the Optuna study (unless --storage/search.storage names another database)
  DIR/tune/                Tune's experiment (restore state, per-trial TensorBoard event files);
                           DIR/tune-2/, ... : the experiments that extended a finished TPE study
  DIR/trials/<trial id>/   trial.json, progress.jsonl, run/ (metrics.json, user_metrics.parquet)
  DIR/results.csv          one row per trial; DIR/best.json; DIR/sweep_<key>.png for grid sweeps;
  DIR/importance.csv       parameter importance from the stored study; DIR/mlflow.db with --track mlflow,
  DIR/wandb/               with --track wandb (offline runs)
Trials share one artifact store, so trials that differ only in a late stage reuse the earlier ones.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError, Terminated
from dr4sr.search.interrupts import (
    RESUME_HINT,
    GracefulStop,
    StudyInterrupted,
    StudyTerminated,
    env_vars,
    record_interrupt,
)
from dr4sr.search.optuna_db import StudyDB, keep_db_info, resolve_db
from dr4sr.search.space import SearchSpace
from dr4sr.search.study_folder import EXPERIMENT, current_experiment, experiments, extension
from dr4sr.search.trial import STUDY_KEY, run_trial
from dr4sr.smoke import SMOKE_REGEN, SMOKE_TRAIN
from dr4sr.storage import resolve_store

SMOKE_EPOCHS = 4  # enough for ASHA rungs at 1, 2, 4 epochs
SMOKE_TRIALS = 4  # Optuna spaces; grid spaces keep SMOKE_GRID_VALUES values of each key
SMOKE_GRID_VALUES = 3
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
    storage: str | None = None  # Optuna storage URL; overrides search.storage (None: the folder's SQLite)
    track: str | None = None  # experiment tracker for the trials: mlflow or wandb
    out_uri: str | None = None  # --out on s3://: `out` is then this node's working copy of it
    num_trials: int | None = None  # an Optuna study's trials; on --resume, more than before extends it


def out_folder(opts: StudyOptions):
    """The study folder as an OutFolder (its pull/push do nothing for a local folder)."""
    from dr4sr.storage.workcopy import OutFolder

    return OutFolder(opts.out_uri or opts.out)


def tune_storage(opts: StudyOptions) -> tuple[str, object]:
    """Tune's (storage_path, storage_filesystem): the study folder itself, or on s3:// the bucket, written
    directly by Tune through a pyarrow S3FileSystem that knows the endpoint (pyarrow ignores
    AWS_ENDPOINT_URL); with a custom filesystem the path goes without its scheme."""
    if not opts.out_uri:
        return str(Path(opts.out).resolve()), None
    root = out_folder(opts).remote
    return f"{root.bucket}/{root.prefix}".rstrip("/"), root.fs


def driver_files(rel: str) -> bool:
    """The files the study's driver writes itself (study.json, optuna.db, the reports), as opposed to the
    trials' folders (each trial pushes its own) and Tune's experiment (Tune writes it to the bucket)."""
    return "/" not in rel


def smoke_space(space: SearchSpace, dataset_path: str) -> SearchSpace:
    """A few trials of a few epochs on a user sample, tiny stage budgets: checks the path in minutes."""
    target = {**{k: v for k, v in SMOKE_TRAIN.items() if k != "train"},  # e.g. DR4SR+'s short warm-up
              "train": {"max_epochs": SMOKE_EPOCHS, "patience": SMOKE_EPOCHS}}
    fixed = deep_merge(space.fixed, deep_merge(SMOKE_REGEN, target))
    search = dataclasses.replace(space.search, num_trials=min(space.search.num_trials, SMOKE_TRIALS))
    if search.asha is not None:
        search.asha = dataclasses.replace(search.asha, max_t=SMOKE_EPOCHS, grace_period=1)
    dims = tuple(dataclasses.replace(d, values=d.values[:SMOKE_GRID_VALUES]) if d.kind == "grid" else d
                 for d in space.dimensions)
    return dataclasses.replace(space, dataset=dataset_path, fixed=fixed, search=search, dimensions=dims)


def constants(space: SearchSpace, opts: StudyOptions) -> dict:
    store = resolve_store(opts.store)  # an s3:// store as given, a folder made absolute
    return {"run": {"dataset": space.dataset, "backbone": space.backbone, "variant": space.variant},
            "fixed": space.fixed, "preset": space.preset, "composition": space.composition,
            "workers": space.workers,
            "store": store, "data_dir": opts.data_dir, "out": opts.out_uri or str(Path(opts.out).resolve())}


def optuna_distributions(space: SearchSpace) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for d in space.dimensions:
        if d.kind in ("choice", "grid"):
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


def verbose() -> bool:
    from dr4sr.train.ray_train import verbose as ray_verbose

    return ray_verbose()


def tune_verbosity() -> int | None:
    """Tune's own console reporter (trial tables, a TensorBoard hint into Ray's temp folder) only with
    `dr4sr --verbose`; StudyProgress prints the study's lines."""
    return None if verbose() else 0


def sync_callbacks(opts: StudyOptions) -> list:
    """A study on s3://: after every trial, its folder comes down and the driver's files go up."""
    if not opts.out_uri:
        return []
    from dr4sr.search.recording import OutSync

    return [OutSync(opts.out_uri)]


def build_tuner(space: SearchSpace, opts: StudyOptions, callbacks=(), experiment: str = EXPERIMENT):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from dr4sr.search.recording import record_callbacks

    s = space.search
    db = resolve_db(opts.out, space.name, opts.storage or space.search.storage, opts.resume)
    db.create(resume=True, quiet=not verbose())  # run_study refused a new study whose name is taken
    callbacks = [*callbacks, *record_callbacks(space, db, opts.track, Path(opts.out)), *sync_callbacks(opts)]
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
        from dr4sr.search.recording import StoredOptunaSearch

        search_alg = StoredOptunaSearch(optuna_distributions(space), db, space.objective, s.seed, s.warm_start)
        num_samples = s.num_trials
    tune_config = tune.TuneConfig(metric=space.objective, mode="max", num_samples=num_samples,
                                  max_concurrent_trials=opts.max_concurrent or s.max_concurrent,
                                  search_alg=search_alg, scheduler=scheduler,
                                  trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname)
    storage_path, storage_fs = tune_storage(opts)
    run_config = tune.RunConfig(name=experiment, storage_path=storage_path, storage_filesystem=storage_fs,
                                failure_config=tune.FailureConfig(max_failures=1), callbacks=list(callbacks),
                                verbose=tune_verbosity())
    return tune.Tuner(trainable(space, opts), param_space=param_space, tune_config=tune_config,
                      run_config=run_config)


def study_info(space: SearchSpace, opts: StudyOptions, db: StudyDB) -> dict:
    return {"optuna": {"storage": db.storage, "study_name": db.name}, "track": opts.track, "space": str(space.path),
            "name": space.name, "objective": space.objective, "kind": space.search.kind,
            "dimensions": [d.key for d in space.dimensions], "dataset": space.dataset, "backbone": space.backbone,
            "variant": space.variant, "smoke_test": opts.smoke_test, "max_epochs": max_epochs(space),
            # what every trial shared: `dr4sr report --retrain-best` rebuilds the runs from it
            "run_constants": {k: v for k, v in constants(space, opts).items() if k != "out"},
            "trial_markers": True,  # trials/<id>/ended.json tells an ASHA stop from an interrupted trial
            "asha": ({**dataclasses.asdict(space.search.asha), "max_t": asha_max_t(space)}
                     if space.search.asha else None),
            "trials_planned": len(space.grid_points()) if space.search.kind == "grid" else space.search.num_trials}


def check_fits(space: SearchSpace, opts: StudyOptions) -> None:
    """Multi-worker trials need their workers' CPUs (1 each) beside the driver's 0.01: on a fixed local
    Ray that has fewer, the Train run would wait forever, so stop here instead."""
    import os

    import ray

    if space.workers <= 1 or os.environ.get("RAY_ADDRESS") or opts.driver_resource:
        return  # a cluster may autoscale
    cpus = ray.cluster_resources().get("CPU", 0)
    if space.workers + 0.01 > cpus:
        raise ConfigError(f"{space.path}: workers: {space.workers} Ray Train workers (1 CPU each) plus the "
                          f"trial's driver do not fit this Ray's {cpus:g} CPUs; use workers: 1 here")


def announce(out: Path, db: StudyDB | None = None, track: str | None = None, out_uri: str | None = None) -> None:
    """Where to watch the study: TensorBoard, the Optuna dashboard, MLflow and, for a local Ray, Ray's
    dashboard."""
    name = current_experiment(out).name
    logdir = f"{out_uri}/{name}" if out_uri else out.resolve() / name  # Tune's events are there
    print(f"[study] TensorBoard: tensorboard --logdir {logdir}", flush=True)
    if db is not None:
        print(f"[study] Optuna study {db.name!r} in {db.url}: dr4sr dashboard {out}", flush=True)
    if track == "mlflow":
        from dr4sr.search.tracking import tracking_uri

        print(f"[study] MLflow: mlflow ui --backend-store-uri {tracking_uri(out)}", flush=True)
    elif track == "wandb":
        from dr4sr.search.wandb_tracking import wandb_dir, wandb_mode

        print(f"[study] W&B ({wandb_mode()}): runs under {wandb_dir(out) / 'wandb'}", flush=True)
    try:
        from ray._private.worker import get_dashboard_url  # no public accessor in Ray 2.60

        url = get_dashboard_url()
    except Exception:
        url = None
    if url and not os.environ.get("RAY_ADDRESS"):
        token = " (it asks for the token that `ray get-auth-token` prints)" \
            if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else ""
        print(f"[study] Ray dashboard: http://{url.removeprefix('http://')}{token}", flush=True)


def fresh_callbacks(tuner, callbacks: list) -> None:
    """A restored Tuner brings back the run config pickled at the start; give it this version's
    progress callback and this run's verbosity (no public setter in Ray 2.60)."""
    local = getattr(tuner, "_local_tuner", None)
    if local is not None and hasattr(local, "get_run_config"):
        run_config = local.get_run_config()
        run_config.callbacks = list(callbacks)
        run_config.verbose = tune_verbosity()


def run_study(space: SearchSpace, opts: StudyOptions) -> dict:
    """Run (or `resume`) the study; returns the summary that `dr4sr.search.results` writes. On SIGINT or
    SIGTERM it writes the partial results, then raises StudyInterrupted (StudyTerminated)."""
    from dr4sr.search.progress import StudyProgress
    from dr4sr.search.results import write_study_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    exp = current_experiment(out)
    extra = extension(out, space, opts.num_trials) if opts.resume else 0
    if extra and opts.out_uri:  # its experiments live in the bucket, which experiments() does not list
        raise ConfigError(f"{opts.out_uri}: extending a finished study on s3:// is not supported; copy the "
                          "study to a local --out (or start a new study with --storage on the same database)")
    if extra:  # a new experiment beside the finished ones; the stored study keeps their trials
        exp = out / f"{EXPERIMENT}-{len(experiments(out)) + 1}"
        s = space.search
        space = dataclasses.replace(space, search=dataclasses.replace(
            s, num_trials=extra, warm_start=[], seed=s.seed + len(experiments(out))))
    db = resolve_db(opts.out, space.name, opts.storage or space.search.storage, opts.resume)
    if opts.resume and not opts.track and (out / "study.json").is_file():  # keep tracking what it tracked
        opts = dataclasses.replace(opts, track=json.loads((out / "study.json").read_text()).get("track"))
    opts = dataclasses.replace(opts, storage=db.storage)
    info = study_info(space, opts, db)
    started = time.time()
    with GracefulStop() as stop:
        try:
            from ray import tune

            from dr4sr.train.ray_train import ensure_ray

            storage_path, storage_fs = tune_storage(opts)
            exp_path = f"{storage_path}/{exp.name}"
            restore = opts.resume and not extra and tune.Tuner.can_restore(exp_path, storage_filesystem=storage_fs)
            if extra:
                db.create(resume=True, quiet=not verbose())
                keep_db_info(out, info)
                info = json.loads((out / "study.json").read_text())
                info["trials_planned"] = int(info["trials_planned"]) + extra
                (out / "study.json").write_text(json.dumps(info, indent=2, default=str))
                print(f"[study] extending the finished study by {extra} trials to {info['trials_planned']} "
                      f"(new experiment {exp.name}/)", flush=True)
            elif not restore:
                if exp.exists() and any(exp.iterdir()):
                    hint = ("it has no restorable state yet (killed before the first snapshot): delete it"
                            if opts.resume else "pass --resume to continue it")
                    raise ConfigError(f"{exp} already holds a study; {hint}, or give a new --out")
                db.create(resume=opts.resume, quiet=not verbose())  # a taken name: stop before study.json
                (out / "study.json").write_text(json.dumps(info, indent=2, default=str))
                out_folder(opts).push("study.json")  # a resume anywhere needs it, even after a SIGKILL
            else:
                db.create(resume=True, quiet=not verbose())
                keep_db_info(out, info)
            try:
                with stop.kept_during_ray_init():
                    ensure_ray(dashboard=True)  # Train's placement-group cleaner needs the dashboard's State API
            except SystemExit as exc:  # a SIGTERM handler of Ray's (not ours) called sys.exit(15)
                if exc.code != signal.SIGTERM:
                    raise
                raise Terminated() from None
            stop.rearm()
            stop.check()
            check_fits(space, opts)
            announce(out, db, opts.track, opts.out_uri)
            progress = StudyProgress(extra or info["trials_planned"], space.objective, str(out.resolve()))
            if restore:
                print(f"[study] resuming {opts.out_uri + '/' + EXPERIMENT if opts.out_uri else exp}: finished "
                      f"trials are kept, unfinished ones continue", flush=True)
                tuner = tune.Tuner.restore(exp_path, trainable=trainable(space, opts), resume_errored=True,
                                           storage_filesystem=storage_fs)
                from dr4sr.search.recording import record_callbacks

                fresh_callbacks(tuner, [progress, *record_callbacks(space, db, opts.track, out),
                                        *sync_callbacks(opts)])
            else:
                tuner = build_tuner(space, opts, [progress], exp.name)
            stop.check()
            # Tune's new console engine prints its config box and temp-folder TensorBoard hint even at
            # verbose=0; the legacy engine at verbose=0 prints nothing
            with env_vars(RAY_AIR_NEW_OUTPUT=None if verbose() else "0"):
                tuner.fit()
        except KeyboardInterrupt as exc:  # before Tune's loop took over, or a second signal
            stop.signum = stop.signum or (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    cls = StudyTerminated if stop.signum == signal.SIGTERM else StudyInterrupted
    what = "interrupted (SIGTERM)" if stop.signum == signal.SIGTERM else "interrupted"
    if stop.signum is not None and not (out / "study.json").is_file():  # stopped before it began
        raise cls(f"{what}: 0 of {info['trials_planned']} trials finished; rerun the same command", {})
    record_interrupt(out, stop.signum)
    if stop.signum is None and (out / "study.json").is_file():
        from dr4sr.search.recording import close_stale_trials

        close_stale_trials(db)
    folder = out_folder(opts)
    folder.push(skip=lambda rel: not driver_files(rel))
    folder.pull(skip=driver_files)  # trials from other nodes, Tune's records (error files)
    summary = write_study_report(out)
    summary["wall_seconds"] = round(time.time() - started, 1)
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=str))
    folder.push(skip=lambda rel: rel.startswith(EXPERIMENT + "/"))  # Tune wrote its own to the bucket
    if stop.signum is not None:
        raise cls(f"{what}: {summary['done']} of {summary['planned']} trials finished; {RESUME_HINT}", summary)
    return summary
