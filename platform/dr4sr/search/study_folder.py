"""A study's folder: its Tune experiments (tune/, then tune-2/, ... for each extension), what `--resume`
needs and what a new study must not overwrite, and how many trials `--resume --num-trials N` adds."""
from __future__ import annotations

import json
from pathlib import Path

from dr4sr.errors import ConfigError
from dr4sr.search.space import SearchSpace

EXPERIMENT = "tune"


def experiments(out: Path) -> list[Path]:
    """The study's Tune experiments in order: tune/, then one per extension (tune-2/, tune-3/, ...)."""
    found = [out / EXPERIMENT] if (out / EXPERIMENT).is_dir() else []
    k = 2
    while (out / f"{EXPERIMENT}-{k}").is_dir():
        found.append(out / f"{EXPERIMENT}-{k}")
        k += 1
    return found


def current_experiment(out: Path) -> Path:
    return (experiments(out) or [out / EXPERIMENT])[-1]


def extension(out: Path, space: SearchSpace, num_trials: int | None) -> int:
    """How many trials `--resume --num-trials N` adds to a finished Optuna study (0: a plain resume).
    Tune cannot raise a restored experiment's sample count, so the new trials run as a new experiment on
    the same stored Optuna study, whose TPE sampler sees every earlier trial."""
    from dr4sr.search.results import read_study

    if not num_trials or not (out / "study.json").is_file():  # no new count, or a study still to start
        return 0
    info, rows = read_study(out)
    planned = int(info.get("trials_planned") or 0)
    if num_trials <= planned:
        return 0
    if space.search.kind != "optuna":
        raise ConfigError(f"--num-trials: {out} is a grid study, which runs every point of its space")
    if len(rows) < planned or any(r["status"] == "incomplete" for r in rows):
        done = sum(r["status"] != "incomplete" for r in rows)
        raise ConfigError(f"{out}: the study is unfinished ({done} of {planned} trials); resume it with --resume "
                          f"first, then raise --num-trials to {num_trials}")
    return num_trials - planned


def check_study_folder(out: Path, resume: bool, name: str, smoke_test: bool) -> None:
    """What `--resume` needs, or what a new study must not overwrite; reads files only (no Ray)."""
    info_path, exp = out / "study.json", current_experiment(out)
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
