"""A finished study's best point, retrained on several seeds and tested against the default point and the
backbone: `dr4sr report STUDY --retrain-best --seeds 0 1`.

The best point is chosen on validation only (the study's objective); test metrics are read after the
choice. The default point is the study's run with its fixed settings and no dimension set, so every
dimension keeps its default (preset) value. The backbone trains on the original data with the same
training budget (the fixed keys outside the regeneration pipeline and the personalizer). Each run goes
through `dr4sr.pipeline.run_variant`, so finished stages come from the artifact store (the best trial's
own seed is usually a cache hit) and a rerun reuses finished run folders.

Writes `<study>/retrain/<name>-seed<s>/` per run, `retrain.md` (test table + paired tests over users of
per-user NDCG@20, seeds averaged) and `retrain.json`.
"""
from __future__ import annotations

import json
from pathlib import Path

from dr4sr.errors import DR4SRError
from dr4sr.paths import atomic_write_text
from dr4sr.pipeline import RunRequest, prepare_run, run_variant, split_overrides
from dr4sr.report import format_significance, load_run, paired_test
from dr4sr.search.results import best_trial, read_study
from dr4sr.search.space import apply_point

FOLDER = "retrain"
NAMES = ("backbone", "default", "best")  # the first is the table's baseline


def study_constants(study_dir: Path, info: dict) -> dict:
    """The run every trial shared (dataset, backbone, variant, fixed keys, preset, store...)."""
    constants = info.get("run_constants")
    if constants is None:
        raise DR4SRError(f"{study_dir}/study.json: no run_constants (a study started before retraining "
                         "was supported); rerun the study with this version to retrain its best point")
    return constants


def retrain_requests(constants: dict, point: dict) -> dict[str, RunRequest]:
    """{name: request} for the backbone, the default point and `point` (the best trial's)."""
    def request(run: dict, overrides: dict) -> RunRequest:
        return RunRequest(run["dataset"], run["backbone"], run["variant"], constants["composition"], overrides,
                          constants.get("data_dir"), constants.get("workers", 1), False, False,
                          constants.get("store"), constants.get("preset"))

    fixed = constants["fixed"]
    best_run, best_overrides = apply_point(constants["run"], fixed, point)
    default_run, default_overrides = apply_point(constants["run"], fixed, {})
    target, _ = split_overrides(default_overrides)  # the backbone's budget, without regeneration keys
    target = {k: v for k, v in target.items() if k != "personalizer"}  # it trains on original rows, unweighted
    backbone_run = {**default_run, "variant": "backbone"}
    return {"backbone": request(backbone_run, target), "default": request(default_run, default_overrides),
            "best": request(best_run, best_overrides)}


def run_dir(study_dir: Path, name: str, seed: int) -> Path:
    return Path(study_dir) / FOLDER / f"{name}-seed{seed}"


def retrain_best(study_dir: str | Path, seeds: list[int], log=print) -> dict:
    """Train what is missing, then compare; returns what retrain.json holds."""
    study_dir = Path(study_dir)
    info, rows = read_study(study_dir)
    constants = study_constants(study_dir, info)
    best = best_trial(rows, info["objective"])
    if best is None:
        raise DR4SRError(f"{study_dir}: no finished trial yet, so no best point to retrain")
    point = {k: best[k] for k in info["dimensions"] if k in best}
    requests = retrain_requests(constants, point)
    prepared = []
    for name, req in requests.items():  # every check (config, folders, data) before any training
        for seed in seeds:
            out = run_dir(study_dir, name, seed)
            if not (out / "metrics.json").is_file():
                prepared.append((name, seed, out, req, prepare_run(req, out, seed)))
    for name, seed, out, req, run in prepared:
        log(f"[retrain] {name}, seed {seed} -> {out}")
        run_variant(req, out, seed=seed, log=log, prepared=run)
    return compare_runs(study_dir, info, best, point, seeds)


def compare_runs(study_dir: Path, info: dict, best: dict, point: dict, seeds: list[int]) -> dict:
    from dr4sr.report import comparison_table, mean_metrics

    loaded = {n: [load_run(run_dir(study_dir, n, s)) for s in seeds] for n in NAMES}
    ranks = {n: [r for _, _, r in runs] for n, runs in loaded.items()}
    means = {n: mean_metrics([m for m, _, _ in runs]) for n, runs in loaded.items()}
    tests = {"default vs backbone": paired_test(ranks["backbone"], ranks["default"]),
             "best vs backbone": paired_test(ranks["backbone"], ranks["best"]),
             "best vs default": paired_test(ranks["default"], ranks["best"])}
    objective = info["objective"]
    result = {"study": info["name"], "objective": objective, "seeds": seeds, "best_trial": best["trial_id"],
              "best_point": point, f"best_trial_{objective}": best[objective],
              "valid": {n: mean_metrics([m for m, _, _ in runs], "valid") for n, runs in loaded.items()},
              "test": means, "paired_tests": tests,
              "runs": {n: [str(run_dir(study_dir, n, s)) for s in seeds] for n in NAMES}}
    lines = [f"# {info['name']}: best point (trial {best['trial_id']}, chosen on {objective}) retrained",
             "", "point: " + ", ".join(f"{k}={v}" for k, v in point.items()),
             f"test metrics, mean of seeds {seeds}; the default point is the study's run with no dimension set", "",
             comparison_table(means, "backbone"), ""]
    for label, sig in tests.items():
        new, base = label.split(" vs ")
        lines.append("- " + format_significance(new, base, sig))
    text = "\n".join(lines) + "\n"
    atomic_write_text(study_dir / "retrain.md", text)
    atomic_write_text(study_dir / "retrain.json", json.dumps(result, indent=2))
    print(text + f"wrote {study_dir / 'retrain.md'} and {study_dir / 'retrain.json'}", flush=True)
    return result
