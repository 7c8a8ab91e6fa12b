"""A search-space study as a Ray job: the same arguments and code as `dr4sr tune`.

    ray job submit --address http://<head>:8265 --working-dir . \
        --runtime-env-json '{"env_vars": {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}}' -- \
        python jobs/tune.py --space search_spaces/tpe_regen.yaml --out /mnt/dr4sr/studies/tpe-toys \
        [--dataset D] [--backbone B] [--smoke-test] [--resume] [--dry-run] [--gpus-per-trial 0.25] [--verbose]

`--out` must be an absolute path on storage every node sees (Tune's storage and the trial folders live
there), or s3://bucket/prefix (docs/SCALING.md). Resubmit with `--resume` after `ray job stop` or a lost
head: finished trials are not rerun.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before anything imports ray

from train import SOURCE_ROOT, connect  # noqa: E402,F401  jobs/train.py: sys.path setup and joining the cluster

from dr4sr import cli  # noqa: E402


def main(argv: list[str] | None = None, command: str = "tune") -> int:
    import argparse

    from dr4sr.search.cli import add_grid_args, add_tune_args

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=f"jobs/{command}.py")
    (add_tune_args if command == "tune" else add_grid_args)(parser)
    args = parser.parse_args(argv)
    if not (os.path.isabs(args.out) or args.out.startswith("s3://")):
        parser.error(f"--out must be an absolute path outside the working dir (Ray deletes the working dir copy "
                     f"after the job) or s3://bucket/prefix, got {args.out!r}")
    prog = f"jobs/{command}.py"
    print(f"{prog}: dr4sr from {os.path.dirname(cli.__file__)}", flush=True)
    if getattr(args, "verbose", False):
        os.environ["DR4SR_VERBOSE"] = "1"  # read by connect(): Ray's own lines reach the job log
    if not getattr(args, "dry_run", False):
        connect(prog)
    return cli.main([command, *argv])


if __name__ == "__main__":
    sys.exit(main())
