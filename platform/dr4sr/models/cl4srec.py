"""CL4SRec (Xie et al., ICDE'22) as the paper ran it: SASRec + an InfoNCE loss between two augmented
views of each training sequence. The model is SASRec plus one extra `[mask]` embedding used by the
mask augmentation; the contrastive objective is the auxiliary loss its registry entry names ("cl4srec",
resolved by dr4sr.train.losses to dr4sr.train.augment.cl4srec_auxiliary), so the training loop is
unchanged and this module never imports the training code.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dr4sr.models.base import BuildContext, init_weights
from dr4sr.models.sasrec import SASRec, SASRecConfig

CL_SOURCES = ("training", "original")
CL_SIMILARITIES = ("dot", "cosine")


@dataclasses.dataclass
class CL4SRecConfig(SASRecConfig):
    cl_weight: float = 0.1  # weight of the contrastive loss added to the next-item loss
    cl_temperature: float = 1.0
    cl_similarity: str = "dot"  # "dot" (the authors' inner product) or "cosine"
    crop_eta: float = 0.2  # crop keeps floor(eta * n) items (at least 1)
    mask_gamma: float = 0.7  # mask replaces floor(gamma * n) items by [mask]
    reorder_beta: float = 0.2  # reorder shuffles a window of floor(beta * n) items
    # per-dataset mask rates (dataset name -> gamma), overriding mask_gamma for that dataset
    mask_gamma_by_dataset: dict[str, float] = dataclasses.field(default_factory=dict)
    # views from the batch's own training rows ("training") or from the original sequences ("original")
    cl_source: str = "training"

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        super().validate()
        if self.cl_weight < 0:
            raise ConfigError(f"model.cl_weight must be >= 0, got {self.cl_weight}")
        if self.cl_temperature <= 0:
            raise ConfigError(f"model.cl_temperature must be > 0, got {self.cl_temperature}")
        rates = {"crop_eta": self.crop_eta, "mask_gamma": self.mask_gamma, "reorder_beta": self.reorder_beta}
        rates.update({f"mask_gamma_by_dataset.{k}": v for k, v in self.mask_gamma_by_dataset.items()})
        for key, value in rates.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"model.{key} must be a rate in [0, 1], got {value!r}")
        if self.cl_source not in CL_SOURCES:
            raise ConfigError(f"model.cl_source must be one of {CL_SOURCES}, got {self.cl_source!r}")
        if self.cl_similarity not in CL_SIMILARITIES:
            raise ConfigError(f"model.cl_similarity must be one of {CL_SIMILARITIES}, got {self.cl_similarity!r}")

    def mask_rate(self, dataset: str | None) -> float:
        from pathlib import Path

        if dataset:
            for name in (dataset, Path(dataset).stem):
                if name in self.mask_gamma_by_dataset:
                    return float(self.mask_gamma_by_dataset[name])
        return self.mask_gamma


class CL4SRec(SASRec):
    def __init__(self, cfg: CL4SRecConfig, ctx: BuildContext):
        super().__init__(cfg, ctx)
        # one extra row: [mask] = num_items + 1, an input token only, never a candidate
        self.item_embedding = nn.Embedding(ctx.num_items + 2, cfg.hidden_size, padding_idx=0)
        init_weights(self.item_embedding)

    @property
    def mask_token(self) -> int:
        return self.num_items + 1

    def item_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[: self.num_items + 1]
