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
