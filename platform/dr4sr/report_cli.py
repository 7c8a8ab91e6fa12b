"""`dr4sr report`: compare finished runs from anywhere (any backbone, variant or setting).

    dr4sr report --baseline runs/a/backbone-seed0 runs/a/backbone-seed1 \
        --run dr4sr=runs/b/dr4sr-seed0,runs/b/dr4sr-seed1 --run pattern=runs/c/pattern-seed0,runs/c/pattern-seed1

Runs are paired by position (the i-th run of every group is the same seed), so each group lists as many
runs as the baseline. Prints the test-metric table of seed means with relative gains, and for every
group a paired test over users of per-user NDCG@20 (averaged over seeds). `dr4sr compare` does the same
for the runs it trains itself; this is for runs trained separately (other stores, sessions, machines).

    dr4sr report --personalizer-figure fig4.png --run sasrec=runs/sasrec-plus --run gru4rec=runs/gru-plus

draws the paper's Figure 4 from DR4SR+ runs (their personalizer_weights.parquet): a weight heatmap over
25 training rows x positions per run, and each run's weight variance (the first folder of each group).

    dr4sr report runs/gamma        # a `dr4sr tune` folder: results.csv, best trial, sweep/slice plots
    dr4sr report runs/tpe --retrain-best --seeds 0 1   # + its best point vs the default and the backbone
    dr4sr report runs/grid         # a `dr4sr grid` folder: table3.md/.tex/.csv
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.report import comparison_table, format_significance, load_run, mean_metrics, paired_test


def parse_group(spec: str) -> tuple[str, list[str]]:
    """'NAME=DIR1,DIR2' -> (NAME, [DIR1, DIR2]); a bare 'DIR1,DIR2' is named after its first folder."""
    name, sep, dirs = spec.partition("=")
    if not sep:
        name, dirs = Path(spec.split(",")[0]).name, spec
    paths = [d for d in dirs.split(",") if d]
    if not name or not paths:
        raise ConfigError(f"--run {spec!r}: expected NAME=DIR[,DIR...]")
    return name, paths


def build_report(baseline: list[str], groups: list[tuple[str, list[str]]], k: int = 20,
                 baseline_name: str = "baseline") -> dict:
    names = [baseline_name] + [n for n, _ in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be distinct, got {names}")
    loaded: dict[str, list] = {}
    users_ref = None
    for name, dirs in [(baseline_name, baseline)] + groups:
        if len(dirs) != len(baseline):
            raise ConfigError(f"--run {name}: {len(dirs)} run(s) but the baseline has {len(baseline)}; "
                              "runs are paired by seed position")
        loaded[name] = [load_run(d) for d in dirs]
        for d, (_, users, _) in zip(dirs, loaded[name]):
            if users_ref is None:
                users_ref, ref_dir = users, d
            elif not np.array_equal(users, users_ref):
                raise DR4SRError(f"{d}: its test users differ from {ref_dir}'s "
                                 f"({len(users):,} vs {len(users_ref):,}); runs must share a dataset split")
    means = {n: mean_metrics([m for m, _, _ in runs]) for n, runs in loaded.items()}
    base_ranks = [r for _, _, r in loaded[baseline_name]]
    significance = {n: paired_test(base_ranks, [r for _, _, r in loaded[n]], k) for n, _ in groups}
    return {"runs": {baseline_name: baseline, **dict(groups)}, "test": means, "significance": significance,
            "table": comparison_table(means, baseline_name)}


def report_folder(folder: str, retrain_seeds: list[int] | None = None) -> int:
    """A study folder (study.json) or a grid folder (grid.json): rewrite its tables and plots; for a study
    with `retrain_seeds`, first retrain its best point against the default point and the backbone."""
    path = Path(folder)
    if (path / "study.json").is_file():
        from dr4sr.search.results import write_study_report

        if retrain_seeds:
            from dr4sr.search.retrain import retrain_best

            retrain_best(path, retrain_seeds)
        write_study_report(path)
        return 0
    if retrain_seeds:
        raise ConfigError(f"{path}: --retrain-best needs a `dr4sr tune` folder (study.json)")
    if (path / "grid.json").is_file():
        from dr4sr.search.grid import write_grid_table

        written = write_grid_table(path, json.loads((path / "grid.json").read_text()))
        print((path / "table3.md").read_text() + "wrote " + ", ".join(map(str, written)))
        return 0
    raise DR4SRError(f"{path}: neither a study folder (study.json) nor a grid folder (grid.json)")


def check_args(args) -> None:
    """Every path argument, before any run is read or anything written."""
    from dr4sr.paths import require_file_target

    if args.folder and not Path(args.folder).is_dir():
        what = "is a file" if Path(args.folder).exists() else "does not exist"
        raise DR4SRError(f"{args.folder} {what}; give a `dr4sr tune` or `dr4sr grid` output folder")
    for flag, path in (("--json", args.json), ("--personalizer-figure", args.personalizer_figure)):
        if path:
            require_file_target(path, flag)


def cmd_report(args) -> int:
    from dr4sr.storage import is_uri

    folder = None
    if args.folder and is_uri(args.folder):  # a study or grid kept in a bucket: its working copy
        from dr4sr.storage.workcopy import OutFolder

        folder = OutFolder(args.folder)
        folder.pull(skip=lambda rel: rel.endswith(".pt"))  # the weights are never read
        args.folder = str(folder.local)
    check_args(args)
    if args.folder:
        code = report_folder(args.folder, args.seeds if args.retrain_best else None)
        if folder is not None:
            folder.push(recursive=False)  # the rewritten tables and figures
        return code
    if args.retrain_best:
        raise ConfigError("dr4sr report --retrain-best: give a study FOLDER")
    if not args.run:
        raise ConfigError("dr4sr report: give a study/grid FOLDER, or --baseline DIR... and --run NAME=DIR,...")
    groups = [parse_group(s) for s in args.run]
    if args.personalizer_figure:
        from dr4sr.personalizer.figure import draw_figure

        variances = draw_figure([(name, dirs[0]) for name, dirs in groups], args.personalizer_figure)
        print("personalizer weight variance: " + ", ".join(f"{k} {v:.3e}" for k, v in variances.items()))
        print(f"wrote {args.personalizer_figure}")
    if not args.baseline:
        if not args.personalizer_figure:
            raise ConfigError("dr4sr report needs --baseline (or --personalizer-figure)")
        return 0
    report = build_report(args.baseline, groups)
    print(report["table"])
    for name, sig in report["significance"].items():
        print(format_significance(name, "baseline", sig))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="compare finished run directories, or report a study / grid folder")
    p.add_argument("folder", nargs="?", default=None, help="a `dr4sr tune` or `dr4sr grid` output folder")
    p.add_argument("--baseline", nargs="+", metavar="DIR", help="baseline runs, one per seed")
    p.add_argument("--run", action="append", metavar="NAME=DIR[,DIR...]",
                   help="a group to compare, its runs in the baseline's seed order (repeatable)")
    p.add_argument("--json", default=None, help="also write the report as JSON to this path")
    p.add_argument("--personalizer-figure", default=None, metavar="PNG",
                   help="draw the DR4SR+ weight heatmaps and variances (Figure 4) of the --run groups")
    p.add_argument("--retrain-best", action="store_true",
                   help="with a study FOLDER: retrain its best validation point on --seeds and test it against "
                        "the default point and the backbone (paired tests); reruns reuse finished runs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="--retrain-best seeds (default 0 1)")
    p.set_defaults(func=cmd_report)
