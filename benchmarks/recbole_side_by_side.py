"""Our SASRec vs RecBole 1.2.1's SASRec on the same Beauty file, in one run: seconds per training epoch,
seconds per full evaluation of all users, peak RSS of each side's process, and test NDCG@20 / Recall@20.

    .venv/bin/python benchmarks/recbole_side_by_side.py --threads 2                    # full comparison (hours)
    .venv/bin/python benchmarks/recbole_side_by_side.py --epochs 3 --threads 2         # timing only
    .venv/bin/python benchmarks/recbole_side_by_side.py --users 500 --epochs 1 --threads 1   # quick check

RecBole runs in its own venv (default .venv-recbole, ~1.4 GB), created on first use (about 15 min on a
loaded 2-core machine). Each side runs in its own subprocess (peak RSS from os.wait4); logs, the atomic
files and summary.json go to --work (default runs/recbole). Both sides get the same protocol: each sequence
cut to its last 50 items (our split's truncation), leave-one-out in time order (last item test, second-last
valid), full ranking over all items with the history masked, early stopping on valid NDCG@20 with our
patience, model/training settings read from our sasrec config. RecBole trains every prefix as its own
sample, we train seq-to-seq: the same (history, target) pairs, which the "train pairs" row checks.
RecBole's SASRec only offers BPR or CE; for our `bce` its loss is swapped for ours (-log s(pos) - log(1-s(neg)),
one uniform negative per target); --recbole-loss bpr keeps stock BPR.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# torch pinned exactly: a bare `torch` resolves to PyPI's multi-GB CUDA build, ==2.13.0 to the local +cpu wheel.
# No setuptools<70: torch 2.13 itself requires setuptools>=77.0.3 (pip reports the conflict).
RECBOLE_DEPS = ["torch==2.13.0", "numpy>=1.26,<1.27", "pandas<2.3", "scipy<1.14", "tqdm",
                "colorlog==4.7.2", "colorama==0.4.4", "scikit-learn", "pyyaml", "tensorboard", "texttable"]
# --no-deps: RecBole also lists ray, thop, plotly, psutil, tabulate; its SASRec/Trainer path never imports them
RECBOLE_PKG = "recbole==1.2.1"
GOAL_RATIO = 50.0


def fail(msg: str) -> None:
    sys.exit(f"recbole_side_by_side: error: {msg}")


def ensure_venv(venv: Path, work: Path) -> tuple[Path, float]:
    """The RecBole venv's python (created if missing) and the seconds spent creating it."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import recbole, torch; assert recbole.__version__ == '1.2.1', recbole.__version__"]
    if py.exists():
        if subprocess.run(check, capture_output=True).returncode == 0:
            return py, 0.0
        fail(f"{venv} exists but has no working recbole 1.2.1; remove it (rm -r {venv}) to have it rebuilt")
    t0 = time.perf_counter()
    log = work / "recbole-venv-install.log"
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "--no-input", *RECBOLE_DEPS],
             [str(py), "-m", "pip", "install", "--no-input", "--no-deps", RECBOLE_PKG], check]
    print(f"creating {venv} (log: {log}) ...", flush=True)
    with open(log, "w") as f:
        for cmd in steps:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                fail(f"creating the RecBole venv failed at: {' '.join(cmd)} (see {log}; remove {venv} before retrying)")
    return py, time.perf_counter() - t0


def prepare_data(args, work: Path, max_len: int):
    """Our loader's sequences, optionally a seeded sample of users, cut to max_len, written for both sides."""
    import numpy as np

    from dr4sr.data.datasets import load_dataset

    data = load_dataset(args.dataset, args.data_dir)
    users, seqs = data.users, data.sequences
    name, ours_dataset = Path(args.dataset).stem.lower(), args.dataset
    if args.users:
        if args.users > len(seqs):
            fail(f"--users {args.users} exceeds the {len(seqs)} users of {args.dataset}")
        pick = np.sort(np.random.default_rng(args.seed).choice(len(seqs), args.users, replace=False))
        users, seqs = users[pick], [seqs[i] for i in pick]
    seqs = [s[-max_len:] for s in seqs]  # our split's cut; RecBole then sees the same training pairs
    if args.users:  # relabel items 1..k so both sides rank over the same items (those in the sample)
        vocab = np.unique(np.concatenate(seqs))
        seqs = [np.searchsorted(vocab, s) + 1 for s in seqs]
        name = f"{name}-u{args.users}-s{args.seed}"
        ours_dataset = str(work / "data" / f"{name}.txt")
        Path(ours_dataset).parent.mkdir(parents=True, exist_ok=True)
        Path(ours_dataset).write_text("".join(f"{u} {' '.join(map(str, s))}\n" for u, s in zip(users, seqs)))
    inter = work / "recbole_data" / name / f"{name}.inter"
    inter.parent.mkdir(parents=True, exist_ok=True)
    with open(inter, "w") as f:  # RecBole atomic file; the position is the time order
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, s in zip(users, seqs):
            f.writelines(f"{u}\t{i}\t{t}\n" for t, i in enumerate(s))
    return name, ours_dataset


