"""A study: one search space run as a Ray Tune experiment (grid or Optuna TPE, optional ASHA).

Folder layout (`--out DIR`):
  DIR/study.json           the space, the settings, the objective, where the Optuna study is stored
  DIR/optuna.db            the Optuna study (unless --storage/search.storage names another database)
  DIR/tune/                Tune's experiment (restore state, per-trial TensorBoard event files)
  DIR/trials/<trial id>/   trial.json, progress.jsonl, run/ (metrics.json, user_metrics.parquet)
  DIR/results.csv          one row per trial; DIR/best.json; DIR/sweep_<key>.png for grid sweeps;
  DIR/importance.csv       parameter importance from the stored study; DIR/mlflow.db with --track mlflow
Trials share one artifact store, so trials that differ only in a late stage reuse the earlier ones.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError, Terminated
from dr4sr.search.optuna_db import StudyDB, keep_db_info, resolve_db
from dr4sr.search.space import SearchSpace
from dr4sr.search.trial import STUDY_KEY, run_trial
from dr4sr.smoke import SMOKE_REGEN, SMOKE_TRAIN
from dr4sr.storage import resolve_store

EXPERIMENT = "tune"
SMOKE_EPOCHS = 4  # enough for ASHA rungs at 1, 2, 4 epochs
SMOKE_TRIALS = 4  # Optuna spaces; grid spaces keep SMOKE_GRID_VALUES values of each key
SMOKE_GRID_VALUES = 3
SMOKE_USERS = 300
RESUME_HINT = "rerun with --resume to continue"


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
    track: str | None = None  # experiment tracker for the trials: mlflow


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
            "store": store, "data_dir": opts.data_dir, "out": str(Path(opts.out).resolve())}


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


@contextlib.contextmanager
def env_vars(**values: str | None):
    """Set (or with None, leave) environment variables for the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_tuner(space: SearchSpace, opts: StudyOptions, callbacks=()):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from dr4sr.search.recording import record_callbacks

    s = space.search
    db = resolve_db(opts.out, space.name, opts.storage or space.search.storage, opts.resume)
    db.create(resume=True, quiet=not verbose())  # run_study refused a new study whose name is taken
    callbacks = [*callbacks, *record_callbacks(space, db, opts.track, Path(opts.out))]
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

        search_alg = StoredOptunaSearch(optuna_distributions(space), db, space.objective, s.seed)
        num_samples = s.num_trials
    tune_config = tune.TuneConfig(metric=space.objective, mode="max", num_samples=num_samples,
                                  max_concurrent_trials=opts.max_concurrent or s.max_concurrent,
                                  search_alg=search_alg, scheduler=scheduler,
                                  trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(name=EXPERIMENT, storage_path=str(Path(opts.out).resolve()),
                                failure_config=tune.FailureConfig(max_failures=1), callbacks=list(callbacks),
                                verbose=tune_verbosity())
    return tune.Tuner(trainable(space, opts), param_space=param_space, tune_config=tune_config,
                      run_config=run_config)


def study_info(space: SearchSpace, opts: StudyOptions, db: StudyDB) -> dict:
    return {"optuna": {"storage": db.storage, "study_name": db.name}, "track": opts.track, "space": str(space.path),
            "name": space.name, "objective": space.objective, "kind": space.search.kind,
            "dimensions": [d.key for d in space.dimensions], "dataset": space.dataset, "backbone": space.backbone,
            "variant": space.variant, "smoke_test": opts.smoke_test, "max_epochs": max_epochs(space),
            "trial_markers": True,  # trials/<id>/ended.json tells an ASHA stop from an interrupted trial
            "asha": ({**dataclasses.asdict(space.search.asha), "max_t": asha_max_t(space)}
                     if space.search.asha else None),
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


def check_study_folder(out: Path, resume: bool, name: str, smoke_test: bool) -> None:
    """What `--resume` needs, or what a new study must not overwrite; reads files only (no Ray)."""
    info_path, exp = out / "study.json", out / EXPERIMENT
    if resume:
        if not info_path.is_file():
            raise ConfigError(f"{out}: no study to resume (no study.json); run without --resume to start one")
        old = json.loads(info_path.read_text())
        if old.get("name") != name or bool(old.get("smoke_test")) != smoke_test:
            kind = "smoke-test" if old.get("smoke_test") else "full-size"
            raise ConfigError(f"{out}: holds the {kind} study {old.get('name')!r}; resume it with the same "
                              f"--space and {'with' if old.get('smoke_test') else 'without'} --smoke-test")
        if exp.is_dir() and any(exp.iterdir()) and not any(exp.glob("experiment_state-*.json")):
            raise ConfigError(f"{exp} has no restorable state yet (killed before its first snapshot): delete "
                              f"it, or give a new --out")
    elif exp.is_dir() and any(exp.iterdir()):
        raise ConfigError(f"{exp} already holds a study; pass --resume to continue it, or give a new --out")


class StudyInterrupted(KeyboardInterrupt):
    """A study stopped by SIGINT after Tune saved its state; `line` says how far it got."""
    exit_code = 130

    def __init__(self, line: str, summary: dict):
        super().__init__(line)
        self.line, self.summary = line, summary


class StudyTerminated(StudyInterrupted, Terminated):
    exit_code = 143


class GracefulStop:
    """SIGINT and SIGTERM during a study: the first asks Tune to end its loop and save its state (Tune's
    SIGUSR1 handler, the path of its own Ctrl-C handling), a second one stops at once. Tune's SIGINT
    handler stays off, so that SIGTERM (`ray job stop`, kill) stops as cleanly and the signal is known."""

    def __init__(self):
        self.signum: int | None = None
        self._saved: dict = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers; Tune then sets none either
        self._env = env_vars(TUNE_DISABLE_SIGINT_HANDLER="1")
        self._env.__enter__()
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
        self.rearm()
        return self

    def rearm(self) -> None:
        """(Again) after ray.init(), whose C++ core installs a SIGTERM handler that aborts the driver."""
        if self._saved:
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)

    def check(self) -> None:
        """Raise for a signal whose exception was swallowed (raised inside an at-fork hook or a finalizer,
        as happens while ray.init() starts its processes)."""
        if self.signum is not None:
            raise Terminated() if self.signum == signal.SIGTERM else KeyboardInterrupt()

    @contextlib.contextmanager
    def noting_swallowed_exits(self):
        """While ray.init() runs, its own SIGTERM handler calls sys.exit(15); raised inside a finalizer that
        exit is swallowed (only printed): note it as this stop's signal, for `check`."""
        previous = sys.unraisablehook

        def hook(unraisable) -> None:
            if isinstance(unraisable.exc_value, SystemExit) and unraisable.exc_value.code == signal.SIGTERM:
                self.signum = self.signum or signal.SIGTERM
                return
            previous(unraisable)

        sys.unraisablehook = hook
        try:
            yield
        finally:
            sys.unraisablehook = previous

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if first and callable(tune_stop) and tune_stop is not self._saved.get(signal.SIGUSR1):
            tune_stop(signum, frame)  # installed by tuner.fit(): its loop ends after the current step
            return
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def __exit__(self, *exc) -> None:
        if not self._saved:
            return
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        self._env.__exit__(None, None, None)


def announce(out: Path, db: StudyDB | None = None, track: str | None = None) -> None:
    """Where to watch the study: TensorBoard, the Optuna dashboard, MLflow and, for a local Ray, Ray's
    dashboard."""
    print(f"[study] TensorBoard: tensorboard --logdir {out.resolve() / EXPERIMENT}", flush=True)
    if db is not None:
        print(f"[study] Optuna study {db.name!r} in {db.url}: dr4sr dashboard {out}", flush=True)
    if track == "mlflow":
        from dr4sr.search.tracking import tracking_uri

        print(f"[study] MLflow: mlflow ui --backend-store-uri {tracking_uri(out)}", flush=True)
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


def record_interrupt(out: Path, signum: int | None) -> None:
    """study.json says whether the last run was interrupted (results.csv and `dr4sr report` repeat it)."""
    path = out / "study.json"
    if not path.is_file():
        return
    info = json.loads(path.read_text())
    info.pop("interrupted", None)
    if signum is not None:
        info["interrupted"] = signal.Signals(signum).name
    path.write_text(json.dumps(info, indent=2, default=str))


def run_study(space: SearchSpace, opts: StudyOptions) -> dict:
    """Run (or `resume`) the study; returns the summary that `dr4sr.search.results` writes. On SIGINT or
    SIGTERM it writes the partial results, then raises StudyInterrupted (StudyTerminated)."""
    from dr4sr.search.progress import StudyProgress
    from dr4sr.search.results import write_study_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    exp = out / EXPERIMENT
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

            restore = opts.resume and tune.Tuner.can_restore(str(exp.resolve()))
            if not restore:
                if exp.exists() and any(exp.iterdir()):
                    hint = ("it has no restorable state yet (killed before the first snapshot): delete it"
                            if opts.resume else "pass --resume to continue it")
                    raise ConfigError(f"{exp} already holds a study; {hint}, or give a new --out")
                db.create(resume=opts.resume, quiet=not verbose())  # a taken name: stop before study.json
                (out / "study.json").write_text(json.dumps(info, indent=2, default=str))
            else:
                db.create(resume=True, quiet=not verbose())
                keep_db_info(out, info)
            try:
                with stop.noting_swallowed_exits():  # Train's placement-group cleaner needs the State API
                    ensure_ray(dashboard=True)  # (RAY_TUNE_NOTES §3)
            except SystemExit as exc:  # while ray.init() starts, its own SIGTERM handler calls sys.exit(15)
                if exc.code != signal.SIGTERM:
                    raise
                raise Terminated() from None
            stop.rearm()
            stop.check()
            check_fits(space, opts)
            announce(out, db, opts.track)
            progress = StudyProgress(info["trials_planned"], space.objective, str(out.resolve()))
            if restore:
                print(f"[study] resuming {exp}: finished trials are kept, unfinished ones continue", flush=True)
                tuner = tune.Tuner.restore(str(exp.resolve()), trainable=trainable(space, opts),
                                           resume_errored=True)
                from dr4sr.search.recording import record_callbacks

                fresh_callbacks(tuner, [progress, *record_callbacks(space, db, opts.track, out)])
            else:
                tuner = build_tuner(space, opts, [progress])
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
    summary = write_study_report(out)
    summary["wall_seconds"] = round(time.time() - started, 1)
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=str))
    if stop.signum is not None:
        raise cls(f"{what}: {summary['done']} of {summary['planned']} trials finished; {RESUME_HINT}", summary)
    return summary
