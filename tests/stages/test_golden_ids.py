"""Artifact ids pinned as literals for the tiny chain dataset at smoke size: users and running grids hold
artifacts under these ids, so a refactor that changes one would silently retrain (or orphan) them.

The values were computed once by the code that first wrote such artifacts; change one only together with
a format version bump and a note in README.md ("Artifact format").
"""
from __future__ import annotations

import pytest

from dr4sr.pipeline import RunRequest, prepare_run

MINE = "1afcdfa4b27fa7e5"
BACKBONE = "df01dbf2356d33ce"  # sasrec on the original rows, also the default regenerator init
DEFAULT = {"pretrain": "88360ccaee2692f6", "regenerate": "a1190eeb34eef093"}
NO_DIVERSITY = {"pretrain": "3fdecbd9897d376c", "regenerate": "6199e9387a98e532"}
# paper-era: the init trains on pattern rows; its id hashes those rows' content
PAPER_INIT = "8600f90ae362b880"
PAPER = {"pretrain": "1d536b284e5d2804", "regenerate": "9a48ded8793d0c31"}
GCEGNN_GRAPH = "ab1b9399cec38a9f"
GCEGNN_TRAIN = "6e396767e27c9f4f"


def stage_ids(tiny_dataset, tmp_path, variant, preset=None, backbone="sasrec", build_mine=False) -> dict:
    from dr4sr.mining.stage import run_mine_stage

    req = RunRequest(str(tiny_dataset), backbone=backbone, variant=variant, smoke_test=True,
                     store_root=str(tmp_path / "store"), preset=preset)
    run = prepare_run(req, tmp_path / "out")
    if build_mine:
        from dr4sr.pipeline import regen_config

        run_mine_stage(run.splits, regen_config(run.req, run.regen_overrides).mine, run.store)
        run = prepare_run(req, tmp_path / "out")
    return {p.label: p.id for p in run.plan}


@pytest.mark.parametrize("variant", ["dr4sr", "dr4sr+", "constant"])
def test_default_regeneration_chain(tiny_dataset, tmp_path, variant):
    ids = stage_ids(tiny_dataset, tmp_path, variant)
    assert ids["mine patterns"] == MINE
    assert ids["train sasrec (regenerator init)"] == BACKBONE
    assert ids["pretrain regenerator"] == DEFAULT["pretrain"]
    assert ids["regenerate dataset"] == DEFAULT["regenerate"]


def test_no_diversity_chain(tiny_dataset, tmp_path):
    ids = stage_ids(tiny_dataset, tmp_path, "dr4sr-no-diversity")
    assert (ids["mine patterns"], ids["train sasrec (regenerator init)"]) == (MINE, BACKBONE)
    assert ids["pretrain regenerator"] == NO_DIVERSITY["pretrain"]
    assert ids["regenerate dataset"] == NO_DIVERSITY["regenerate"]


def test_paper_era_chain_with_its_init_on_pattern_rows(tiny_dataset, tmp_path):
    ids = stage_ids(tiny_dataset, tmp_path, "dr4sr", preset="paper-era", build_mine=True)
    assert ids["mine patterns"] == MINE
    assert ids["train sasrec (regenerator init)"] == PAPER_INIT
    assert ids["pretrain regenerator"] == PAPER["pretrain"]
    assert ids["regenerate dataset"] == PAPER["regenerate"]


def test_backbone_targets(tiny_dataset, tmp_path):
    assert stage_ids(tiny_dataset, tmp_path, "backbone") == {"train sasrec": BACKBONE}
    assert stage_ids(tiny_dataset, tmp_path, "backbone", backbone="gcegnn")["train gcegnn"] == GCEGNN_TRAIN


def test_gcegnn_graph_of_the_original_sequences(tiny_dataset):
    from dr4sr.artifacts import artifact_id
    from dr4sr.config import from_dict
    from dr4sr.models.gcegnn import GCEGNNConfig, graph_spec
    from dr4sr.train.graph import graph_inputs
    from dr4sr.train.runner import build_run_config, prepare_splits

    cfg = build_run_config("gcegnn", str(tiny_dataset), smoke_test=True)
    splits = prepare_splits(cfg)
    spec = graph_spec(from_dict(GCEGNNConfig, cfg.model, "model."))
    assert artifact_id("graph", spec.key(splits.num_items), graph_inputs(spec, splits.fingerprint, None)) \
        == GCEGNN_GRAPH


def test_pattern_target(tiny_dataset, tmp_path):
    # its id hashes its rows' content: the same rows as the paper-era init
    ids = stage_ids(tiny_dataset, tmp_path, "pattern", build_mine=True)
    assert ids == {"mine patterns": MINE, "train sasrec": PAPER_INIT}