def run_child(cmd, env, log: Path, cwd: Path, what: str) -> float:
    """Run one side in its own process; returns its peak RSS in MB (os.wait4: that child's rusage alone)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        fail(f"{what} failed (rc {proc.returncode}): {tail[0]} -- full log: {log}")
    return usage.ru_maxrss / 1024  # Linux: KiB


def child_env(args) -> dict:
    n = str(args.threads)
    return {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": str(ROOT / "platform"), "DR4SR_DATA_DIR": str(args.data_dir)}


def run_ours(args, work: Path, dataset: str) -> dict:
    out, store = work / "ours", work / "ours-store"
    shutil.rmtree(store, ignore_errors=True)  # a fresh store: a cached train artifact would replay old timings
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "dr4sr.cli", "run", "--dataset", dataset, "--backbone", "sasrec",
           "--variant", "backbone", "--out", str(out), "--store", str(store), "--set", "train.device=cpu"]
    if args.epochs:
        cmd += ["--set", f"train.max_epochs={args.epochs}"]
    print(f"ours: {' '.join(cmd[1:])} (log {work / 'ours.log'})", flush=True)
    rss = run_child(cmd, child_env(args), work / "ours.log", ROOT, "our run")
    m = json.loads((out / "metrics.json").read_text())
    return {"epochs": m["epochs"], "train_s": m["seconds_per_epoch"], "eval_s": m["eval_seconds_per_epoch"],
            "rss_mb": rss, "test": m["test"], "train_pairs": m["train_targets"]}


def recbole_config(args, cfg, mc, work: Path) -> dict:
    t = cfg.train
    return {
        "data_path": str(work / "recbole_data"), "checkpoint_dir": str(work / "recbole_saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # the file is already 5-core: keep every user and item
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)", "rm_dup_inter": None,
        "MAX_ITEM_LIST_LENGTH": cfg.data.max_len,
        "n_layers": mc.num_layers, "n_heads": mc.num_heads, "hidden_size": mc.hidden_size,
        "inner_size": mc.inner_size, "hidden_dropout_prob": mc.dropout, "attn_dropout_prob": mc.dropout,
        "hidden_act": mc.activation, "layer_norm_eps": mc.layer_norm_eps,
        "loss_type": "CE" if args.recbole_loss == "ce" else "BPR",  # bce: BPR's sampling, our loss swapped in
        "train_neg_sample_args": None if args.recbole_loss == "ce" else {
            "distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 20], "valid_metric": t.valid_metric.upper(),
        "metric_decimal_place": 6,
        "train_batch_size": t.batch_size, "eval_batch_size": t.eval_batch_size, "learning_rate": t.lr,
        "weight_decay": t.weight_decay, "epochs": args.epochs or t.max_epochs, "stopping_step": t.patience,
        "eval_step": 1, "seed": t.seed, "reproducibility": True, "use_gpu": False, "show_progress": False,
        "worker": 0, "log_wandb": False, "save_dataset": False, "save_dataloaders": False,
    }


def run_recbole(args, work: Path, name: str, cfg, mc) -> dict:
    py, took = ensure_venv(args.venv, work)
    if took:
        print(f"RecBole venv created in {took:.0f} s", flush=True)
    spec, result = work / "recbole_spec.json", work / "recbole_result.json"
    result.unlink(missing_ok=True)
    shutil.rmtree(work / "recbole_saved", ignore_errors=True)  # one checkpoint per run, not a pile
    spec.write_text(json.dumps({"dataset": name, "threads": args.threads, "bce": args.recbole_loss == "bce",
                                "out": str(result),
                                "config": recbole_config(args, cfg, mc, work)}, indent=1))
    env = child_env(args)
    # torch >= 2.6 defaults torch.load(weights_only=True), which refuses RecBole's checkpoint (it pickles its
    # Config); RecBole 1.2.1 passes no weights_only, so this env var restores the old default for its reload
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    print(f"RecBole: {py} {Path(__file__).name} --_recbole-driver {spec} (log {work / 'recbole.log'})", flush=True)
    cmd = [str(py), __file__, "--_recbole-driver", str(spec)]
    rss = run_child(cmd, env, work / "recbole.log", work, "RecBole run")  # cwd=work: its log_tensorboard/ lands there
    r = json.loads(result.read_text())
    return {**r, "rss_mb": rss, "venv_s": took}


def recbole_driver(spec_file: str) -> int:
    """Runs inside the RecBole venv: train with early stopping, time each epoch and evaluation, test."""
    spec = json.loads(Path(spec_file).read_text())
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(spec["threads"])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    class BCE(torch.nn.Module):  # our loss in BPRLoss's place: same (pos_score, neg_score) arguments
        def forward(self, pos, neg):
            return (F.softplus(-pos) + F.softplus(neg)).mean()

    config = Config(model="SASRec", dataset=spec["dataset"], config_dict=spec["config"])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train.dataset).to(config["device"])
    if spec["bce"]:
        model.loss_fct = BCE()
    trainer = Trainer(config, model)
    times = {"train": [], "valid": []}
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*a, **k):
        t0 = time.perf_counter()
        out = train_epoch(*a, **k)
        times["train"].append(time.perf_counter() - t0)
        return out

    def timed_valid(*a, **k):
        t0 = time.perf_counter()
        score, result = valid_epoch(*a, **k)
        times["valid"].append(time.perf_counter() - t0)
        print(f"recbole epoch {len(times['train'])}: train {times['train'][-1]:.1f} s, "
              f"valid {times['valid'][-1]:.1f} s, valid {config['valid_metric']} {score:.4f}", flush=True)
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    trainer.fit(train, valid, saved=True, show_progress=False, verbose=False)
    t0 = time.perf_counter()
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)  # needs the weights_only env
    test_s = time.perf_counter() - t0
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    Path(spec["out"]).write_text(json.dumps({
        "users": dataset.user_num - 1, "items": dataset.item_num - 1, "train_pairs": len(train.dataset),
        "epochs": len(times["train"]), "train_s": mean(times["train"]), "eval_s": mean(times["valid"]),
        "test_eval_s": test_s, "test": {k: float(v) for k, v in test_result.items()}}))
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--_recbole-driver":
        return recbole_driver(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty", help="benchmark name or a text-format file (default beauty)")
    ap.add_argument("--data-dir", type=Path,
                    default=Path(os.environ.get("DR4SR_DATA_DIR", ROOT.parent / "shared" / "datasets")))
    ap.add_argument("--epochs", type=int, default=0, help="cap both sides' epochs (timing only: not converged)")
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8), help="torch threads on both sides")
    ap.add_argument("--users", type=int, default=0, help="a seeded sample of N users, the same for both sides")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --users sample")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "recbole", help="work folder (default runs/recbole)")
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv-recbole", help="RecBole's venv (created if missing)")
    ap.add_argument("--recbole-loss", choices=("bce", "bpr", "ce"), default=None,
                    help="default: our config's loss (bce: ours swapped into RecBole's SASRec; ce: full softmax)")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--skip-recbole", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "platform"))
    from dr4sr.config import from_dict
    from dr4sr.data.datasets import load_dataset
    from dr4sr.errors import DR4SRError
    from dr4sr.models.registry import get_backbone
    from dr4sr.train.runner import build_run_config

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        cfg = build_run_config("sasrec", args.dataset, {}, str(args.data_dir))
        mc = from_dict(get_backbone("sasrec").config_cls, cfg.model, "model.")
        args.recbole_loss = args.recbole_loss or cfg.train.loss
        name, ours_dataset = prepare_data(args, work, cfg.data.max_len)
        data = load_dataset(ours_dataset, str(args.data_dir))
    except DR4SRError as exc:
        fail(str(exc))
    res = {"ours": None, "RecBole": None}
    if not args.skip_ours:
        res["ours"] = {**run_ours(args, work, ours_dataset), "users": data.num_users, "items": data.num_items}
    if not args.skip_recbole:
        res["RecBole"] = run_recbole(args, work, name, cfg, mc)
    sides = [k for k, v in res.items() if v]
    (work / "summary.json").write_text(json.dumps(res, indent=1))
    rows = [("users", "users", "{:,}"), ("items", "items", "{:,}"), ("train pairs", "train_pairs", "{:,}"),
            ("epochs run", "epochs", "{}"), ("s / train epoch", "train_s", "{:.2f}"),
            ("s / full eval (valid)", "eval_s", "{:.2f}"), ("peak RSS MB", "rss_mb", "{:,.0f}")]
    print(f"\n{name}, {args.threads} thread(s), RecBole loss {args.recbole_loss}"
          + (f", epochs capped at {args.epochs}: NDCG NOT converged" if args.epochs else ""))
    print(f"{'':24}" + "".join(f"{s:>12}" for s in sides))
    for label, key, fmt in rows:
        print(f"{label:24}" + "".join(f"{fmt.format(res[s][key]):>12}" for s in sides))
    for k in ("ndcg@20", "recall@20", "ndcg@10", "recall@10"):
        print(f"{'test ' + k:24}" + "".join(f"{res[s]['test'][k]:12.4f}" for s in sides))
    if res["RecBole"] and res["RecBole"].get("test_eval_s"):
        print(f"RecBole test evaluation: {res['RecBole']['test_eval_s']:.2f} s")
    if len(sides) == 2:
        o, r = res["ours"], res["RecBole"]
        if (o["users"], o["items"]) != (r["users"], r["items"]) or o["train_pairs"] != r["train_pairs"]:
            print("WARNING: users/items/train pairs differ between the two sides: not the same data")
        ratio = r["train_s"] / o["train_s"]
        better = o["test"]["ndcg@20"] >= r["test"]["ndcg@20"]
        print(f"speed ratio RecBole/ours per epoch: {ratio:.1f}x; eval {r['eval_s'] / o['eval_s']:.1f}x")
        verdict = "met" if ratio >= GOAL_RATIO and better else "NOT met"
        note = " (NDCG part not meaningful: epochs capped)" if args.epochs else ""
        print(f"goal >= {GOAL_RATIO:.0f}x faster per epoch at equal or better test NDCG@20: {verdict}{note}")
    print(f"wrote {work / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
