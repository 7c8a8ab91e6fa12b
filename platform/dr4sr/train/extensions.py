"""How a room above train/ (the DR4SR+ personalizer) changes a training run without train/ importing it.

A room registers an `Extension` under the run-config section that switches it on (`<section>.enabled`).
`train_stage` looks the enabled one up on the driver and ships its `setup` inside the TrainingInput; the
function is pickled by reference, so a Ray Train worker imports the room's module by itself. On every
worker `setup` returns a `RunExtension`: it may replace the training rows, gives `fit` its `LoopHook`
(the loop's extension point) and, after training, a metrics section and output files.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.train.config import RunConfig
from dr4sr.train.loop import LoopContext, LoopHook


class RunExtension:
    """One worker's part of an extension (these defaults change nothing)."""

    def train_rows(self, sequences: Sequence[np.ndarray],
                   row_weights: np.ndarray | None) -> tuple[Sequence[np.ndarray], np.ndarray | None, np.ndarray | None]:
        """(rows the model trains on, their weights, which rows are fixed at weight 1 or None)."""
        return sequences, row_weights, None

    def row_presets(self) -> np.ndarray | None:
        """Per row of `train_rows`, a weight the extension sets itself (the batches carry it), or None."""
        return None

    def hook(self, loss: str, aux_loss) -> LoopHook:
        return LoopHook()

    def results(self, model, ctx: LoopContext) -> tuple[dict, dict[str, Any]]:
        """After training, the best weights restored: (its metrics.json section, output files by name).
        A `.parquet` file is a dict of equal-length columns, a `.pt` file a state dict; rank 0's are kept."""
        return {}, {}


# setup(run config, TrainingInput, the model's training_mode, loop context) -> RunExtension
Setup = Callable[[RunConfig, Any, str, LoopContext], RunExtension]


@dataclasses.dataclass(frozen=True)
class Extension:
    section: str  # the run-config section with the `enabled` switch
    setup: Setup  # a module-level function: it travels to Ray workers by reference
    describe: Callable[[dict], str] | None = None  # one line of `format_metrics` from its metrics section


EXTENSIONS: dict[str, Extension] = {}


def register(extension: Extension) -> None:
    EXTENSIONS[extension.section] = extension


def enabled_extension(cfg: RunConfig) -> Extension | None:
    """The registered extension this run switches on, if any."""
    on = [f.name for f in dataclasses.fields(cfg) if getattr(getattr(cfg, f.name), "enabled", False) is True]
    if len(on) > 1:
        raise ConfigError(f"one extension per training run; enabled: {', '.join(on)}")
    if not on:
        return None
    if on[0] not in EXTENSIONS:
        raise DR4SRError(f"{on[0]}.enabled is set but nothing registered the {on[0]} extension with the "
                         f"training loop: import its module first (dr4sr.personalizer, dr4sr.baselines.melt; the dr4sr "
                         f"CLI does)")
    return EXTENSIONS[on[0]]
