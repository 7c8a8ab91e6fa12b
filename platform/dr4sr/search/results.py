"""A study's results from its folder alone (no Ray): results.csv, the best trial, ASHA's savings, plots.

Selection is on validation only: the best trial is the finished one with the highest validation
objective at its best epoch; test metrics are read for that trial alone (results.csv leaves them empty
for the others). Sweep plots are reports of every point, not selections. Parameter importance (importance.csv) is
computed from the stored Optuna study, the data the dashboard shows.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from dr4sr.errors import DR4SRError
from dr4sr.paths import smoke_label
from dr4sr.report import METRICS

ENDED = "ended.json"  # written by the driver when Tune ends a trial (completed, ASHA stop, or error)
RANKED_ROWS = 20  # the console's ranked table; results.csv has every trial


SLICE_PNG = "slice.png"


def read_progress(trial_dir: Path) -> list[dict]:
    path = trial_dir / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def error_file(study_dir: Path, trial_id: str) -> Path | None:
    """Tune's error.txt of a trial, under the study's first experiment (tune/) or an extension's."""
    return next(iter(sorted(Path(study_dir).glob(f"tune*/{trial_id}/error.txt"))), None)


def trial_status(info: dict, trial_dir: Path, progress: list[dict]) -> str:
    """finished | stopped by ASHA | error | incomplete (interrupted, or still running)."""
    if (trial_dir / "run" / "metrics.json").is_file():
        return "finished"
    ended = json.loads((trial_dir / ENDED).read_text()).get("status") if (trial_dir / ENDED).is_file() else None
    if ended == "error" or error_file(Path(trial_dir).parents[1], trial_dir.name) is not None:
        return "error"
    if info.get("trial_markers"):
        return "stopped by ASHA" if ended == "completed" and info.get("asha") else "incomplete"
    # studies written before the markers: ASHA stopped it only if it ran fewer than max_t epochs
    max_t = (info.get("asha") or {}).get("max_t")
    early = bool(progress) and (not max_t or len(progress) < max_t)
    return "stopped by ASHA" if info.get("asha") and early else "incomplete"


def read_study(study_dir: str | Path) -> tuple[dict, list[dict]]:
    """(study.json, one dict per trial) with the trial's point, status, epochs and validation."""
    study_dir = Path(study_dir)
    info_path = study_dir / "study.json"
    if not info_path.is_file():
        raise DR4SRError(f"{info_path}: not found (is {study_dir} a `dr4sr tune` folder?)")
    info = json.loads(info_path.read_text())
    objective = info["objective"]
    rows = []
    for trial_dir in sorted((study_dir / "trials").glob("*/")):
        if not (trial_dir / "trial.json").is_file():
            continue
        trial = json.loads((trial_dir / "trial.json").read_text())
        progress = read_progress(trial_dir)
        row = {"trial_id": trial["trial_id"], **{f"{k}": v for k, v in trial["point"].items()},
               "status": trial_status(info, trial_dir, progress)}
        if row["status"] == "finished":
            m = json.loads((trial_dir / "run" / "metrics.json").read_text())
            row.update(epochs=m["epochs"], best_epoch=m["best_epoch"] + 1,
                       **{f"valid_{k}": m["valid"][k] for k in METRICS})
            row["_metrics"] = m
        else:
            best = max(progress, key=lambda r: r.get(objective, -1.0)) if progress else {}
            row.update(epochs=len(progress), best_epoch=best.get("epoch", ""),
                       **{f"valid_{k}": best.get(f"valid_{k}", "") for k in METRICS})
        row["_dir"] = str(trial_dir)
        rows.append(row)
    return info, rows


def best_trial(rows: list[dict], objective: str) -> dict | None:
    finished = [r for r in rows if r["status"] == "finished"]
    return max(finished, key=lambda r: r[objective]) if finished else None


def asha_savings(info: dict, rows: list[dict]) -> dict:
    """Trial-epochs run against the budget of running every trial to max_t."""
    asha = info.get("asha") or {}
    max_t = asha.get("max_t") or max((r["epochs"] for r in rows), default=0)
    stopped = [r for r in rows if r["status"] == "stopped by ASHA"]
    return {"trials": len(rows), "stopped_by_asha": len(stopped), "max_t": max_t,
            "trial_epochs_run": sum(int(r["epochs"]) for r in rows),
            "trial_epochs_saved_by_asha": sum(max_t - int(r["epochs"]) for r in stopped)}


def study_notes(info: dict, done: int, planned: int) -> list[str]:
    """What a reader of any output must know first: a smoke test's numbers, an interrupted study."""
    notes = [smoke_label(info.get("max_epochs"))] if info.get("smoke_test") else []
    if info.get("interrupted"):
        notes.append(f"interrupted: {done} of {planned} trials finished")
    return notes


