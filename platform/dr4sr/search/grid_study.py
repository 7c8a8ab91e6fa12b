"""A grid's cells as an Optuna study, so `dr4sr dashboard <grid out>` shows the grid.

One trial per ended cell, added as a fixed point (the grid samples nothing): params dataset, backbone,
variant and seed; value the validation score the run selected its epoch by; its per-epoch validation
as intermediate values (step = epoch, from 1); state COMPLETE, or FAIL with the error; user attrs the
cell name (the key: a resumed grid adds only cells not stored yet), the run folder, the test metrics and
the artifact ids. Stored in `<out>/optuna.db` unless `--storage` names another database.

Optuna keeps a categorical parameter's choices fixed for a study, and a stored trial never changes. So
when a later grid into the same folder adds a dataset (backbone, variant), or a failed cell finished on
a rerun, the study is rebuilt from the folder: deleted and every ended cell added again (cheap, and the
folder is the record; only the trial numbers change).
"""
from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

from dr4sr.search.grid_cells import Cell
from dr4sr.search.optuna_db import StudyDB, open_storage

CELL = "cell"  # user attr: the trial's cell, e.g. tiny/sasrec/dr4sr-seed0


def cell_attrs(cell: Cell) -> dict:
    attrs = {CELL: cell.name, "run_dir": str(cell.run_dir)}
    if cell.ok:
        m = cell.metrics
        attrs.update({f"test_{k}": v for k, v in cell.test_metrics().items()},
                     **{k: v for k, v in cell.artifacts().items()})
        if "epochs" in m:
            attrs["epochs"] = int(m["epochs"])
        if "best_epoch" in m:
            attrs["best_epoch"] = int(m["best_epoch"]) + 1
    else:
        attrs["error"] = cell.error
    return attrs


def distributions(cells: list[Cell], meta: dict) -> dict:
    """The grid's values of each parameter: grid.json's lists (their order), and any cell's own."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    def choices(key: str, *lists: list) -> list:
        out = []
        for v in [x for values in lists for x in values] + [c.params[key] for c in cells]:
            if v not in out:
                out.append(v)
        return out

    seeds = [c.run.seed for c in cells] + list(meta.get("seeds", []))
    return {"dataset": CategoricalDistribution(choices("dataset", meta.get("datasets", []))),
            "backbone": CategoricalDistribution(choices("backbone", meta.get("backbones", []),
                                                        meta.get("baselines", []))),
            "variant": CategoricalDistribution(choices("variant", meta.get("variants", []))),
            "seed": IntDistribution(min(seeds), max(seeds))}


def frozen_trial(cell: Cell, dists: dict):
    import optuna

    state = optuna.trial.TrialState.COMPLETE if cell.ok else optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(state=state, value=cell.value, params=cell.params, distributions=dists,
                                      intermediate_values=cell.intermediate_values(), user_attrs=cell_attrs(cell))
    if cell.started and cell.ended:  # the run's own times (the dashboard's timeline), not the recording's
        trial.datetime_start = datetime.fromtimestamp(cell.started)
        trial.datetime_complete = datetime.fromtimestamp(cell.ended)
    return trial


def stale(trial, cell: Cell, dists: dict) -> bool:
    """A stored trial the folder now contradicts: another outcome or value, or other parameter choices."""
    import optuna

    if (trial.state == optuna.trial.TrialState.COMPLETE) != cell.ok or trial.value != cell.value:
        return True
    return any(trial.distributions.get(k) != d for k, d in dists.items()
               if not isinstance(d, optuna.distributions.IntDistribution))


def grid_study_name(out: str | Path) -> str:
    return f"grid@{Path(out).resolve().name}"


def sync_study(db: StudyDB, cells: list[Cell], meta: dict) -> int:
    """Add the cells not stored yet (rebuild the study when stored trials are stale); returns how many
    trials were written."""
    import optuna

    study = db.create(resume=True)
    if not cells:
        return 0
    dists = distributions(cells, meta)
    stored = {t.user_attrs.get(CELL): t for t in study.get_trials(deepcopy=False)}
    if any(c.name in stored and stale(stored[c.name], c, dists) for c in cells):
        optuna.delete_study(study_name=db.name, storage=open_storage(db.url))
        study, stored = db.create(resume=True), {}
    study.set_user_attr("grid_folder", str(Path(db.out).resolve()))
    metric = f"valid_{cells[0].valid_metric}"
    if study.metric_names != [metric]:
        with warnings.catch_warnings():  # set_metric_names is experimental in optuna 5; the dashboard shows it
            warnings.simplefilter("ignore")
            study.set_metric_names([metric])
    new = [frozen_trial(c, dists) for c in cells if c.name not in stored]
    if new:
        study.add_trials(new)
    return len(new)
