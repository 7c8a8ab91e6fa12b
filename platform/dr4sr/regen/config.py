"""Typed configs of the regenerator stages (pretrain, regenerate) and the YAML they are read from.

Sections of `configs/regenerator.yaml` (every key overridable with `--set section.key=value`):
  mine        forwarded to the mining stage (alpha, beta, ...), validated by dr4sr.mining
  init        how the regenerator is initialised (a SASRec trained on the same data, or scratch)
  regen       the model: sizes, K, diversity promoter on/off
  pretrain    the pre-training loop
  regenerate  hybrid inference: gamma, seed, length cap
"""
from __future__ import annotations

import dataclasses
from typing import Any

from dr4sr.config import CONFIG_DIR, deep_merge, from_dict, load_yaml
from dr4sr.errors import ConfigError

YAML_PATH = CONFIG_DIR / "regenerator.yaml"


@dataclasses.dataclass
class RegeneratorConfig:
    hidden_size: int = 64
    num_heads: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    inner_size: int = 256
    dropout: float = 0.5
    activation: str = "gelu"
    max_positions: int = 50  # learned positions, shared bound for source and target
    layer_norm_eps: float = 1e-12
    k: int = 5  # number of memories (diversity factor K)
    diversity: bool = True  # false = vanilla encoder-decoder (the "-diversity" ablation)
    pattern_layers: int = 2  # transformer that encodes the target pattern into pi

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"regen.hidden_size ({self.hidden_size}) must be divisible by "
                              f"regen.num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"regen.dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ConfigError(f"regen.activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.k < 1:
            raise ConfigError(f"regen.k must be >= 1, got {self.k}")
        for key in ("encoder_layers", "decoder_layers", "max_positions", "pattern_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"regen.{key} must be >= 1, got {getattr(self, key)}")


@dataclasses.dataclass
class InitConfig:
    mode: str = "sasrec"  # "sasrec": copy item embeddings/encoder from a trained SASRec; "scratch"
    # overrides of the SASRec run that provides the init (configs/sasrec.yaml sections model/train)
    sasrec: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.mode not in ("sasrec", "scratch"):
            raise ConfigError(f"init.mode must be 'sasrec' or 'scratch', got {self.mode!r}")


@dataclasses.dataclass
class PretrainConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5  # epochs without validation-loss improvement before stopping
    valid_fraction: float = 0.05  # seeded hold-out of pairs
    restrict_to_source: bool = True  # CE over source items + EOS only (as the authors trained)
    tau_start: float = 1.0  # Gumbel-softmax temperature, annealed geometrically over training
    tau_end: float = 0.1
    entropy_weight: float = 0.0  # entropy term on pi (authors: "minimal impact")
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        for key in ("lr", "batch_size", "max_epochs", "tau_start", "tau_end"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"pretrain.{key} must be positive, got {getattr(self, key)}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"pretrain.valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.patience < 1:
            raise ConfigError(f"pretrain.patience must be >= 1, got {self.patience}")


@dataclasses.dataclass
class RegenerateConfig:
    gamma: float = 0.1  # probability of a generative (any item) step; else restrictive (source items)
    seed: int = 0
    max_length: int = 10  # length cap of a regenerated pattern
    min_length: int = 2  # EOS is masked before this many items (length-1 rows carry no target)
    restrict: str = "source"  # restrictive step: any unused source item ("source", the paper's) or "ordered"
    span: int = 0  # with restrict=ordered: a pattern's source positions lie within `span` (0 = no limit)
    batch_size: int = 256  # source sequences per decoding batch (x K rows)
    device: str = "auto"

    def validate(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"regenerate.gamma must be in [0, 1], got {self.gamma}")
        if self.max_length < 1:
            raise ConfigError(f"regenerate.max_length must be >= 1, got {self.max_length}")
        if not 0 <= self.min_length <= self.max_length:
            raise ConfigError(f"regenerate.min_length must be in [0, max_length], got {self.min_length}")
        if self.batch_size < 1:
            raise ConfigError(f"regenerate.batch_size must be >= 1, got {self.batch_size}")
        if self.restrict not in ("source", "ordered"):
            raise ConfigError(f"regenerate.restrict must be 'source' or 'ordered', got {self.restrict!r}")
        if self.span < 0 or self.span == 1 or (self.span and self.restrict != "ordered"):
            raise ConfigError(f"regenerate.span must be 0 (no limit) or >= 2 and needs "
                              f"regenerate.restrict=ordered, got {self.span}")


@dataclasses.dataclass
class RegenPipelineConfig:
    mine: dict[str, Any] = dataclasses.field(default_factory=dict)  # validated by the mining stage
    init: InitConfig = dataclasses.field(default_factory=InitConfig)
    regen: RegeneratorConfig = dataclasses.field(default_factory=RegeneratorConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    regenerate: RegenerateConfig = dataclasses.field(default_factory=RegenerateConfig)


def build_regen_config(overrides: dict | None = None, dataset: str | None = None) -> RegenPipelineConfig:
    """YAML defaults <- per-dataset section `datasets.<name>` <- overrides (e.g. from --set)."""
    raw = load_yaml(YAML_PATH) if YAML_PATH.exists() else {}
    per_dataset = raw.pop("datasets", {}) or {}
    merged = raw
    if dataset is not None and dataset in per_dataset:
        merged = deep_merge(merged, per_dataset[dataset])
    merged = deep_merge(merged, overrides or {})
    return from_dict(RegenPipelineConfig, merged)
