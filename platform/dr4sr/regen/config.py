"""Typed configs of the regenerator stages (pretrain, regenerate) and the YAML they are read from.

Sections of `configs/regenerator.yaml` (every key overridable with `--set section.key=value`):
  mine        forwarded to the mining stage (alpha, beta, ...), validated by dr4sr.mining
  init        how the regenerator is initialised (a SASRec trained on the same data, or scratch)
  compose     which rows the target model trains on besides the regenerated ones (regen/compose.py)
  regen       the model: sizes, K, diversity promoter on/off
  pretrain    the pre-training loop
  regenerate  hybrid inference: gamma, seed, length cap
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dr4sr.config import CONFIG_DIR, deep_merge, from_dict, load_yaml
from dr4sr.errors import ConfigError
from dr4sr.regen.compose import ComposeConfig
from dr4sr.smoke import SMOKE_REGEN

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
    data: str = "original"  # what that SASRec trains on: "original", or "pattern" (mined + original, the authors')
    copy: str = "embeddings+encoder"  # copy item embeddings and shape-matching encoder tensors, or "embeddings"

    def validate(self) -> None:
        if self.mode not in ("sasrec", "scratch"):
            raise ConfigError(f"init.mode must be 'sasrec' or 'scratch', got {self.mode!r}")
        if self.data not in ("original", "pattern"):
            raise ConfigError(f"init.data must be 'original' or 'pattern', got {self.data!r}")
        if self.copy not in ("embeddings+encoder", "embeddings"):
            raise ConfigError(f"init.copy must be 'embeddings+encoder' or 'embeddings', got {self.copy!r}")


@dataclasses.dataclass
class PretrainConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5  # epochs without validation-loss improvement before stopping; 0 = run max_epochs, keep the last
    valid_fraction: float = 0.05  # seeded hold-out of pairs (0 = none: early stopping then watches the train loss)
    restrict_to_source: bool = True  # CE over source items + EOS only (as the authors trained)
    tau_start: float = 1.0  # Gumbel-softmax temperature
    tau_end: float = 0.1  # its floor
    tau_schedule: str = "run"  # "run": geometric tau_start -> tau_end over all steps; "step": x tau_decay per batch
    tau_decay: float = 0.995  # with tau_schedule=step (the authors': floor reached after ~2.6 Beauty epochs)
    causal_encoder: bool = False  # source encoder causal in training (the authors' train/inference mismatch)
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
        if self.patience < 0:
            raise ConfigError(f"pretrain.patience must be >= 0 (0 = no early stopping), got {self.patience}")
        if self.tau_schedule not in ("run", "step"):
            raise ConfigError(f"pretrain.tau_schedule must be 'run' or 'step', got {self.tau_schedule!r}")
        if not 0.0 < self.tau_decay <= 1.0:
            raise ConfigError(f"pretrain.tau_decay must be in (0, 1], got {self.tau_decay}")


@dataclasses.dataclass
class RegenerateConfig:
    gamma: float = 0.1  # probability of a generative (any item) step; else restrictive (source items)
    seed: int = 0
    max_length: int = 10  # length cap of a regenerated pattern
    min_length: int = 2  # rows shorter than this carry no useful target (see short_rows)
    short_rows: str = "force"  # "force": EOS masked before min_length items; "drop": EOS allowed, short rows dropped
    memories: str | list[int] = "all"  # which memories are decoded per sequence: "all" or indices, e.g. [0]
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
        if self.short_rows not in ("force", "drop"):
            raise ConfigError(f"regenerate.short_rows must be 'force' or 'drop', got {self.short_rows!r}")
        if isinstance(self.memories, str):
            if self.memories != "all":
                raise ConfigError("regenerate.memories must be 'all' or a list of memory indices, "
                                  f"got {self.memories!r}")
        elif not self.memories or len(set(self.memories)) != len(self.memories) or min(self.memories) < 0:
            raise ConfigError(f"regenerate.memories must be distinct indices >= 0, got {self.memories!r}")
        if self.span < 0 or self.span == 1 or (self.span and self.restrict != "ordered"):
            raise ConfigError(f"regenerate.span must be 0 (no limit) or >= 2 and needs "
                              f"regenerate.restrict=ordered, got {self.span}")


@dataclasses.dataclass
class RegenPipelineConfig:
    mine: dict[str, Any] = dataclasses.field(default_factory=dict)  # validated by the mining stage
    init: InitConfig = dataclasses.field(default_factory=InitConfig)
    compose: ComposeConfig = dataclasses.field(default_factory=ComposeConfig)
    regen: RegeneratorConfig = dataclasses.field(default_factory=RegeneratorConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    regenerate: RegenerateConfig = dataclasses.field(default_factory=RegenerateConfig)
    preset: str | None = None  # name of the preset these values came from: recorded, never in an artifact id

    def validate(self) -> None:
        mems = self.regenerate.memories
        if not isinstance(mems, str) and max(mems) >= (self.regen.k if self.regen.diversity else 1):
            raise ConfigError(f"regenerate.memories {mems} out of range: the regenerator has "
                              f"{self.regen.k if self.regen.diversity else 1} memories (regen.k, regen.diversity)")


# Fields added after artifacts keyed on these sections existed: they enter an artifact id only when set
# away from their default, so every earlier id (and cached artifact) stays valid.
ADDED_FIELDS = {"init": ("data", "copy"), "pretrain": ("tau_schedule", "tau_decay", "causal_encoder"),
                "regenerate": ("memories", "short_rows")}


def key_dict(section: str, obj) -> dict:
    """`obj` as a dict for an artifact key, without ADDED_FIELDS that are at their default."""
    out = dataclasses.asdict(obj)
    defaults = type(obj)()
    for name in ADDED_FIELDS.get(section, ()):
        if out[name] == dataclasses.asdict(defaults)[name]:
            del out[name]
    return out


def dataset_key(dataset: str | None) -> str | None:
    """The name per-dataset defaults are looked up by: `toys`, `Toys` and `/data/toys.txt` are all `toys`."""
    return None if dataset is None else Path(dataset).stem.lower()


def build_regen_config(overrides: dict | None = None, dataset: str | None = None, preset: str | None = None,
                       smoke_test: bool = False) -> RegenPipelineConfig:
    """The one resolution of the regeneration config, for `run`, `mine`, `pretrain` and `regenerate` alike:
    YAML defaults <- per-dataset section `datasets.<name>` <- preset <- smoke budgets <- overrides (--set)."""
    from dr4sr.presets import REGEN_SECTIONS, load_preset

    raw = load_yaml(YAML_PATH) if YAML_PATH.exists() else {}
    per_dataset = raw.pop("datasets", {}) or {}
    merged = raw
    name = dataset_key(dataset)
    if name is not None and name in per_dataset:
        merged = deep_merge(merged, per_dataset[name])
    merged = deep_merge(merged, load_preset(preset, REGEN_SECTIONS))
    if smoke_test:
        merged = deep_merge(merged, SMOKE_REGEN)
    merged = deep_merge(merged, overrides or {})
    if preset:
        merged["preset"] = preset
    return from_dict(RegenPipelineConfig, merged)
