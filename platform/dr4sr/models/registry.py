"""Explicit registry of backbones: name -> (model class, typed config, default YAML).

Adding a backbone = one entry here plus its module and `configs/<name>.yaml`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dr4sr.config import CONFIG_DIR, from_dict, load_yaml
from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone, BuildContext
from dr4sr.models.cl4srec import CL4SRec, CL4SRecConfig
from dr4sr.models.fmlp import FMLP, FMLPConfig
from dr4sr.models.gcegnn import GCEGNN, GCEGNNConfig
from dr4sr.models.gru4rec import GRU4Rec, GRU4RecConfig
from dr4sr.models.sasrec import SASRec, SASRecConfig
from dr4sr.train.augment import cl4srec_auxiliary


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    model_cls: Callable[[Any, BuildContext], Backbone]
    config_cls: type
    # optional auxiliary objective (CL4SRec), built from (model config, TrainingInput)
    auxiliary: Callable[[Any, Any], Any] | None = None

    @property
    def yaml_path(self):
        return CONFIG_DIR / f"{self.name}.yaml"

    def default_config(self) -> dict:
        """Defaults from `configs/<name>.yaml` (sections: model, train)."""
        return load_yaml(self.yaml_path) if self.yaml_path.exists() else {}


BACKBONES: dict[str, BackboneSpec] = {
    "sasrec": BackboneSpec("sasrec", SASRec, SASRecConfig),
    "gru4rec": BackboneSpec("gru4rec", GRU4Rec, GRU4RecConfig),
    "fmlp": BackboneSpec("fmlp", FMLP, FMLPConfig),
    "gcegnn": BackboneSpec("gcegnn", GCEGNN, GCEGNNConfig),
    "cl4srec": BackboneSpec("cl4srec", CL4SRec, CL4SRecConfig, auxiliary=cl4srec_auxiliary),
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; registered: {sorted(BACKBONES)}") from None


def build_backbone(name: str, model_cfg: dict | Any, ctx: BuildContext) -> Backbone:
    spec = get_backbone(name)
    cfg = model_cfg if isinstance(model_cfg, spec.config_cls) else from_dict(spec.config_cls, model_cfg, "model.")
    return spec.model_cls(cfg, ctx)
