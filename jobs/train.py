"""One training run as a Ray job: the same code path as `dr4sr train`, connected to the running cluster.

    export RAY_USAGE_STATS_ENABLED=0
    ray job submit --address http://<head>:8265 --working-dir . -- \
        python jobs/train.py --dataset beauty --backbone sasrec --out /mnt/shared/runs/sasrec-beauty \
        [--set model.dropout=0.2] [--workers 4] [--gpus] [--smoke-test]

The working dir upload holds `platform/` (the source root); this file puts it first on sys.path, so the
uploaded code runs even where `dr4sr` is not pip-installed, and Ray Train workers get the same code as
a `py_modules` entry. `--out` must be an absolute path on storage every node sees: the working dir is a
temporary copy that Ray deletes. See jobs/README.md.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before anything imports ray

SOURCE_ROOT = Path(__file__).resolve().parent.parent / "platform"
if SOURCE_ROOT.is_dir() and str(SOURCE_ROOT) not in sys.path:
    sys.path.insert(0, str(SOURCE_ROOT))

from dr4sr import cli  # noqa: E402  (needs the sys.path entry above)


def build_parser():
    import argparse

    p = argparse.ArgumentParser(prog="jobs/train.py", description="train one backbone (Ray job entrypoint)")
    cli.add_data_args(p)
    cli.add_train_args(p)
    p.add_argument("--verbose", action="store_true", help="show Ray's own log lines (hidden by default)")
    return p


def cluster_address() -> str | None:
    """The cluster to join: $RAY_ADDRESS (always set inside a Ray job), else a `ray start` cluster on this node."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.utils import read_ray_address

        return read_ray_address()  # /tmp/ray/ray_current_cluster, written by `ray start`
    except Exception:  # private helper moved or unreadable: run without a cluster
        return None


def job_runtime_env_fields() -> set[str]:
    """runtime_env fields the job was submitted with (Ray passes the job config to the driver in the env)."""
    try:
        from ray._private.ray_constants import RAY_JOB_CONFIG_JSON_ENV_VAR

        config = json.loads(os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR) or "{}")
        return set((config.get("runtime_env") or {}).keys())
    except Exception:
        return set()


def connect(prog: str = "jobs/train.py") -> bool:
    """Join the running cluster; Ray Train workers import the uploaded dr4sr through `py_modules`.
    `prog` names the entrypoint in the lines it prints (jobs/tune.py and jobs/grid.py call it too)."""
    address = cluster_address()
    if address is None:
        return False  # no cluster: the runner runs locally (or starts a local Ray for --workers > 1)
    import ray

    runtime_env = {}
    if "py_modules" not in job_runtime_env_fields():  # a field set by the job may not be set again
        runtime_env["py_modules"] = [str(SOURCE_ROOT / "dr4sr")]
    try:
        # epoch lines reach the driver through a file (dr4sr.train.ray_train.ProgressTail), so the
        # workers' and Ray's own output stays out of the job log unless --verbose
        from dr4sr.train.ray_train import verbose

        ray.init(address="auto", runtime_env=runtime_env or None, log_to_driver=verbose(),
                 logging_level="INFO" if verbose() else "ERROR")
    except ConnectionError as exc:
        if os.environ.get("RAY_ADDRESS"):
            raise
        print(f"{prog}: no Ray cluster at {address} ({exc}); running locally", file=sys.stderr)
        return False
    print(f"{prog}: connected to Ray at {address}: {ray.cluster_resources()}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if not os.path.isabs(args.out):
        build_parser().error(f"--out must be an absolute path outside the working dir (Ray deletes the "
                             f"working dir copy after the job), got {args.out!r}")
    print(f"jobs/train.py: dr4sr from {Path(cli.__file__).parent}")  # the uploaded copy inside a job
    if args.verbose:
        os.environ["DR4SR_VERBOSE"] = "1"
        argv.remove("--verbose")
    connect()
    # the exact `dr4sr train` code path, including its error handling
    return cli.main((["--verbose"] if args.verbose else []) + ["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
