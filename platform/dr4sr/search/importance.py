"""Parameter importance of a study, computed from its stored Optuna study (what the dashboard shows too).

fANOVA (Optuna's default evaluator) over the COMPLETE trials' validation objective; a parameter that
took one value in those trials explains nothing and is left out, with a note. Written to importance.csv.
"""
from __future__ import annotations

import csv
from pathlib import Path

FILE = "importance.csv"
PNG = "importance.png"
MIN_TRIALS = 2


def compute(study) -> tuple[dict[str, float], str, list[str], int]:
    """(importance by parameter, evaluator name, notes, completed trials)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < MIN_TRIALS:
        return {}, "", [f"parameter importance needs {MIN_TRIALS} completed trials; the study has {len(done)}"], \
            len(done)
    values = {}
    for t in done:
        for k, v in t.params.items():
            values.setdefault(k, set()).add(v)
    varied = [k for k, vs in values.items() if len(vs) > 1]
    notes = [f"{k} took one value ({next(iter(vs))!r}) in the completed trials: no importance"
             for k, vs in values.items() if len(vs) <= 1]
    if not varied:
        return {}, "", notes + ["parameter importance: no parameter varied across the completed trials"], len(done)
    try:
        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    except ImportError:  # fANOVA's random forest comes from scikit-learn
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
        notes.append("scikit-learn is missing, so PED-ANOVA replaced fANOVA")
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    return dict(scores), name, notes, len(done)


def write_importance(study, study_dir: Path, objective: str, label: str = "") -> tuple[list[str], Path]:
    """importance.csv (and importance.png when any parameter varied) in the study folder; returns the lines
    to print (notes start with 'note: '). `label` (a smoke test) heads the figure's title."""
    scores, name, notes, n = compute(study)
    if scores:
        from dr4sr.search.plots import importance_plot

        importance_plot(scores, name, n, Path(study_dir) / PNG, study.study_name, label)
    path = Path(study_dir) / FILE
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["parameter", "importance", "evaluator", "completed_trials", "note"])
        w.writerows([k, f"{v:.6f}", name, n, ""] for k, v in scores.items())
        w.writerows(["", "", name, n, note] for note in notes)
    tmp.replace(path)
    lines = [f"note: {note}" for note in notes]
    if scores:
        width = max(len(k) for k in scores)
        lines.append(f"study parameter importance ({name} over {n} completed trials, {objective}):")
        lines += [f"  {k.ljust(width)}  {v:.3f}" for k, v in scores.items()]
    return lines, path


def study_importance(study_dir: Path, info: dict, label: str = "") -> tuple[list[str], list[str]]:
    """(lines to print, files written); nothing for a study without a stored Optuna study."""
    from dr4sr.search.optuna_db import DB_FILE, load_stored_study, study_db

    db = study_db(info, study_dir)
    if db.storage is None and not (Path(study_dir) / DB_FILE).is_file():
        return [], []
    try:
        study = load_stored_study(info, study_dir)
    except KeyError:
        return [f"note: {db.url} holds no study {db.name!r}: no parameter importance"], []
    lines, path = write_importance(study, study_dir, info["objective"], label)
    return lines, [str(path)]