def write_results_csv(path: Path, rows: list[dict], best: dict | None, note: str = "") -> None:
    """One row per trial; a smoke or interrupted study's rows start with a `note` column saying so."""
    public = [{**({"note": note} if note else {}), **{k: v for k, v in r.items() if not k.startswith("_")}}
              for r in rows]
    for r in public:
        r["best"] = int(best is not None and r["trial_id"] == best["trial_id"])
        for k in METRICS:
            r[f"test_{k}"] = best["_metrics"]["test"][k] if r["best"] else ""
    fields = list(dict.fromkeys(k for r in public for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(public)
    tmp.replace(path)


def write_study_report(study_dir: str | Path) -> dict:
    """results.csv, and for grid sweeps one PNG per swept numeric key; prints and returns the summary."""
    study_dir = Path(study_dir)
    info, rows = read_study(study_dir)
    if not rows and not info.get("interrupted"):
        raise DR4SRError(f"{study_dir}/trials: no trials yet")
    objective = info["objective"]
    planned = info.get("trials_planned") or len(rows)
    done = sum(r["status"] in ("finished", "stopped by ASHA") for r in rows)
    notes = study_notes(info, done, planned)
    best = best_trial(rows, objective)
    summary = {"study": info["name"], "objective": objective, **asha_savings(info, rows), "planned": planned,
               "done": done, "finished": sum(r["status"] == "finished" for r in rows), "notes": notes}
    if info.get("interrupted"):
        summary["interrupted"] = info["interrupted"]
    if rows:
        write_results_csv(study_dir / "results.csv", rows, best, "; ".join(notes))
        summary["results_csv"] = str(study_dir / "results.csv")
    if best is not None:
        summary["best"] = {"trial_id": best["trial_id"], "point": {k: best[k] for k in info["dimensions"] if k in best},
                           objective: best[objective], "test": best["_metrics"]["test"],
                           "run_dir": str(Path(best["_dir"]) / "run")}
    reference = backbone_reference(study_dir, objective)
    if info["kind"] == "grid" and rows:
        from dr4sr.search.plots import sweep_plots

        summary["plots"] = [str(p) for p in sweep_plots(rows, info["dimensions"], study_dir, info["name"],
                                                        note="; ".join(notes), reference=reference)]
    elif rows:
        from dr4sr.search.plots import slice_plot

        path = slice_plot(rows, info["dimensions"], objective, study_dir / SLICE_PNG, info["name"],
                          "; ".join(notes), reference)
        summary["plots"] = [str(path)] if path else []
    from dr4sr.search.importance import study_importance

    importance, written = study_importance(study_dir, info, "; ".join(notes))  # the stored study the dashboard shows
    if written:
        summary["importance_csv"] = written[0]
    print("\n".join(filter(None, [format_summary(summary), format_ranking(rows, info), *importance])), flush=True)
    return summary


def backbone_reference(study_dir: Path, objective: str) -> dict | None:
    """The backbone's mean valid/test metric from `--retrain-best`'s backbone runs, if they exist."""
    metric = objective.removeprefix("valid_")
    runs = [json.loads(p.read_text()) for p in sorted((study_dir / "retrain").glob("backbone-seed*/metrics.json"))]
    if not runs or metric not in runs[0].get("test", {}):
        return None
    mean = lambda split: sum(m[split][metric] for m in runs) / len(runs)  # noqa: E731
    return {"label": f"backbone ({len(runs)} seed{'s' if len(runs) > 1 else ''})", "valid": mean("valid"),
            "test": mean("test")}


def format_summary(s: dict) -> str:
    """The smoke label first (as `dr4sr train` prints it), then how far the study got and its best trial."""
    lines = [n for n in s.get("notes", []) if not n.startswith("interrupted")]
    progress = f"{s['done']} of {s.get('planned', s['trials'])} trials finished"
    epochs = (f"; {s['trial_epochs_run']} trial-epochs run, {s['trial_epochs_saved_by_asha']} saved by ASHA "
              f"(budget {s['max_t']} epochs per trial)") if s["trials"] else ""
    lines.append(f"study {s['study']}: {'interrupted: ' if s.get('interrupted') else ''}{progress} "
                 f"({s['stopped_by_asha']} stopped by ASHA){epochs}")
    if "best" in s:
        b = s["best"]
        lines.append(f"best by {s['objective']}: {b['trial_id']} {b['point']} -> {b[s['objective']]:.4f}; its test: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in b["test"].items()))
    written = ([s["results_csv"]] if "results_csv" in s else []) + s.get("plots", []) + \
        ([s["importance_csv"]] if "importance_csv" in s else [])
    lines.append("wrote " + ", ".join(written) if written else "no results yet: no trial had started")
    return "\n".join(lines)


def format_ranking(rows: list[dict], info: dict, top: int = RANKED_ROWS) -> str:
    """The trials ranked by the validation objective (trials without a validated epoch last)."""
    if not rows:
        return ""
    objective = info["objective"]
    dims = [d for d in info["dimensions"] if any(d in r for r in rows)]
    ranked = sorted(rows, key=lambda r: (r[objective] == "", -(r[objective] or 0.0)))
    header = ["rank", "trial", "status", "epochs", objective, *dims]
    table = [header] + [[str(i), r["trial_id"], r["status"], str(r["epochs"]),
                         f"{r[objective]:.4f}" if r[objective] != "" else "-", *(fmt_value(r.get(d)) for d in dims)]
                        for i, r in enumerate(ranked[:top], start=1)]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    lines = [f"ranked by {objective} (validation):"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    if len(ranked) > top:
        lines.append(f"  ... {len(ranked) - top} more in results.csv")
    return "\n".join(lines)


def fmt_value(value) -> str:
    """Short, but 0.0 stays 0.0 (as in the space file), not 0."""
    return f"{value:.4g}" if isinstance(value, float) and len(repr(value)) > 8 else str(value)
