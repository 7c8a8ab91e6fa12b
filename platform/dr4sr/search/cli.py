"""`dr4sr tune`: run a search space as a Ray Tune study (grid or Optuna TPE, ASHA), or list it.

    dr4sr tune --space search_spaces/gamma_sweep.yaml --out runs/gamma [--dataset D] [--backbone B]
               [--smoke-test] [--resume] [--dry-run] [--set KEY=VALUE] [--store DIR]
               [--storage URL] [--track mlflow|wandb] [--num-trials N]
    dr4sr tune --space search_spaces/tpe_recipe.yaml --out runs/tpe --resume --num-trials 40   # extend
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from dr4sr.config import deep_merge, parse_overrides
from dr4sr.errors import ConfigError


def add_tracking_args(p: argparse.ArgumentParser, records: str, default: str, unit: str) -> None:
    from dr4sr.search.tracking import TRACKERS

    p.add_argument("--storage", default=None, metavar="URL",
                   help=f"Optuna storage (a SQLAlchemy URL) that records {records}; default: {default}"
                        "sqlite:///OUT/optuna.db (`dr4sr dashboard OUT` shows it)")
    p.add_argument("--track", choices=TRACKERS, default=None,
                   help=f"also log every {unit} to MLflow ($MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db) or "
                        "W&B (offline unless $WANDB_MODE is set: runs under OUT/wandb/)")


def add_tune_args(p: argparse.ArgumentParser) -> None:
    from dr4sr.cli_args import non_negative_float, positive_int
    from dr4sr.search.study import SMOKE_EPOCHS, SMOKE_GRID_VALUES, SMOKE_TRIALS, SMOKE_USERS

    p.add_argument("--space", required=True, help="a search_spaces/*.yaml file")
    p.add_argument("--dataset", default=None, help="override the space's dataset (name or path)")
    p.add_argument("--backbone", default=None, help="override the space's backbone")
    p.add_argument("--out", required=True, help="study folder (Tune state, trials, results.csv, plots)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None, help="artifact store shared by the trials (default $DR4SR_ARTIFACTS "
                                                 "or ./artifacts)")
    p.add_argument("--preset", default=None, help="a preset (e.g. paper-era) under the space's set: and --set; "
                                                  "replaces the space's own preset:")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed `dr4sr run` key for every trial (budgets), e.g. --set train.max_epochs=50")
    p.add_argument("--smoke-test", action="store_true",
                   help=f"a dense sample of {SMOKE_USERS} users, {SMOKE_EPOCHS} epochs per trial, tiny stage "
                        f"budgets; a grid space keeps the first {SMOKE_GRID_VALUES} values of each key "
                        f"(gamma_sweep.yaml: 3 x 2 = 6 trials), an Optuna space runs at most {SMOKE_TRIALS} "
                        "trials. Every output says 'smoke test'")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study in --out (Tuner.restore)")
    p.add_argument("--num-trials", type=positive_int, default=None,
                   help="an Optuna space's trial count (default: the space's search.num_trials); with --resume, a "
                        "larger count extends a finished study with new trials that learn from the old ones")
    p.add_argument("--dry-run", action="store_true", help="check everything, print the trials (grid) or the "
                                                          "space and exit")
    p.add_argument("--max-concurrent", type=positive_int, default=None,
                   help="trials at once (default: the space's)")
    p.add_argument("--gpus-per-trial", type=non_negative_float, default=0.0,
                   help="fractional GPU per single-worker trial")
    add_tracking_args(p, "the study and its trials", "the space's search.storage, else ", "trial")
    p.add_argument("--driver-resource", default=None,
                   help="custom resource for multi-worker trials' drivers (cluster.yaml: TRAIN_DRIVER)")
    # SUPPRESS: without the flag, `dr4sr --verbose tune` keeps its value
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="also show Ray Tune's own progress tables and Ray's log lines")


def resolve_space(args):
    """The space file with the command line's dataset/backbone/--set applied, validated again."""

    from dr4sr.search.space import load_space
    from dr4sr.search.validate import validate_space

    space = load_space(args.space).with_run(args.dataset, args.backbone)
    if getattr(args, "preset", None):
        space = dataclasses.replace(space, preset=args.preset)
    if args.overrides:
        space = dataclasses.replace(space, fixed=deep_merge(space.fixed, parse_overrides(args.overrides)))
    return validate_space(space)


