"""Recording a study's trials in its stored Optuna study while Tune runs them.

TPE studies: `StoredOptunaSearch`, Ray's OptunaSearch over that storage, records each trial as Tune runs
it. Grid studies: `GridRecorder`, a Tune callback, adds each trial when it ends. Either way a trial holds
its per-epoch validation objective (intermediate values, step = epoch), its state (COMPLETE; PRUNED when
ASHA stopped it; FAIL) and user attrs: its Tune trial id, its run folder and its test metrics (a record
only: the objective is validation).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from dr4sr.search.optuna_db import TUNE_ID, StudyDB, open_storage
from dr4sr.search.results import error_file
from dr4sr.search.trial import FINISHED

if TYPE_CHECKING:
    from dr4sr.search.space import SearchSpace


def trial_attrs(out: str | Path, trial_id: str, error: bool) -> dict:
    """User attrs of a trial: its ids and folders, and once its run finished, its test metrics."""
    tdir = Path(out) / "trials" / trial_id
    attrs = {TUNE_ID: trial_id, "trial_dir": str(tdir), "run_dir": str(tdir / "run")}
    metrics = tdir / "run" / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        attrs.update(epochs=m["epochs"], best_epoch=m["best_epoch"] + 1,
                     **{f"test_{k}": float(v) for k, v in m["test"].items()})
    if error:
        attrs["error_file"] = str(error_file(out, trial_id) or Path(out) / "tune" / trial_id / "error.txt")
    return attrs


def outcome(result: dict | None, error: bool, objective: str):
    """(state, value): a run that ended on its own sends FINISHED with its best-epoch validation; ASHA's
    stop ends a trial on an epoch result (PRUNED: Optuna then takes its last intermediate value)."""
    from optuna.trial import TrialState

    if error:
        return TrialState.FAIL, None
    if result and result.get(FINISHED) and result.get(objective) is not None:
        return TrialState.COMPLETE, float(result[objective])
    return TrialState.PRUNED, None


def epoch_value(result: dict, objective: str) -> tuple[int, float] | None:
    """A per-epoch result's (epoch, objective); None for the final result (it repeats the best epoch)."""
    if not result or result.get(FINISHED) or result.get("epoch") is None or result.get(objective) is None:
        return None
    return int(result["epoch"]), float(result[objective])


class StoredOptunaSearch(OptunaSearch):
    """OptunaSearch on a stored study. Unlike the base class it reports per epoch (step = `epoch`, which a
    restored trial keeps, unlike training_iteration), tells ASHA stops as PRUNED, adds the user attrs,
    and skips trials already told before a restore ran them again (no duplicates, no errors)."""

    def __init__(self, space: dict, db: StudyDB, objective: str, seed: int, points: list[dict] | None = None):
        self._db_out = db.out
        # warm-start points: Optuna enqueues them once, when the study starts (a restore unpickles this searcher)
        super().__init__(space, metric=objective, mode="max", seed=seed, study_name=db.name,
                         storage=open_storage(db.url), points_to_evaluate=points or None)

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if config is not None:
            ot_trial = self._ot_trials[trial_id]
            if not self._finished(ot_trial):
                ot_trial.set_user_attr(TUNE_ID, trial_id)
        return config

    def _finished(self, ot_trial) -> bool:
        return self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict):
        point = epoch_value(result, self.metric)
        ot_trial = self._ot_trials.get(trial_id)
        if point is None or ot_trial is None or trial_id in self._completed_trials or self._finished(ot_trial):
            return
        with warnings.catch_warnings():  # a restarted trial reports its epochs again: the first is kept
            warnings.simplefilter("ignore")
            ot_trial.report(point[1], point[0])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        if self._finished(ot_trial):
            self._completed_trials.add(trial_id)
            return
        self.on_trial_result(trial_id, result or {})  # ASHA's stopping result reaches only this hook
        self._completed_trials.add(trial_id)
        for key, value in trial_attrs(self._db_out, trial_id, error).items():
            ot_trial.set_user_attr(key, value)
        state, value = outcome(result, error, self.metric)
        self._ot_study.tell(ot_trial, value, state=state)


class GridRecorder(Callback):
    """Adds each grid trial to the stored study when Tune ends it, with the values Tune saw per epoch."""

    def __init__(self, db: StudyDB, distributions: dict, objective: str):
        self.db, self.distributions, self.objective = db, distributions, objective
        self._study = None
        self._values: dict[str, dict[int, float]] = {}

    def __getstate__(self):  # pickled into tuner.pkl: the open storage stays behind
        return {**self.__dict__, "_study": None}

    def study(self):
        if self._study is None:
            import optuna

            self._study = optuna.load_study(study_name=self.db.name, storage=open_storage(self.db.url))
        return self._study

    def on_trial_result(self, iteration, trials, trial, result, **info):
        point = epoch_value(result, self.objective)
        if point is not None:
            self._values.setdefault(trial.trial_id, {}).setdefault(*point)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, error=True)

    def _record(self, trial, error: bool) -> None:
        import optuna

        study = self.study()
        if any(t.user_attrs.get(TUNE_ID) == trial.trial_id for t in study.get_trials(deepcopy=False)):
            return  # recorded before a restore ran it again
        values = self._values.pop(trial.trial_id, {})
        last = epoch_value(trial.last_result, self.objective)
        if last is not None:
            values.setdefault(*last)
        state, value = outcome(trial.last_result, error, self.objective)
        if state == optuna.trial.TrialState.PRUNED and values:
            value = values[max(values)]
        params = {k: trial.config[k] for k in self.distributions if k in trial.config}
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params=params, distributions=self.distributions,
            intermediate_values=values, user_attrs=trial_attrs(self.db.out, trial.trial_id, error)))


class OutSync(Callback):
    """A study whose folder is on s3:// (dr4sr.storage.workcopy): when a trial ends, its folder comes down
    (it may have run on another node, which pushed it) and the driver's own files (study.json, the stored
    study, the trial's ended.json) go up, so the bucket holds every finished trial even if the driver is killed next."""

    def __init__(self, uri: str):
        self.uri = uri

    def _sync(self, trial) -> None:
        from dr4sr.search.study import driver_files
        from dr4sr.storage.workcopy import OutFolder

        folder, rel = OutFolder(self.uri), f"trials/{trial.trial_id}"
        folder.pull(rel)
        folder.push(rel)  # with the driver's ended.json
        folder.push(skip=lambda rel: not driver_files(rel), recursive=False)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._sync(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._sync(trial)


def record_callbacks(space: SearchSpace, db: StudyDB, track: str | None, out: Path) -> list:
    """Callbacks that record trials: into the stored study (grid; TPE's searcher does it), a tracker."""
    from dr4sr.search.study import optuna_distributions
    from dr4sr.search.tracking import tracking_callbacks

    callbacks = []
    if space.search.kind == "grid":
        callbacks.append(GridRecorder(db, optuna_distributions(space), space.objective))
    return callbacks + tracking_callbacks(track, out, db.name, space.objective)


def close_stale_trials(db: StudyDB) -> int:
    """After a study that ran to its end: trials still RUNNING were asked by the searcher just before an
    interrupt but never made it into Tune's saved state, so they will never run: mark them FAIL."""
    import optuna

    storage = open_storage(db.url)
    study_id = storage.get_study_id_from_name(db.name)
    stale = storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        storage.set_trial_user_attr(t._trial_id, "note", "asked before an interrupt, never run")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    return len(stale)
