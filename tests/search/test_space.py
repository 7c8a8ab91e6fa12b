"""Search space files: parsing, the grid's points, and validation against the real configs."""
from __future__ import annotations

import textwrap

import pytest

from dr4sr.errors import ConfigError
from dr4sr.search.space import load_space

BASE = """\
dataset: beauty
backbone: sasrec
variant: dr4sr
"""


def write(tmp_path, body: str, name: str = "space.yaml"):
    path = tmp_path / name
    path.write_text(BASE + textwrap.dedent(body))
    return path


def test_grid_points_are_the_product_and_route_to_sections(tmp_path):
    space = load_space(write(tmp_path, """
        set: {pretrain.max_epochs: 3}
        dimensions:
          regenerate.gamma: {grid: [0.0, 0.5]}
          regen.k: {grid: [1, 3, 5]}
        """))
    points = space.grid_points()
    assert len(points) == 6 and points[0] == {"regenerate.gamma": 0.0, "regen.k": 1}
    assert points[1] == {"regenerate.gamma": 0.5, "regen.k": 1}  # Tune's order: the first key varies fastest
    assert points[-1] == {"regenerate.gamma": 0.5, "regen.k": 5}
    run, overrides = space.point_request(points[-1])
    assert run == {"dataset": "beauty", "backbone": "sasrec", "variant": "dr4sr"}
    assert overrides == {"pretrain": {"max_epochs": 3}, "regenerate": {"gamma": 0.5}, "regen": {"k": 5}}
    assert space.objective == "valid_ndcg@20" and space.search.kind == "grid"


def test_run_keys_as_dimensions_and_cells(tmp_path):
    space = load_space(write(tmp_path, """
        dimensions:
          dataset: {grid: [beauty, toys]}
          regen.k: {grid: [1, 3]}
        """))
    run, _ = space.point_request({"dataset": "toys", "regen.k": 3})
    assert run["dataset"] == "toys"
    cell = space.with_run(dataset="yelp", backbone="gru4rec")
    assert [d.key for d in cell.dimensions] == ["regen.k"] and cell.dataset == "yelp" and cell.backbone == "gru4rec"


@pytest.mark.parametrize("body, needle", [
    ("dimensions: {regenerate.gamma: {grid: [0.1, 2.0]}}",
     "dimensions.regenerate.gamma = 2.0: regenerate.gamma must be in [0, 1]"),
    ("dimensions: {regenerate.gama: {grid: [0.1]}}",
     "dimensions.regenerate.gama = 0.1: unknown config key 'regenerate.gama'"),
    ("search: {kind: optuna, num_trials: 2}\ndimensions: {mine.alpha: {int: [1, 5]}}", "dimensions.mine.alpha = 1"),
    ("dimensions: {mine.alphax: {grid: [5]}}", "unknown config key(s) ['alphax']"),
    ("dimensions: {model.dropoutt: {grid: [0.1]}}", "unknown config key 'model.dropoutt'"),
    ("dimensions: {trian.lr: {grid: [0.1]}}", "dimensions.trian.lr: unknown config section 'trian'"),
    ("dimensions: {train.lr: {loguniform: [0.0, 0.1]}}", "need low < high and low > 0"),
    ("dimensions: {train.lr: {normal: [0.0, 0.1]}}", "unknown kind 'normal'"),
    ("dimensions: {train.lr: {uniform: [0.001, 0.1]}}", "search.kind grid takes only grid dimensions"),
    ("search: {kind: optuna, num_trials: 4}\ndimensions: {regen.k: {grid: [1, 3]}}", "OptunaSearch has no grid search"),
    ("search: {kind: optuna}\ndimensions: {regen.k: {int: [1, 3]}}", "search.num_trials must be >= 1"),
    ("search: {kind: optuna, num_trials: 2, asha: {grace: 2}}\ndimensions: {regen.k: {int: [1, 3]}}",
     "unknown config key 'search.asha.grace'"),
    ("metric: test_ndcg@20\ndimensions: {regen.k: {grid: [1]}}", "metric must be one of"),
    ("set: {pretrain.max_epoch: 3}\ndimensions: {regen.k: {grid: [1]}}",
     "set (backbone sasrec): unknown config key 'pretrain.max_epoch'"),
    ("seeds: [0]\ndimensions: {regen.k: {grid: [1]}}", "unknown key 'seeds'"),
    ("dimensions: {}", "dimensions must be a non-empty mapping"),
    ("preset: paper-eraa\ndimensions: {regen.k: {grid: [1]}}", "preset: unknown preset 'paper-eraa'"),
])
def test_errors_name_file_and_key(tmp_path, body, needle):
    path = write(tmp_path, body + "\n")
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and needle in str(err.value), str(err.value)


def test_every_backbone_of_a_backbone_dimension_is_checked(tmp_path):
    # num_heads is a SASRec key; GRU4Rec has none, so a backbone grid over both must fail on gru4rec
    path = write(tmp_path, "dimensions:\n  backbone: {grid: [sasrec, gru4rec]}\n  model.num_heads: {grid: [1]}\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.num_heads'"):
        load_space(path)


def test_a_preset_reaches_every_trial_under_the_fixed_settings(tmp_path):
    from dr4sr.pipeline import regen_config, split_overrides
    from dr4sr.search.study import StudyOptions, constants
    from dr4sr.search.trial import STUDY_KEY, trial_request

    space = load_space(write(tmp_path, """
        preset: paper-era
        set: {pretrain.max_epochs: 3}
        dimensions:
          regenerate.gamma: {grid: [0.0, 0.3]}
        """))
    assert space.preset == "paper-era"
    req, point = trial_request({STUDY_KEY: constants(space, StudyOptions(tmp_path / "study")),
                                **space.grid_points()[1]})
    assert req.preset == "paper-era" and point == {"regenerate.gamma": 0.3}
    cfg = regen_config(req, split_overrides(req.overrides)[1])
    # the preset's values, under the space's set: and the point
    assert cfg.pretrain.entropy_weight == 1.0 and cfg.regenerate.memories == [0]
    assert cfg.pretrain.max_epochs == 3 and cfg.regenerate.gamma == 0.3
