"""`search.warm_start`: points checked against the dimensions, and run first by a TPE study."""
from __future__ import annotations

import json
import textwrap

import pytest

from dr4sr.errors import ConfigError
from dr4sr.search.space import load_space

BASE = """\
dataset: beauty
backbone: sasrec
variant: dr4sr
search:
  kind: optuna
  num_trials: 3
  warm_start: {points}
dimensions:
  regen.k: {{int: [1, 3]}}
  regenerate.gamma: {{uniform: [0.0, 1.0]}}
  compose.mined: {{choice: [paired, all]}}
"""


def write(tmp_path, points: str):
    path = tmp_path / "space.yaml"
    path.write_text(BASE.format(points=points))
    return path


def test_points_are_kept_in_order_and_typed(tmp_path):
    space = load_space(write(tmp_path, "[{regen.k: 2, regenerate.gamma: 1, compose.mined: all},"
                                       " {regen.k: 1, regenerate.gamma: 0.3, compose.mined: paired}]"))
    assert space.search.warm_start == [{"regen.k": 2, "regenerate.gamma": 1.0, "compose.mined": "all"},
                                       {"regen.k": 1, "regenerate.gamma": 0.3, "compose.mined": "paired"}]
    assert isinstance(space.search.warm_start[0]["regenerate.gamma"], float)


@pytest.mark.parametrize("points,needle", [
    ("[{regen.kk: 2, regenerate.gamma: 0.1, compose.mined: all}]", "search.warm_start[0].regen.kk: not a dimension"),
    ("[{regen.k: 4, regenerate.gamma: 0.1, compose.mined: all}]", "search.warm_start[0].regen.k: 4 is outside int"),
    ("[{regen.k: 1.5, regenerate.gamma: 0.1, compose.mined: all}]", "regen.k: expected an integer"),
    ("[{regen.k: 1, regenerate.gamma: 1.1, compose.mined: all}]", "regenerate.gamma: 1.1 is outside uniform"),
    ("[{regen.k: 1, regenerate.gamma: 0.1, compose.mined: some}]", "compose.mined: 'some' is not one of"),
    ("[{regen.k: 1, regenerate.gamma: 0.1}]", "search.warm_start[0]: missing dimension 'compose.mined'"),
    ("[{regen.k: 1, regenerate.gamma: 0.1, compose.mined: all}, 3]", "search.warm_start[1]: expected a mapping"),
    ("{regen.k: 1}", "search.warm_start: expected a list"),
])
def test_bad_points_name_the_file_and_key(tmp_path, points, needle):
    path = write(tmp_path, points)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}: ") and needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_grid_space_takes_no_warm_start(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("dataset: beauty\nsearch: {kind: grid, warm_start: [{regen.k: 1}]}\n"
                    "dimensions: {regen.k: {grid: [1, 2]}}\n")
    with pytest.raises(ConfigError, match="only search.kind optuna takes warm-start points"):
        load_space(path)


def test_tpe_recipe_space_starts_from_the_paper_era_recipe():
    space = load_space("search_spaces/tpe_recipe.yaml")
    points = space.search.warm_start
    # one point per personalizer setting, each a complete point of the space, on the paper-era data
    assert [p["variant"] for p in points] == ["dr4sr", "constant", "dr4sr+"]
    assert all(set(p) == {d.key for d in space.dimensions} and p["compose.mined"] == "all" for p in points)
    assert points[1]["personalizer.source_weights.original"] == points[1]["personalizer.source_weights.generated"] \
        == 0.5


@pytest.mark.slow  # a Ray start and 3 one-epoch trials: ~30 s on the shared 2-core machine
def test_the_first_trials_are_the_warm_start_points(ray_session, tiny_dataset, tmp_path):
    import optuna

    from dr4sr.search.study import StudyOptions, run_study

    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(f"""\
        dataset: {tiny_dataset}
        backbone: sasrec
        variant: backbone
        set: {{train.max_epochs: 1, train.patience: 1}}
        search:
          kind: optuna
          num_trials: 3
          warm_start:
            - {{train.lr: 0.002, train.batch_size: 32}}
            - {{train.lr: 0.0005, train.batch_size: 16}}
        dimensions:
          train.lr: {{loguniform: [0.0001, 0.01]}}
          train.batch_size: {{choice: [16, 32, 64]}}
        """))
    out = tmp_path / "study"
    summary = run_study(load_space(path), StudyOptions(out, str(tmp_path / "store")))
    assert summary["trials"] == 3
    study = optuna.load_study(study_name=json.loads((out / "study.json").read_text())["optuna"]["study_name"],
                              storage=f"sqlite:///{out / 'optuna.db'}")
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert [t.params for t in trials[:2]] == [{"train.lr": 0.002, "train.batch_size": 32},
                                              {"train.lr": 0.0005, "train.batch_size": 16}]
    for t in trials[:2]:  # the trial ran the point it was given
        point = json.loads((out / "trials" / t.user_attrs["tune_trial_id"] / "trial.json").read_text())["point"]
        assert point == t.params
