"""A MELT run: SASRec trained by the project's loop with the MELT extension on (configs/melt.yaml over
configs/sasrec.yaml) -> metrics.json, user_metrics.parquet, model.pt and melt.pt in a training run's layout."""
from __future__ import annotations

from pathlib import Path

from dr4sr.config import CONFIG_DIR, load_yaml
from dr4sr.errors import ConfigError

ENCODER = "sasrec"


def run_melt(dataset: str, out_dir: str | Path, seed: int | None = None, overrides: dict | None = None,
             data_dir: str | None = None, smoke_test: bool = False, log=print, resume: bool = False) -> dict:
    """One MELT run into `out_dir` (used as given: the CLI adds the -smoke suffix); returns metrics.json's dict.
    `seed` sets train.seed under --set overrides."""
    import dr4sr.baselines.melt  # noqa: F401  (registers the extension with the training loop)
    from dr4sr.config import deep_merge
    from dr4sr.paths import require_writable, smoke_label
    from dr4sr.train.runner import build_run_config, train_stage

    overrides = deep_merge({"train": {"seed": seed}} if seed is not None else {}, overrides or {})
    cfg = build_run_config(ENCODER, dataset, overrides, data_dir, smoke_test,
                           defaults=load_yaml(CONFIG_DIR / "melt.yaml"))
    if not cfg.melt.enabled:
        raise ConfigError("melt.enabled=false would train plain SASRec: use `dr4sr train --backbone sasrec`")
    out = require_writable(out_dir, "output folder")
    extra = {"variant": "melt", "dataset": Path(cfg.data.dataset).stem.lower(), "seed": cfg.train.seed}
    if smoke_test:
        extra["smoke_test"] = smoke_label(cfg.train.max_epochs)
    return train_stage(cfg, out, resume=resume, extra_metrics=extra, log=log)
