"""The stage graph of each variant's data recipe (dr4sr.pipeline resolves dr4sr+ and constant to the dr4sr
recipe with the personalizer on, and dr4sr-no-diversity to dr4sr with regen.diversity off):

  backbone   [graph] -> train
  pattern    mine -> compose(mined+original) -> [graph] -> train
  dr4sr      mine -> [compose(mined+original) ->] init train -> pretrain -> regenerate
                  -> compose(composition) -> [graph] -> train
(the init is left out with init.mode=scratch; it trains on pattern rows with init.data=pattern; a graph
backbone such as GCE-GNN gets its item graph as a stage of its own).
"""
from __future__ import annotations

from dr4sr.config import from_dict
from dr4sr.mining.stage import MineConfig
from dr4sr.models.registry import get_backbone
from dr4sr.stages.base import Runtime, StageGraph
from dr4sr.stages.kinds import (
    PATTERN_ROWS,
    ComposeStage,
    GraphStage,
    MineStage,
    PretrainStage,
    RegenerateStage,
    TrainStage,
)

RECIPES = ("backbone", "pattern", "dr4sr", "dr4sr-no-diversity")


def variant_graph(variant: str, splits, cfg, rcfg=None, composition: str = "regenerated+mined+original",
                  runtime: Runtime | None = None) -> StageGraph:
    """The graph that trains `cfg` (the target model's RunConfig) on `variant`'s data; `rcfg` is the
    regeneration pipeline's config (unused by backbone)."""
    runtime = runtime or Runtime()
    data = None
    if variant != "backbone":
        mine = MineStage(splits, MineConfig.from_dict(dict(rcfg.mine)), runtime)
        if variant == "pattern":
            data = ComposeStage(splits, PATTERN_ROWS, rcfg.compose, mine)
        else:
            regen = regeneration(splits, rcfg, runtime, mine)
            data = ComposeStage(splits, composition, rcfg.compose, mine, regen)
    return StageGraph(TrainStage(cfg, splits, runtime, data, graph_stage(cfg, splits, data),
                                 content_id=variant == "pattern" and init_on_pattern_rows(rcfg)))


def init_on_pattern_rows(rcfg) -> bool:
    """The regenerator's init trains SASRec on the pattern rows (init.data=pattern, as in the paper-era
    preset). A `pattern` target then hashes its rows' content as that init does, so where the two
    configurations agree (SASRec, same seed and budget) they are one artifact, trained once."""
    return rcfg.init.mode != "scratch" and rcfg.init.data == "pattern"


def regeneration(splits, rcfg, runtime: Runtime, mine: MineStage | None = None) -> RegenerateStage:
    """mine -> SASRec init (unless scratch) -> pretrain -> regenerate (`dr4sr pretrain` runs up to its
    `.pretrain`)."""
    from dr4sr.regen.stage import init_run_config

    mine = mine or MineStage(splits, MineConfig.from_dict(dict(rcfg.mine)), runtime)
    init = None
    if rcfg.init.mode != "scratch":
        rows = ComposeStage(splits, PATTERN_ROWS, rcfg.compose, mine) if init_on_pattern_rows(rcfg) else None
        init = TrainStage(init_run_config(rcfg), splits, runtime, rows, label="train sasrec (regenerator init)",
                          target=False, content_id=rows is not None)
    pre = PretrainStage(splits, rcfg, runtime, mine, init)
    return RegenerateStage(splits, rcfg, runtime, pre, mine)


def graph_stage(cfg, splits, data: ComposeStage | None) -> GraphStage | None:
    """The item graph a graph backbone (GCE-GNN) propagates over, None for the others."""
    spec = get_backbone(cfg.backbone)
    if spec.item_graph is None:
        return None
    return GraphStage(splits, spec.item_graph(from_dict(spec.config_cls, cfg.model, "model.")), data)
