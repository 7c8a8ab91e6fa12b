"""A MELT run: SASRec trained by the project's loop with the MELT extension on (configs/melt.yaml over
configs/sasrec.yaml) -> metrics.json, user_metrics.parquet, model.pt and melt.pt in a training run's layout."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from dr4sr.config import CONFIG_DIR, load_yaml
from dr4sr.errors import ConfigError
from dr4sr.train.config import INIT_BACKBONE

ENCODER = "sasrec"


def run_melt(dataset: str, out_dir: str | Path, seed: int | None = None, overrides: dict | None = None,
             data_dir: str | None = None, smoke_test: bool = False, log=print, resume: bool = False,
             backbone_weights: Callable[[int], Path] | None = None) -> dict:
    """One MELT run into `out_dir` (used as given: the CLI adds the -smoke suffix); returns metrics.json's dict.
    `seed` sets train.seed under --set overrides. With melt.init_from=backbone, `backbone_weights(seed)`
    gives the SASRec backbone's model.pt (the caller owns the artifact store: dr4sr.pipeline.backbone_weights)."""
    import dr4sr.baselines.melt  # noqa: F401  (registers the extension with the training loop)
    from dr4sr.config import deep_merge
    from dr4sr.paths import require_writable, smoke_label
    from dr4sr.train.runner import build_run_config, train_stage
    from dr4sr.train.worker import reset_peak_memory

    reset_peak_memory()  # this run's own peak, also in a grid worker that ran other runs before it
    overrides = deep_merge({"train": {"seed": seed}} if seed is not None else {}, overrides or {})
    cfg = build_run_config(ENCODER, dataset, overrides, data_dir, smoke_test,
                           defaults=load_yaml(CONFIG_DIR / "melt.yaml"))
    if not cfg.melt.enabled:
        raise ConfigError("melt.enabled=false would train plain SASRec: use `dr4sr train --backbone sasrec`")
    out = require_writable(out_dir, "output folder")
    if cfg.melt.init_from == INIT_BACKBONE:
        if backbone_weights is None:
            raise ConfigError("melt.init_from=backbone needs the artifact store: run MELT with `dr4sr baseline "
                              "melt` or `dr4sr grid --baselines melt`, or give a model.pt path")
        cfg.melt.init_from = str(backbone_weights(cfg.train.seed))
    extra = {"variant": "melt", "dataset": Path(cfg.data.dataset).stem.lower(), "seed": cfg.train.seed}
    if smoke_test:
        extra["smoke_test"] = smoke_label(cfg.train.max_epochs)
    return train_stage(cfg, out, resume=resume, extra_metrics=extra, log=log)
