"""An ∞-AE run: config -> the backbones' splits -> kernel, lambda chosen on validation -> test ->
metrics.json + user_metrics.parquet in the layout of a training run (report and paired tests read it)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from dr4sr.baselines.infae import KernelRidge, NotPositiveDefinite, interaction_matrix, query_ranks, train_row_ranks
from dr4sr.config import CONFIG_DIR, deep_merge, from_dict, load_yaml, to_dict
from dr4sr.data.splits import Splits
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.eval.ranking import metrics_from_ranks
from dr4sr.paths import require_writable
from dr4sr.train.config import VALID_METRICS, DataConfig

SMOKE_INFAE = {"infae": {"max_users": 1000}}  # 1,000 users: every step in seconds (under --set, like train's)
DTYPES = ("float32", "float64")
TEST_QUERIES = ("history", "train")


@dataclasses.dataclass
class InfAEConfig:
    lambdas: list[float] = dataclasses.field(default_factory=lambda: [0.3, 1.0, 3.0, 10.0, 30.0, 100.0])
    valid_metric: str = "ndcg@20"
    dtype: str = "float32"
    depth: int = 1
    w_std: float = 2 ** 0.5
    b_std: float = 0.1
    test_query: str = "history"
    block_users: int = 512
    max_users: int = 0
    seed: int = 0

    def validate(self) -> None:
        if not self.lambdas:
            raise ConfigError("infae.lambdas must list at least one value")
        if any(lam <= 0 for lam in self.lambdas):
            raise ConfigError(f"infae.lambdas must all be > 0 (0 interpolates the training rows, so validation "
                              f"would score the input itself), got {self.lambdas}")
        for key, allowed in (("valid_metric", VALID_METRICS), ("dtype", DTYPES), ("test_query", TEST_QUERIES)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"infae.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in ("depth", "block_users"):
            if getattr(self, key) < 1:
                raise ConfigError(f"infae.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_users < 0:
            raise ConfigError(f"infae.max_users must be >= 0 (0 = all users), got {self.max_users}")
        if self.w_std <= 0 or self.b_std < 0:
            raise ConfigError(f"infae.w_std must be > 0 and infae.b_std >= 0, got {self.w_std}, {self.b_std}")


@dataclasses.dataclass
class InfAERunConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    infae: InfAEConfig = dataclasses.field(default_factory=InfAEConfig)


def build_infae_config(dataset: str | None = None, overrides: dict | None = None, data_dir: str | None = None,
                       smoke_test: bool = False, seed: int | None = None) -> InfAERunConfig:
    """YAML defaults <- dataset/data-dir/seed arguments <- smoke-test sample <- --set overrides."""
    merged = load_yaml(CONFIG_DIR / "infae.yaml")
    cli: dict = {"data": {}, "infae": {}}
    if dataset is not None:
        cli["data"]["dataset"] = dataset
    if data_dir is not None:
        cli["data"]["data_dir"] = data_dir
    if seed is not None:
        cli["infae"]["seed"] = seed
    merged = deep_merge(merged, cli)
    if smoke_test:
        merged = deep_merge(merged, SMOKE_INFAE)
    return from_dict(InfAERunConfig, deep_merge(merged, overrides or {}))


def sample_users(splits: Splits, n: int, seed: int) -> Splits:
    """A seeded random subset of users (in file order), all items kept."""
    if not n or n >= splits.num_users:
        return splits
    idx = np.sort(np.random.default_rng(seed).choice(splits.num_users, n, replace=False))
    return dataclasses.replace(
        splits, users=splits.users[idx], train=[splits.train[i] for i in idx],
        train_full=[splits.train_full[i] for i in idx], valid_target=splits.valid_target[idx],
        test_target=splits.test_target[idx], fingerprint=f"{splits.fingerprint}:users{n}-seed{seed}")


def fit_and_rank(cfg: InfAEConfig, splits: Splits, log=print) -> tuple[dict, np.ndarray]:
    """Kernel, lambda search on validation, test with the best lambda; returns (metrics, test ranks)."""
    dtype = np.dtype(cfg.dtype)
    x = interaction_matrix(splits.train, splits.num_items, dtype)
    t0 = time.time()
    model = KernelRidge(x, splits.num_items, dtype, cfg.block_users, cfg.depth, cfg.w_std, cfg.b_std)
    kernel_seconds = time.time() - t0
    log(f"kernel {x.shape[0]:,} x {x.shape[0]:,} users ({dtype}) in {kernel_seconds:.1f} s; "
        f"tr(K)/U = {model.scale:.5g}")
    search, best = [], None
    valid_hist, valid_target = splits.history("valid"), splits.target("valid")
    for lam in cfg.lambdas:
        t0 = time.time()
        try:
            at = model.dual(lam)
        except NotPositiveDefinite as exc:
            log(f"lambda {lam:g}: skipped, {exc}")
            search.append({"lambda": lam, "error": str(exc)})
            continue
        ranks = train_row_ranks(model, at, lam, valid_target, valid_hist)
        valid = metrics_from_ranks(ranks)
        search.append({"lambda": lam, "reg": model.reg(lam), "valid": valid, "seconds": time.time() - t0})
        log(f"lambda {lam:g}: valid {cfg.valid_metric} {valid[cfg.valid_metric]:.4f} ({time.time() - t0:.1f} s)")
        if best is None or valid[cfg.valid_metric] > best["valid"][cfg.valid_metric]:
            best = {"lambda": lam, "valid": valid, "at": at}  # ties: the first in grid order
        del at
    if best is None:
        raise DR4SRError(f"no lambda in {cfg.lambdas} gave a positive definite K + cI in {cfg.dtype}; "
                         "use larger lambdas or --set infae.dtype=float64")
    t0 = time.time()
    test_hist, test_target = splits.history("test"), splits.target("test")
    if cfg.test_query == "history":
        model.release()  # the two U x U arrays; test needs only A and X
        ranks = query_ranks(model, best["at"], test_hist, test_target, test_hist)
    else:
        ranks = train_row_ranks(model, best["at"], best["lambda"], test_target, test_hist)
        model.release()
    metrics = {"valid": best["valid"], "test": metrics_from_ranks(ranks), "best_lambda": best["lambda"],
               "lambda_search": search, "users": int(x.shape[0]), "items": int(splits.num_items),
               "interactions": int(x.nnz), "kernel_seconds": kernel_seconds, "test_seconds": time.time() - t0}
    return metrics, ranks


def run_infae(dataset: str, out_dir: str | Path, seed: int | None = None, overrides: dict | None = None,
              data_dir: str | None = None, smoke_test: bool = False, log=print) -> dict:
    """One ∞-AE run into `out_dir` (used as given: the CLI adds the -smoke suffix); returns metrics.json's dict."""
    from dr4sr.train.runner import prepare_splits
    from dr4sr.train.worker import peak_memory_mb, reset_peak_memory, write_outputs

    reset_peak_memory()  # this run's own peak, also in a grid worker that ran other runs before it
    started = time.time()
    cfg = build_infae_config(dataset, overrides, data_dir, smoke_test, seed)
    out = require_writable(out_dir, "output folder")
    splits = sample_users(prepare_splits(cfg), cfg.infae.max_users, cfg.infae.seed)  # only reads cfg.data
    metrics, ranks = fit_and_rank(cfg.infae, splits, log)
    metrics.update({"variant": "infae", "dataset": Path(cfg.data.dataset).stem.lower(), "seed": cfg.infae.seed,
                    "wall_seconds": time.time() - started, **peak_memory_mb(None), "config": to_dict(cfg)})
    if smoke_test:
        metrics["smoke_test"] = f"smoke test ({metrics['users']:,} users): not a result"
    write_outputs(out, metrics, ranks, splits.users)
    return metrics


def format_infae(metrics: dict) -> str:
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    rows = [metrics["smoke_test"]] if metrics.get("smoke_test") else []
    rows.append(" " * 6 + " ".join(f"{k:>10}" for k in keys))
    rows += [f"{s:6}" + " ".join(f"{metrics[s][k]:10.4f}" for k in keys) for s in ("valid", "test")]
    rows.append(f"best lambda {metrics['best_lambda']:g} of {[e['lambda'] for e in metrics['lambda_search']]}, "
                f"{metrics['users']:,} users, {metrics['wall_seconds']:.1f} s, "
                f"peak RSS {metrics['peak_rss_mb']:,.0f} MB")
    return "\n".join(rows)
