"""DR4SR+ inside the training loop: upper-step schedule, fixed rows, the hypergradient through a real
backbone, resume, the end-to-end collapse, and the config section."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dr4sr.artifacts import artifact_id
from dr4sr.config import parse_overrides
from dr4sr.data.batching import TrainBatcher
from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import build_backbone
from dr4sr.personalizer.bilevel import UPPER_NOISE, PersonalizerHook
from dr4sr.train.config import PersonalizerConfig
from dr4sr.train.loop import LoopContext
from dr4sr.train.losses import next_item_loss
from dr4sr.train.runner import build_run_config, prepare_splits, train_key, train_stage

FAST = ["model.dropout=0.0", "train.batch_size=16", "train.lr=0.005", "personalizer.enabled=true"]
QUIET = dict(log=lambda *_: None)


def _cfg(dataset, extra=(), backbone="sasrec"):
    return build_run_config(backbone, str(dataset), parse_overrides(FAST + list(extra)))


def _train_every_third_row_mined(cfg, tmp_path):
    """(splits, metrics) of a run whose rows 0, 3, 6, ... are mined patterns (fixed at weight 1)."""
    splits = prepare_splits(cfg)
    sources = ["mined" if u % 3 == 0 else "original" for u in range(len(splits.train))]
    return splits, train_stage(cfg, tmp_path / "run", row_sources=sources, **QUIET)


def test_disabled_personalizer_keeps_every_train_artifact_id():
    # ids computed before the personalizer section existed (known answers)
    known = {"sasrec": "33321747d4500350", "fmlp": "802b4083aa6ca2c3", "cl4srec": "f18608922ec48392"}
    inputs = {"splits": "x", "sequences": "original"}
    for backbone, expected in known.items():
        cfg = build_run_config(backbone, "beauty", parse_overrides(["personalizer.t_lower=5"]))
        assert artifact_id("train", train_key(cfg), inputs) == expected
    on = build_run_config("sasrec", "beauty", parse_overrides(["personalizer.enabled=true"]))
    assert artifact_id("train", train_key(on), inputs) != known["sasrec"]


def test_constant_mode_keeps_earlier_dr4sr_plus_ids_and_has_its_own():
    inputs = {"splits": "x", "sequences": "original"}
    ids = {extra: artifact_id("train", train_key(build_run_config("sasrec", "beauty", parse_overrides(
        ["personalizer.enabled=true", *extra]))), inputs)
        for extra in [(), ("personalizer.constant_weight=0.3",), ("personalizer.mode=constant",),
                      ("personalizer.mode=constant", "personalizer.constant_weight=0.3")]}
    assert ids[()] == "48901136b9386ce4"  # the id before constant_weight existed (runs made before it keep their ids)
    assert ids[("personalizer.constant_weight=0.3",)] == ids[()]  # unused outside mode=constant
    assert len(set(ids.values())) == 3


def test_constant_mode_weights_every_re_weighted_target_the_same(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, ["train.max_epochs=2", "train.patience=5", "personalizer.warmup_epochs=0",
                              "personalizer.mode=constant", "personalizer.constant_weight=0.25"])
    _, m = _train_every_third_row_mined(cfg, tmp_path)
    p = m["personalizer"]
    assert p["mode"] == "constant" and p["upper_steps"] == 0 and p["weighted_steps"] == 2 * 4
    assert m["history"][1]["personalizer_weight_mean"] == pytest.approx(0.25)
    assert m["history"][1]["personalizer_weight_std"] == pytest.approx(0.0, abs=1e-6)
    table = pq.read_table(tmp_path / "run" / "personalizer_weights.parquet").to_pandas()
    assert np.all(table.loc[table["fixed"], "weight"] == 1.0)
    assert np.all(table.loc[~table["fixed"], "weight"] == 0.25)
    with pytest.raises(ConfigError, match=r"personalizer\.constant_weight"):
        _cfg(tiny_dataset, ["personalizer.constant_weight=1.5"])


@pytest.mark.parametrize("item,key", [("personalizer.mode=joint", "personalizer.mode"),
                                      ("personalizer.tlower=3", "personalizer.tlower"),
                                      ("personalizer.t_lower=0", "personalizer.t_lower"),
                                      ("personalizer.dev_batch=valid", "personalizer.dev_batch"),
                                      ("personalizer.fixed_sources=[patterns]", "personalizer.fixed_sources"),
                                      ("personalizer.temperature=abc", "personalizer.temperature")])
def test_bad_personalizer_keys_name_the_key(item, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_run_config("sasrec", "beauty", parse_overrides([item]))


def test_yaml_defaults_are_the_papers():
    p = build_run_config("gru4rec", "beauty").personalizer
    assert p == PersonalizerConfig()
    assert (p.t_lower, p.neumann_terms, p.temperature, p.warmup_epochs, p.fixed_sources) == (30, 3, 10.0, 10, ["mined"])
    assert ((p.lr, p.momentum, p.weight_decay, p.grad_clip, p.mode, p.dev_batch)
            == (1e-3, 0.9, 1e-3, 10.0, "bilevel", "train"))


def test_upper_steps_every_t_lower_after_warmup_and_fixed_rows_keep_weight_one(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, ["train.max_epochs=3", "train.patience=5", "personalizer.warmup_epochs=1",
                              "personalizer.t_lower=3", "personalizer.lr=1.0"])
    splits, m = _train_every_third_row_mined(cfg, tmp_path)
    batches = -(-len(splits.train) // 16)  # 60 rows, batch 16: 4 batches per epoch
    p = m["personalizer"]
    assert p["weighted_steps"] == 2 * batches and p["upper_steps"] == (2 * batches) // 3
    assert "personalizer_weight_mean" not in m["history"][0]  # warm-up epoch: no weighting
    assert m["history"][2]["personalizer_upper_steps"] == p["upper_steps"]
    assert p["fixed_rows"] == 20 and p["rows"] == 60
    table = pq.read_table(tmp_path / "run" / "personalizer_weights.parquet").to_pandas()
    assert len(table) == m["train_targets"]  # one weight per training target
    fixed = np.isin(table["row"], np.arange(0, 60, 3))
    assert np.array_equal(table["fixed"].to_numpy(), fixed)
    assert np.all(table.loc[fixed, "weight"] == 1.0)
    w = table.loc[~fixed, "weight"]
    assert w.between(0, 1, inclusive="neither").all() and w.std() > 0
    assert p["weight_mean"] == pytest.approx(float(w.mean()), rel=1e-5)
    # positions index the target item in its row: 1..len-1
    lens = {r: len(s) for r, s in enumerate(splits.train)}
    assert all(1 <= pos < lens[r] for r, pos in zip(table["row"], table["position"]))
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["personalizer"]["upper_steps"] == p["upper_steps"] and on_disk["personalizer"]["upper_seconds"] > 0


def test_upper_step_hypergradient_through_sasrec_matches_finite_differences(tiny_dataset):
    """K = 0: the hook's update is lr * step * d/dphi [grad_theta L_dev . grad_theta L_train(theta, phi)]."""
    torch.manual_seed(0)
    cfg = _cfg(tiny_dataset)
    splits = prepare_splits(cfg)
    model = build_backbone("sasrec", cfg.model, BuildContext(splits.num_items, splits.max_len)).double()
    pcfg = PersonalizerConfig(enabled=True, neumann_terms=0, neumann_step=0.5, lr=1.0, momentum=0.0,
                              weight_decay=0.0, grad_clip=0.0, warmup_epochs=0)
    batcher = TrainBatcher(splits.train, 16, "seq2seq", splits.max_len, seed=0)
    hook = PersonalizerHook(pcfg, "ce", seed=0, dev_batcher=TrainBatcher(splits.train, 16, "seq2seq", seed=5))
    hook.start(model, LoopContext())
    hook.scorer.double()
    batch, dev = next(batcher.epoch(0)), hook.dev_batch()
    theta = [p for p in model.parameters()]
    (v,) = [torch.autograd.grad(next_item_loss(model, model(dev.inputs, dev.lengths), dev.targets, "ce")[0], theta)]

    def f(phi_state):  # grad_theta L_dev . grad_theta L_train(theta, phi), the weights at the upper step's noise
        hook.scorer.load_state_dict(phi_state)
        with torch.no_grad():
            w = hook.batch_weights(batch, model(batch.inputs, batch.lengths), UPPER_NOISE)
        loss, _ = next_item_loss(model, model(batch.inputs, batch.lengths), batch.targets, "ce", w)
        return sum(float((a * b).sum()) for a, b in zip(v, torch.autograd.grad(loss, theta)))

    phi0 = {k: t.clone() for k, t in hook.scorer.state_dict().items()}
    direction = {k: torch.randn_like(t) for k, t in phi0.items()}
    eps = 1e-5
    fd = (f({k: phi0[k] + eps * direction[k] for k in phi0})
          - f({k: phi0[k] - eps * direction[k] for k in phi0})) / (2 * eps)
    hook.scorer.load_state_dict(phi0)
    theta_before = [p.detach().clone() for p in theta]
    hook.upper_step(batch)
    moved = sum(float(((hook.scorer.state_dict()[k] - phi0[k]) * direction[k]).sum()) for k in phi0)
    assert moved == pytest.approx(pcfg.lr * pcfg.neumann_step * fd, rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(theta_before, theta))  # the upper step leaves theta alone
    assert hook.upper_steps == 1


