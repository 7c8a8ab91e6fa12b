"""What the DR4SR+ upper steps cost: SASRec on Beauty, the same data and epochs, with and without them.

    python benchmarks/personalizer_overhead.py [--epochs 3] [--repeats 2] [--dataset beauty] [--backbone sasrec]

Three settings, each in its own child process (so each peak RSS is its own), alternated `--repeats`
times so a change in the machine's load hits them alike:
  off      personalizer disabled (the plain backbone run)
  weights  personalizer on, warm-up 0, no upper steps (t_lower larger than the run): g_phi's lower-step cost
  bilevel  personalizer on, warm-up 0, t_lower 30 (the paper's): the full DR4SR+ step
Per setting: train wall seconds per epoch (the loop's own timer; evaluation excluded), process CPU
seconds per epoch (train + evaluation), seconds inside upper steps, peak RSS. The overhead is against `off`.
Results are appended to benchmarks/results/personalizer_overhead.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "personalizer_overhead.txt"
SETTINGS = {
    "off": [],
    "weights": ["personalizer.enabled=true", "personalizer.warmup_epochs=0", "personalizer.t_lower=1000000000"],
    "bilevel": ["personalizer.enabled=true", "personalizer.warmup_epochs=0", "personalizer.t_lower=30"],
}


def child(backbone: str, dataset: str, setting: str, epochs: int) -> dict:
    """Train `epochs` epochs in this process; CPU seconds are taken at every epoch end."""
    import torch

    torch.set_num_threads(1)
    from dr4sr.config import parse_overrides
    from dr4sr.train.loop import LoopContext
    from dr4sr.train.runner import build_run_config, prepare_splits
    from dr4sr.train.worker import TrainingInput, run_worker

    cpu_marks: list[float] = []

    class Timed(LoopContext):
        show_progress = False

        def end_epoch(self, epoch, metrics, state_fn):
            cpu_marks.append(time.process_time())

    overrides = [f"train.max_epochs={epochs}", f"train.patience={epochs + 1}", *SETTINGS[setting]]
    cfg = build_run_config(backbone, dataset, parse_overrides(overrides))
    splits = prepare_splits(cfg)
    start = time.process_time()
    m = run_worker(TrainingInput(cfg, splits, splits.train), Timed())["metrics"]
    marks = [start, *cpu_marks]
    p = m.get("personalizer", {})
    return {"setting": setting, "train_s_per_epoch": m["seconds_per_epoch"],
            "cpu_s_per_epoch": (marks[-1] - marks[0]) / epochs, "eval_s_per_epoch": m["eval_seconds_per_epoch"],
            "upper_steps": p.get("upper_steps", 0), "upper_s_per_epoch": p.get("upper_seconds", 0.0) / epochs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "epochs": m["epochs"],
            "batches_per_epoch": -(-m["train_rows"] // cfg.train.batch_size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--backbone", default="sasrec")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.backbone, args.dataset, args.child, args.epochs)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(HERE.parent / "platform")}
    started, load0 = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for rep in range(args.repeats):
        for setting in SETTINGS:
            out = subprocess.run([sys.executable, __file__, "--child", setting, "--epochs", str(args.epochs),
                                  "--dataset", args.dataset, "--backbone", args.backbone],
                                 env=env, check=True, capture_output=True, text=True).stdout
            runs[setting].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {rep} {setting}: {runs[setting][-1]}", flush=True)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    base = {k: mean([r[k] for r in runs["off"]]) for k in ("train_s_per_epoch", "cpu_s_per_epoch", "peak_rss_mb")}
    lines = [f"# {args.dataset} / {args.backbone}, started {started}, {args.epochs} epochs x {args.repeats} repeats "
             f"per setting, load average {load0:.1f} at start / {os.getloadavg()[0]:.1f} at end, "
             f"{platform.machine()} {os.cpu_count()} cores, torch threads 1",
             "setting   train-s/ep  (vs off)   cpu-s/ep  (vs off)   upper-s/ep  upper-steps/ep  peakMB  (vs off)"]
    for setting, rs in runs.items():
        t, c, u = (mean([r[k] for r in rs]) for k in ("train_s_per_epoch", "cpu_s_per_epoch", "upper_s_per_epoch"))
        mem = mean([r["peak_rss_mb"] for r in rs])
        steps = mean([r["upper_steps"] for r in rs]) / args.epochs
        lines.append(f"{setting:9} {t:10.2f} {100 * (t / base['train_s_per_epoch'] - 1):+8.1f}% "
                     f"{c:10.2f} {100 * (c / base['cpu_s_per_epoch'] - 1):+8.1f}% {u:11.2f} {steps:15.1f} "
                     f"{mem:7.0f} {mem - base['peak_rss_mb']:+8.0f}")
    lines.append("per run (train-s/ep): " + "; ".join(
        f"{s} " + " ".join(f"{r['train_s_per_epoch']:.2f}" for r in rs) for s, rs in runs.items()))
    text = "\n".join(lines) + "\n\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
