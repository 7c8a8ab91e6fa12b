"""A study's results from its folder alone (no Ray): results.csv, the best trial, ASHA's savings, plots.

Selection is on validation only: the best trial is the finished one with the highest validation
objective at its best epoch; test metrics are read for that trial alone (results.csv leaves them empty
for the others). Sweep plots are reports of every point, not selections.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from dr4sr.errors import DR4SRError
from dr4sr.report import METRICS


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
        progress = [json.loads(line) for line in (trial_dir / "progress.jsonl").read_text().splitlines()
                    if line.strip()] if (trial_dir / "progress.jsonl").is_file() else []
        metrics_path = trial_dir / "run" / "metrics.json"
        row = {"trial_id": trial["trial_id"], **{f"{k}": v for k, v in trial["point"].items()}}
        if metrics_path.is_file():
            m = json.loads(metrics_path.read_text())
            row.update(status="finished", epochs=m["epochs"], best_epoch=m["best_epoch"] + 1,
                       **{f"valid_{k}": m["valid"][k] for k in METRICS})
            row["_metrics"] = m
        else:
            # ASHA stopped it only if it ran fewer than max_t epochs: a trial that reported all max_t
            # epochs and has no metrics was cut off before its test (interrupt, or the scheduler's
            # final-rung stop), which saved nothing
            max_t = (info.get("asha") or {}).get("max_t")
            early = bool(progress) and (not max_t or len(progress) < max_t)
            status = "stopped by ASHA" if info.get("asha") and early else "incomplete"
            if (study_dir / "tune" / trial["trial_id"] / "error.txt").is_file():
                status = "error"
            best = max(progress, key=lambda r: r.get(objective, -1.0)) if progress else {}
            row.update(status=status, epochs=len(progress), best_epoch=best.get("epoch", ""),
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


def write_results_csv(path: Path, rows: list[dict], best: dict | None) -> None:
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
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
    """results.csv, and for grid sweeps one PNG per swept numeric key; returns the summary."""
    study_dir = Path(study_dir)
    info, rows = read_study(study_dir)
    if not rows:
        raise DR4SRError(f"{study_dir}/trials: no trials yet")
    objective = info["objective"]
    best = best_trial(rows, objective)
    write_results_csv(study_dir / "results.csv", rows, best)
    summary = {"study": info["name"], "objective": objective, **asha_savings(info, rows),
               "finished": sum(r["status"] == "finished" for r in rows), "results_csv": str(study_dir / "results.csv")}
    if best is not None:
        summary["best"] = {"trial_id": best["trial_id"], "point": {k: best[k] for k in info["dimensions"] if k in best},
                           objective: best[objective], "test": best["_metrics"]["test"],
                           "run_dir": str(Path(best["_dir"]) / "run")}
    if info["kind"] == "grid":
        from dr4sr.search.plots import sweep_plots

        summary["plots"] = [str(p) for p in sweep_plots(rows, info["dimensions"], study_dir, info["name"])]
    print(format_summary(summary), flush=True)
    return summary


def format_summary(s: dict) -> str:
    lines = [f"study {s['study']}: {s['finished']}/{s['trials']} trials finished, {s['stopped_by_asha']} stopped by "
             f"ASHA; {s['trial_epochs_run']} trial-epochs run, {s['trial_epochs_saved_by_asha']} saved by ASHA "
             f"(budget {s['max_t']} epochs per trial)"]
    if "best" in s:
        b = s["best"]
        lines.append(f"best by {s['objective']}: {b['trial_id']} {b['point']} -> {b[s['objective']]:.4f}; its test: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in b["test"].items()))
    lines.append(f"wrote {s['results_csv']}" + "".join(f", {p}" for p in s.get("plots", [])))
    return "\n".join(lines)