def describe(space) -> str:
    s = space.search
    lines = [f"space {space.name} ({space.path}): {space.variant} / {space.backbone} on {space.dataset}, "
             f"objective {space.objective} (max), search {s.kind}"
             + (f", {s.num_trials} trials, TPE seed {s.seed}" if s.kind == "optuna" else "")
             + (f", ASHA {s.asha}" if s.asha else "")]
    if space.preset:
        lines.append(f"preset: {space.preset}")
    if space.fixed:
        lines.append(f"fixed: {json.dumps(space.fixed)}")
    for d in space.dimensions:
        lines.append(f"  {d.key}: {d.kind} " + (f"{list(d.values)}" if d.values else f"[{d.low}, {d.high}]"))
    if s.warm_start:
        lines.append(f"{len(s.warm_start)} warm-start points, run first:")
        lines += [f"  {i:3d}  " + ", ".join(f"{k}={v}" for k, v in p.items()) for i, p in enumerate(s.warm_start)]
    if s.kind == "grid":
        points = space.grid_points()
        lines.append(f"{len(points)} trials:")
        lines += [f"  {i:3d}  " + ", ".join(f"{k}={v}" for k, v in p.items()) for i, p in enumerate(points)]
    lines += [f"note: {n}" for n in space.notes]
    return "\n".join(lines)


def study_from_args(args):
    """Every check before anything is written or scheduled (a dry run stops on the same errors)."""
    from dr4sr.paths import require_folders
    from dr4sr.search.sample import sample_dataset
    from dr4sr.search.study import SMOKE_USERS, StudyOptions, smoke_space
    from dr4sr.search.study_folder import check_study_folder
    from dr4sr.search.validate import check_datasets

    folder = out_folder_of(args.out)
    require_folders(out=folder.local, store=args.store)
    space = resolve_space(args)
    check_datasets(space, args.data_dir, download=not args.dry_run,
                   where="--dataset" if args.dataset else f"{space.path}: dataset")
    folder.pull(delete=True)  # a study on s3://: its working copy as the bucket has it (nothing for a local one)
    check_study_folder(folder.local, args.resume, space.name, args.smoke_test)
    if args.num_trials and space.search.kind != "optuna":
        raise ConfigError(f"--num-trials: {space.path} is a grid space, which runs every point of its dimensions")
    if args.num_trials and args.resume:
        from dr4sr.search.study_folder import extension

        extension(folder.local, space, args.num_trials)  # an unfinished study stops here, before any work
    opts = StudyOptions(folder.local, args.store, args.data_dir, args.smoke_test, args.resume,
                        gpus_per_trial=args.gpus_per_trial, driver_resource=args.driver_resource,
                        max_concurrent=args.max_concurrent, storage=args.storage, track=args.track,
                        num_trials=args.num_trials, out_uri=folder.uri if folder.remote else None)
    if args.smoke_test:
        data = space.dataset  # a dry run writes nothing, so it lists the space on the full dataset
        if not args.dry_run:
            data = str(sample_dataset(space.dataset, folder.local / "data", SMOKE_USERS, args.data_dir).resolve())
            folder.push("data")  # trials on other nodes read the sample from their working copy
        space = smoke_space(space, data)
    if args.num_trials and not args.resume:  # a new study: the given count, after the smoke cap
        space = dataclasses.replace(space, search=dataclasses.replace(space.search, num_trials=args.num_trials))
    return space, opts


def out_folder_of(spec: str):
    """--out as an OutFolder (a local folder, or a working copy of s3://...), with a line that says where
    the working copy of a remote one is."""
    from dr4sr.storage.workcopy import OutFolder

    folder = OutFolder(spec)
    if folder.remote is not None:
        print(f"[out] {folder.sync_note()}", flush=True)
    return folder


