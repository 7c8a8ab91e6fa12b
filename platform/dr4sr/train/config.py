"""Typed configs of a target-model training run."""
from __future__ import annotations

import dataclasses
from typing import Any

from dr4sr.errors import ConfigError
from dr4sr.personalizer.config import PersonalizerConfig
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


@dataclasses.dataclass
class RunConfig:
    backbone: str = "sasrec"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # validated by the backbone's config class
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    personalizer: PersonalizerConfig = dataclasses.field(default_factory=PersonalizerConfig)  # DR4SR+
