"""Explicit registry of backbones: name -> (model class, typed config, default YAML).

Adding a backbone = one entry here plus its module and `configs/<name>.yaml`. What a backbone needs
beyond its own module is named here and supplied from outside: an auxiliary training objective by name
(resolved by dr4sr.train.losses), an item graph by its spec (built by the caller, see dr4sr.data.graph).
Which targets a row trains is the model's own `training_mode` (dr4sr.data.batching: next items, one per
prefix, or BERT4Rec's masked items).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dr4sr.config import CONFIG_DIR, from_dict, load_yaml
from dr4sr.data.graph import GraphSpec, build_item_graph, graph_sequences
from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone, BuildContext
from dr4sr.models.bert4rec import BERT4Rec, BERT4RecConfig
from dr4sr.models.cl4srec import CL4SRec, CL4SRecConfig
from dr4sr.models.fmlp import FMLP, FMLPConfig
from dr4sr.models.gcegnn import GCEGNN, GCEGNNConfig, graph_spec
from dr4sr.models.gru4rec import GRU4Rec, GRU4RecConfig
from dr4sr.models.sasrec import SASRec, SASRecConfig


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    model_cls: Callable[[Any, BuildContext], Backbone]
    config_cls: type
    # the auxiliary objective trained beside the next-item loss: a name in dr4sr.train.losses.AUXILIARY_LOSSES
    auxiliary: str | None = None
    # the item graph the model propagates over (BuildContext.item_graph), from its config
    item_graph: Callable[[Any], GraphSpec] | None = None

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
    "gcegnn": BackboneSpec("gcegnn", GCEGNN, GCEGNNConfig, item_graph=graph_spec),
    "cl4srec": BackboneSpec("cl4srec", CL4SRec, CL4SRecConfig, auxiliary="cl4srec"),
    "bert4rec": BackboneSpec("bert4rec", BERT4Rec, BERT4RecConfig),  # not in the paper: trains on the Cloze task
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; registered: {sorted(BACKBONES)}") from None


def build_backbone(name: str, model_cfg: dict | Any, ctx: BuildContext) -> Backbone:
    """The model; an item graph it needs and `ctx` lacks is built here from ctx's sequences, uncached
    (training passes the store's copy in)."""
    spec = get_backbone(name)
    cfg = model_cfg if isinstance(model_cfg, spec.config_cls) else from_dict(spec.config_cls, model_cfg, "model.")
    if spec.item_graph is not None and ctx.item_graph is None:
        gspec = spec.item_graph(cfg)
        graph = build_item_graph(gspec, graph_sequences(gspec, ctx.original_train, ctx.training_rows), ctx.num_items)
        ctx = dataclasses.replace(ctx, item_graph=graph)
    return spec.model_cls(cfg, ctx)
