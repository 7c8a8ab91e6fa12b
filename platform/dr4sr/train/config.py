"""Typed configs of a target-model training run: sections data, model, train, personalizer and melt.

The `personalizer` section (DR4SR+, paper §4.3; defaults in configs/personalizer.yaml) and the `melt`
section (the MELT baseline; defaults in configs/melt.yaml) live here, below the rooms that implement
them: dr4sr.personalizer and dr4sr.baselines.melt plug into training through dr4sr.train.extensions
and read their section, and train/ never imports them."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dr4sr.errors import ConfigError
from dr4sr.train.losses import LOSSES

VALID_METRICS = ("ndcg@10", "ndcg@20", "recall@10", "recall@20")


@dataclasses.dataclass
class DataConfig:
    dataset: str = "beauty"  # benchmark name or a file path
    data_dir: str | None = None  # else $DR4SR_DATA_DIR, else the download cache
    max_len: int = 50  # sequences are cut to their last max_len items before the split
    k_core: int = 5  # only for raw interaction logs

    def validate(self) -> None:
        if self.max_len < 3:
            raise ConfigError(f"data.max_len must be >= 3, got {self.max_len}")


@dataclasses.dataclass
class TrainConfig:
    loss: str = "bce"  # "bce" (one sampled negative, the paper's) or "ce" (full softmax)
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256  # global batch (split across DDP workers)
    max_epochs: int = 1000
    patience: int = 20  # epochs without validation improvement before stopping
    valid_metric: str = "ndcg@20"
    eval_batch_size: int = 2048
    grad_clip: float = 0.0  # 0 = off
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"train.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.valid_metric not in VALID_METRICS:
            raise ConfigError(f"train.valid_metric must be one of {VALID_METRICS}, got {self.valid_metric!r}")
        for key in ("lr", "batch_size", "max_epochs", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"train.{key} must be positive, got {getattr(self, key)}")
        for key in ("weight_decay", "grad_clip"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.patience < 1:
            raise ConfigError(f"train.patience must be >= 1, got {self.patience}")


DEV_BATCHES = ("train", "holdout")
MODES = ("bilevel", "end-to-end", "constant")
SOURCES = ("original", "mined", "generated")


@dataclasses.dataclass
class PersonalizerConfig:
    enabled: bool = False
    hidden_size: int = 0  # MLP width of g_phi (d -> width -> 2); 0 = the backbone's hidden size d
    temperature: float = 10.0  # Gumbel-softmax temperature (authors' practice ~10)
    detach_hidden: bool = True  # g_phi reads the hidden state without passing gradients back into theta
    warmup_epochs: int = 10  # plain (unweighted) epochs before weighting and upper steps start
    fixed_sources: list[str] = dataclasses.field(default_factory=lambda: ["mined"])  # rows kept at weight 1
    t_lower: int = 30  # lower steps (on theta) per upper step (on phi)
    lr: float = 1e-3  # upper optimizer: SGD
    momentum: float = 0.9
    weight_decay: float = 1e-3
    neumann_terms: int = 3  # K: inverse Hessian ~ step * sum_{n=0..K} (I - step * H)^n
    neumann_step: float = 1e-3
    grad_clip: float = 10.0  # max norm of the hypergradient; 0 = off
    dev_batch: str = "train"  # "train": a fresh shuffled training batch (paper); "holdout": a held-out slice
    holdout_fraction: float = 0.05  # share of training rows held out from theta when dev_batch=holdout
    mode: str = "bilevel"  # "bilevel" (implicit differentiation) or "end-to-end" (ablation: phi on the train loss)
    # or "constant": no g_phi, every re-weighted target gets `constant_weight` (the control for what
    # DR4SR+ learns: its weights stay near 0.5 while fixed rows keep 1)
    constant_weight: float = 0.5
    # mode=constant only: source -> weight of its rows, overriding the rule above for the sources it names
    # (like constant_weight, ignored in the other modes and then left out of the artifact id)
    source_weights: dict[str, float] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.hidden_size < 0:
            raise ConfigError(f"personalizer.hidden_size must be >= 0 (0 = the backbone's), got {self.hidden_size}")
        for key in ("temperature", "lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"personalizer.{key} must be positive, got {getattr(self, key)}")
        for key in ("warmup_epochs", "neumann_terms"):
            if getattr(self, key) < 0:
                raise ConfigError(f"personalizer.{key} must be >= 0, got {getattr(self, key)}")
        if self.t_lower < 1:
            raise ConfigError(f"personalizer.t_lower must be >= 1, got {self.t_lower}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"personalizer.momentum must be in [0, 1), got {self.momentum}")
        for key in ("weight_decay", "grad_clip", "neumann_step"):
            if getattr(self, key) < 0:
                raise ConfigError(f"personalizer.{key} must be >= 0, got {getattr(self, key)}")
        if self.dev_batch not in DEV_BATCHES:
            raise ConfigError(f"personalizer.dev_batch must be one of {DEV_BATCHES}, got {self.dev_batch!r}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"personalizer.holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.mode not in MODES:
            raise ConfigError(f"personalizer.mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.constant_weight <= 1.0:
            raise ConfigError(f"personalizer.constant_weight must be in [0, 1], got {self.constant_weight}")
        bad = sorted(set(self.fixed_sources) - set(SOURCES))
        if bad:
            raise ConfigError(f"personalizer.fixed_sources: unknown source {bad[0]!r}; expected some of {SOURCES}")
        self._check_source_weights()

    def _check_source_weights(self) -> None:
        for source, w in self.source_weights.items():
            key = f"personalizer.source_weights.{source}"
            if source not in SOURCES:
                raise ConfigError(f"{key}: unknown source {source!r}; expected some of {SOURCES}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
                raise ConfigError(f"{key} must be a number in [0, 1], got {w!r}")
        # floats in one order: 1 and 1.0 (or another key order) make the same artifact id
        self.source_weights = {s: float(self.source_weights[s]) for s in SOURCES if s in self.source_weights}

    def row_weight(self, source: str) -> float:
        """mode=constant: the weight of a row of this source."""
        if source in self.source_weights:
            return self.source_weights[source]
        return 1.0 if source in self.fixed_sources else self.constant_weight


INIT_BACKBONE = "backbone"  # melt.init_from: start from the SASRec backbone run of the same data and seed


@dataclasses.dataclass
class MeltConfig:
    """MELT (Kim et al., SIGIR 2023); the meaning of each key is in configs/melt.yaml."""
    enabled: bool = False
    pareto: float = 0.8  # head users: training length above this quantile of lengths
    item_pareto_offset: float = 0.02  # head items: count above the (pareto - offset) quantile of counts
    lambda_user: float = 0.1
    lambda_item: float = 0.4
    curriculum_epochs: int = 180  # the authors' e_max
    init_from: str = ""  # "" (scratch), a SASRec model.pt, or "backbone" (configs/melt.yaml: the SASRec backbone run)
    keep_old: float = 0.0  # the paper's gamma: a rewritten tail item keeps this share of its embedding

    def validate(self) -> None:
        if not 0.0 < self.pareto < 1.0:
            raise ConfigError(f"melt.pareto must be in (0, 1), got {self.pareto}")
        if not 0.0 <= self.item_pareto_offset < self.pareto:
            raise ConfigError(f"melt.item_pareto_offset must be in [0, melt.pareto), got {self.item_pareto_offset}")
        for key in ("lambda_user", "lambda_item", "keep_old"):
            if getattr(self, key) < 0:
                raise ConfigError(f"melt.{key} must be >= 0, got {getattr(self, key)}")
        if self.curriculum_epochs < 1:
            raise ConfigError(f"melt.curriculum_epochs must be >= 1, got {self.curriculum_epochs}")
        if self.init_from not in ("", INIT_BACKBONE) and not Path(self.init_from).is_file():
            raise ConfigError(f"melt.init_from {self.init_from}: no such file (expected '{INIT_BACKBONE}', '' or "
                              f"a SASRec model.pt)")


@dataclasses.dataclass
class RunConfig:
    backbone: str = "sasrec"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # validated by the backbone's config class
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    personalizer: PersonalizerConfig = dataclasses.field(default_factory=PersonalizerConfig)  # DR4SR+
    melt: MeltConfig = dataclasses.field(default_factory=MeltConfig)  # the MELT baseline
