import pytest

from dr4sr.config import parse_overrides
from dr4sr.errors import ConfigError
from dr4sr.train.runner import build_run_config


def test_defaults_come_from_backbone_yaml():
    cfg = build_run_config("gru4rec", "beauty")
    assert cfg.model["gru_size"] == 256 and cfg.train.weight_decay == pytest.approx(1e-4)
    assert cfg.train.patience == 20 and cfg.train.loss == "bce"


def test_overrides_parse_types_and_apply():
    ov = parse_overrides(["model.dropout=0.2", "train.lr=1e-3", "train.loss=ce", "train.batch_size=128"])
    cfg = build_run_config("sasrec", "beauty", ov)
    assert cfg.model["dropout"] == 0.2 and cfg.train.lr == 1e-3 and cfg.train.loss == "ce"
    assert cfg.train.batch_size == 128


@pytest.mark.parametrize("item, message", [
    ("train.lrr=0.1", "unknown config key 'train.lrr'"),
    ("model.hidden=32", "unknown config key 'model.hidden'"),
    ("train.batch_size=abc", "train.batch_size': expected int"),
    ("train.loss=hinge", "train.loss must be one of"),
    ("nosuchsection.x=1", "unknown config key 'nosuchsection'"),
])
def test_bad_keys_and_types_name_the_key(item, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_run_config("sasrec", "beauty", parse_overrides([item]))


def test_unknown_backbone():
    with pytest.raises(ConfigError, match="unknown backbone 'bert'"):
        build_run_config("bert", "beauty")


def test_smoke_test_caps_epochs():
    assert build_run_config("sasrec", "beauty", smoke_test=True).train.max_epochs == 2


@pytest.mark.parametrize("item, message", [
    ("train.lr=-1", "train.lr must be positive, got -1"),
    ("train.weight_decay=-0.1", "train.weight_decay must be >= 0, got -0.1"),
    ("train.device=tpu", "train.device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("model.dropout=1.5", "model.dropout must be in [0, 1), got 1.5"),
    ("regenerate.gamma=2", "regenerate.gamma must be in [0, 1], got 2"),
    ("mine.alpha=0", "alpha"),
    ("pretrain.valid_fraction=1.5", "valid_fraction"),
])
def test_out_of_range_values_stop_the_cli_with_one_line(tiny_dataset, tmp_path, capsys, item, message):
    from dr4sr.cli import main

    out = tmp_path / "out"
    assert main(["run", "--dataset", str(tiny_dataset), "--out", str(out), "--store", str(tmp_path / "s"),
                 "--smoke-test", "--set", item]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dr4sr: error: ") and message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "out-smoke").exists()


def test_workers_zero_and_unknown_backbone_are_rejected(tiny_dataset, tmp_path, capsys):
    from dr4sr.cli import BACKBONE_NAMES, build_parser, main
    from dr4sr.models.registry import BACKBONES

    assert tuple(BACKBONES) == BACKBONE_NAMES  # the --help list is the registry's
    for cmd in ("train", "run", "compare", "mine", "pretrain"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([cmd, "--dataset", "x", "--out", "y", "--workers", "0"])
        assert exit_.value.code == 2
        assert "--workers: must be >= 1 (1 runs in this process), got 0" in capsys.readouterr().err
    assert "gru4rec" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert main(["train", "--dataset", str(tiny_dataset), "--backbone", "bert", "--out", str(tmp_path)]) == 2
    assert "unknown backbone 'bert'" in capsys.readouterr().err


def test_explicit_max_epochs_wins_over_smoke_test():
    cfg = build_run_config("sasrec", "beauty", parse_overrides(["train.max_epochs=5"]), smoke_test=True)
    assert cfg.train.max_epochs == 5 and cfg.train.patience == 2


def test_help_is_for_users():
    from dr4sr.cli import build_parser

    text = build_parser().format_help()
    assert "dr4sr compare --dataset beauty" in text and "--smoke-test" in text
    assert "register(subparsers)" not in text  # not the module's developer docstring