def test_resume_continues_the_personalizer_exactly(tiny_dataset, tmp_path):
    extra = ["train.patience=10", "personalizer.warmup_epochs=1", "personalizer.t_lower=2", "personalizer.lr=1.0"]
    straight = train_stage(_cfg(tiny_dataset, ["train.max_epochs=4", *extra]), tmp_path / "a", **QUIET)
    train_stage(_cfg(tiny_dataset, ["train.max_epochs=2", *extra]), tmp_path / "b", **QUIET)
    resumed = train_stage(_cfg(tiny_dataset, ["train.max_epochs=4", *extra]), tmp_path / "b", resume=True, **QUIET)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
    assert resumed["personalizer"]["upper_steps"] == straight["personalizer"]["upper_steps"] > 0
    a = torch.load(tmp_path / "a" / "personalizer.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "personalizer.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_end_to_end_weights_collapse_while_bilevel_weights_do_not(tiny_dataset, tmp_path):
    extra = ["train.max_epochs=12", "train.patience=20", "personalizer.warmup_epochs=0", "personalizer.t_lower=2"]
    e2e = train_stage(_cfg(tiny_dataset, extra + ["personalizer.mode=end-to-end"]), tmp_path / "e2e", **QUIET)
    bi = train_stage(_cfg(tiny_dataset, extra), tmp_path / "bi", **QUIET)
    e2e_means = [h["personalizer_weight_mean"] for h in e2e["history"]]
    bi_means = [h["personalizer_weight_mean"] for h in bi["history"]]
    # every positive per-target loss pulls its weight down when phi minimises the weighted loss itself
    assert e2e_means[-1] < 0.6 * e2e_means[0] and all(b <= a + 1e-3 for a, b in zip(e2e_means, e2e_means[1:]))
    assert e2e["personalizer"]["upper_steps"] == 0
    assert abs(bi_means[-1] - bi_means[0]) < 0.05 and bi["personalizer"]["upper_steps"] > 0


def test_holdout_dev_rows_are_kept_out_of_theta(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, ["train.max_epochs=1", "personalizer.warmup_epochs=0", "personalizer.t_lower=1",
                              "personalizer.dev_batch=holdout", "personalizer.holdout_fraction=0.25"])
    m = train_stage(cfg, tmp_path / "run", **QUIET)
    assert m["train_rows"] == 45 and m["personalizer"]["rows"] == 60  # all rows are scored
    assert m["personalizer"]["upper_steps"] == 3  # 45 rows, batch 16
