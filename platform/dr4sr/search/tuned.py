"""`jobs/grid.py --space`: one study per (dataset, backbone) cell, then its best trial (by validation)
retrained with the grid's seeds as variant `tuned`, so Table 3 gets a tuned row per cell."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dr4sr.config import deep_merge
from dr4sr.search.space import apply_point, load_space
from dr4sr.search.study import StudyOptions, run_study, smoke_space
from dr4sr.search.validate import validate_space


def cell_space(space_path: str, data: str, backbone: str, overrides: dict, smoke: bool, preset: str | None = None):
    space = load_space(space_path).with_run(data, backbone)
    space = validate_space(dataclasses.replace(space, fixed=deep_merge(space.fixed, overrides),
                                               preset=preset or space.preset))
    return smoke_space(space, data) if smoke else space


def tune_cells(opts, data: dict[str, str], seeds: list[int], on_done) -> list[str]:
    from dr4sr.search.grid import TUNED, GridRun, execute, request_fields

    failed, retrain, points = [], [], {}
    for dataset in data:
        for backbone in opts.backbones:
            space = cell_space(opts.space, data[dataset], backbone, opts.overrides, opts.smoke_test, opts.preset)
            study_dir = Path(opts.out) / "studies" / dataset / backbone
            print(f"[grid] study {space.name} for {dataset}/{backbone} -> {study_dir}", flush=True)
            summary = run_study(space, StudyOptions(study_dir, opts.store, opts.data_dir, opts.smoke_test,
                                                    resume=True))
            if "best" not in summary:
                failed.append(f"{dataset}/{backbone}/{TUNED}: no finished trial in {study_dir}")
                continue
            run, overrides = apply_point({"dataset": space.dataset, "backbone": backbone, "variant": space.variant},
                                         space.fixed, summary["best"]["point"])
            (study_dir / "tuned.json").write_text(json.dumps({"best": summary["best"], "run": run,
                                                              "overrides": overrides}, indent=2, default=str))
            for seed in seeds:
                r = GridRun(dataset, backbone, TUNED, seed, run["dataset"])
                retrain.append(r)
                points[r] = (run, overrides, space.preset)

    def fields(r):
        run, overrides, preset = points[r]
        f = request_fields(opts, r, overrides)
        # the study's budgets and recipe
        f.update(variant=run["variant"], dataset=run["dataset"], smoke_test=False, preset=preset)
        return f

    return failed + execute(opts, retrain, fields, on_done, label="tuned")