def cmd_tune(args) -> int:
    import sys

    from dr4sr.paths import smoke_label
    from dr4sr.search.study import StudyInterrupted, max_epochs

    space, opts = study_from_args(args)
    if args.smoke_test:
        print(smoke_label(max_epochs(space)), flush=True)
    print(describe(space), flush=True)
    if args.dry_run:
        return 0
    from dr4sr.search.study import run_study

    try:
        run_study(space, opts)
    except StudyInterrupted as exc:  # Tune saved its state; the partial results are written
        if getattr(args, "debug", False):
            raise
        print(f"dr4sr: {exc.line}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


def add_grid_args(p: argparse.ArgumentParser) -> None:
    from dr4sr.search.grid import DATASETS, default_backbones, default_variants

    p.add_argument("--backbones", nargs="+", default=default_backbones())
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=default_variants(), help="must include backbone (the baseline)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", required=True, help="grid folder: <dataset>/<backbone>/<variant>-seed<S>, table3.*")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None, help="artifact store shared by all runs")
    p.add_argument("--space", default=None, help="also run this study per (dataset, backbone) cell and retrain "
                                                 "its best trial with the seeds (variant 'tuned')")
    p.add_argument("--preset", default=None, help="a preset (e.g. paper-era) for every run, under --set")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--smoke-test", action="store_true",
                   help="one seed, each dataset cut to a dense sample of users, 2 epochs, tiny stage budgets")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="GPU fraction per run (packs runs on a GPU)")
    p.add_argument("--baselines", nargs="*", default=[], metavar="NAME",
                   help="data-centric baselines as rows above the models (infae: once per dataset; melt: "
                        "at every seed, from that seed's SASRec backbone run)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="runs at once (default: as many as the cluster's CPUs/GPUs fit now)")
    add_tracking_args(p, "every ended cell as a trial (a rerun keeps the last URL given)", "", "cell")
    p.add_argument("--dry-run", action="store_true", help="list the runs and which are already finished")
    p.add_argument("--status", action="store_true",
                   help="show the grid in --out: finished, running and remaining runs, wall times, ETA; then exit")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="copy the finished runs' metrics.json and user_metrics.parquet (no weights) to DIR in the "
                        "grid's layout, rewrite its table3.* there, then exit")


def cmd_grid(args) -> int:
    from dr4sr.paths import require_folders
    from dr4sr.search.grid import GridOptions, finished, label, plan, planned_runs, run_grid, weights

    folder = out_folder_of(args.out)  # a grid on s3://: its working copy, brought up to date here
    out = folder.local
    if args.status:
        from dr4sr.search.grid_status import format_status

        folder.pull(skip=lambda rel: not (rel.endswith(".json") and rel.count("/") in (0, 3)))  # no run files
        print(format_status(out, planned_runs(out)))
        return 0
    folder.pull(skip=weights, delete=not args.export)  # the driver starts: the bucket is the record
    if args.export:
        import json

        from dr4sr.search.grid import write_grid_table
        from dr4sr.search.grid_status import export_records

        runs = planned_runs(out)
        copied = export_records(out, runs, Path(args.export))
        written = write_grid_table(Path(args.export), json.loads((out / "grid.json").read_text()))
        print(f"exported {len(copied)} of {len(runs)} runs to {args.export}; wrote " + ", ".join(map(str, written)))
        return 0

    require_folders(out=out, store=args.store)
    opts = GridOptions(out, args.backbones, args.datasets, args.variants, args.seeds, args.store,
                       args.data_dir, args.smoke_test, args.space, parse_overrides(args.overrides),
                       preset=args.preset, gpus_per_run=args.gpus_per_run, max_concurrent=args.max_concurrent,
                       baselines=args.baselines, storage=args.storage, track=args.track,
                       out_uri=folder.uri if folder.remote else None)
    opts.validate()
    if args.space:
        resolve_space(argparse.Namespace(space=args.space, dataset=None, backbone=None, overrides=args.overrides,
                                         preset=args.preset))
    if args.dry_run:
        from dr4sr.pipeline import VARIANTS, recipe

        runs = plan(opts, {label(d): d for d in opts.datasets})
        for r in runs:
            stages = f"  [{' > '.join(recipe(r.variant, r.backbone, opts.preset))}]" if r.variant in VARIANTS else ""
            print(f"{'done' if finished(r.dir(opts.out)) else 'todo'}  {r.label}  -> {r.dir(opts.out)}{stages}")
        print(f"{len(runs)} runs" + (f", plus a {args.space} study per (dataset, backbone) cell" if args.space else ""))
        return 0
    summary = run_grid(opts)
    return 1 if summary["failed"] else 0


def register(sub) -> None:
    p = sub.add_parser("tune", help="run a search space as a Ray Tune study (grid / Optuna TPE + ASHA)")
    add_tune_args(p)
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("grid", help="the benchmark grid (backbones x datasets x variants x seeds) and Table 3")
    add_grid_args(p)
    p.set_defaults(func=cmd_grid)
