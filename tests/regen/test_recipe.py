"""The paper-era recipe's ingredients: each an explicit option with a visible effect."""
import dataclasses

import numpy as np
import pytest
import torch
from planted import FAST, NUM_ITEMS, SMALL, planted_data, planted_pairs

from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.sasrec import SASRec, SASRecConfig
from dr4sr.presets import load_preset
from dr4sr.regen.config import PretrainConfig, RegenerateConfig, RegeneratorConfig, build_regen_config
from dr4sr.regen.decode import decode_batch, decode_reference
from dr4sr.regen.model import Regenerator, init_from_sasrec
from dr4sr.regen.pretrain import PretrainInput, pretrain_local, temperature
from dr4sr.regen.regenerate import regenerate_local
from dr4sr.regen.stage import pretrain_key, regenerate_key


def _model(k=3, n=30):
    torch.manual_seed(2)
    return Regenerator(RegeneratorConfig(hidden_size=16, inner_size=32, k=k, dropout=0.0, max_positions=20), n).eval()


def _sources(n, length=7, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, 31), size=length, replace=False) for _ in range(n)]


# ---- regenerate.memories ------------------------------------------------------------------------
def test_chosen_memories_decode_exactly_their_columns_of_all():
    m, srcs, users = _model(), _sources(25), np.arange(25) + 7
    full = decode_batch(m, srcs, users, RegenerateConfig(gamma=0.3, max_length=6))
    one = decode_batch(m, srcs, users, RegenerateConfig(gamma=0.3, max_length=6, memories=[2, 0]))
    for f, o in zip(full, one):
        assert [p.tolist() for p in o] == [f[2].tolist(), f[0].tolist()]  # same coins per (user, memory)
    ref = decode_reference(m, srcs, users, RegenerateConfig(gamma=0.3, max_length=6, memories=[2, 0]))
    assert [[p.tolist() for p in r] for r in ref] == [[p.tolist() for p in o] for o in one]
    table = regenerate_local(m, srcs, users, RegenerateConfig(gamma=0.3, max_length=6, memories=[2, 0]))
    assert table.num_rows == 50 and table.column("k").to_numpy().tolist()[:4] == [2, 0, 2, 0]


def test_memories_config_errors_name_the_key():
    for bad in ([], [1, 1], [-1], "first"):
        with pytest.raises(ConfigError, match="regenerate.memories"):
            build_regen_config({"regenerate": {"memories": bad}})
    with pytest.raises(ConfigError, match="regenerate.memories"):
        build_regen_config({"regenerate": {"memories": [5]}})  # K = 5 memories: 0..4
    with pytest.raises(ConfigError, match="regenerate.memories"):
        build_regen_config({"regen": {"diversity": False}, "regenerate": {"memories": [1]}})
    assert build_regen_config({"regenerate": {"memories": [4, 0]}}).regenerate.memories == [4, 0]


# ---- regenerate.short_rows ----------------------------------------------------------------------
def test_short_rows_drop_lets_eos_win_early_and_drops_rows_under_min_length():
    m = _model()
    prefs = torch.arange(m.vocab, dtype=torch.float32).neg()
    prefs[m.eos] = 1e4  # EOS beats every item whenever it is allowed
    m.logits = lambda hidden: prefs.expand(hidden.size(0), -1).clone()
    m.score_items = lambda hidden, items: prefs[items]
    srcs, users = _sources(30), np.arange(30)
    forced = decode_batch(m, srcs, users, RegenerateConfig(gamma=0.0, max_length=6, min_length=2))
    dropped = decode_batch(m, srcs, users, RegenerateConfig(gamma=0.0, max_length=6, min_length=2,
                                                            short_rows="drop"))
    assert all(len(p) == 2 for row in forced for p in row)  # EOS masked until 2 items
    assert all(len(p) == 0 for row in dropped for p in row)  # EOS at step 0: every row dropped
    prefs[m.eos] = -1e4  # now EOS only ends a row whose source is used up: a 1-item source gives 1-item rows
    single = [np.array([5]), np.array([6, 7])]
    kept = decode_batch(m, single, np.arange(2), RegenerateConfig(gamma=0.0, max_length=6, min_length=1,
                                                                  short_rows="drop"))
    dropped = decode_batch(m, single, np.arange(2), RegenerateConfig(gamma=0.0, max_length=6, min_length=2,
                                                                     short_rows="drop"))
    assert [p.tolist() for p in kept[0]] == [[5]] * 3 and [p.tolist() for p in dropped[0]] == [[]] * 3
    assert [p.tolist() for p in dropped[1]] == [[6, 7]] * 3
    long = decode_batch(m, srcs, users, RegenerateConfig(gamma=0.0, max_length=6, min_length=2, short_rows="drop"))
    assert all(len(p) == 6 for row in long for p in row)
    with pytest.raises(ConfigError, match="regenerate.short_rows"):
        build_regen_config({"regenerate": {"short_rows": "pad"}})


# ---- pre-training ------------------------------------------------------------------------------
def test_step_temperature_decays_per_batch_to_its_floor():
    cfg = PretrainConfig(tau_schedule="step", tau_decay=0.995, tau_end=0.1)
    assert temperature(cfg, 0, 10) == 1.0 and np.isclose(temperature(cfg, 100, 10), 0.995 ** 100)
    assert temperature(cfg, 460, 10) == pytest.approx(0.1, abs=1e-3) and temperature(cfg, 5000, 10) == 0.1
    with pytest.raises(ConfigError, match="pretrain.tau_schedule"):
        build_regen_config({"pretrain": {"tau_schedule": "cosine"}})


def test_causal_encoder_hides_later_items_and_ignores_padding():
    m = _model()
    a, _ = m.encode(torch.tensor([[1, 2, 3]]), causal=True)
    b, _ = m.encode(torch.tensor([[1, 2, 9]]), causal=True)
    torch.testing.assert_close(a[:, :2], b[:, :2])  # positions 0-1 never see position 2
    c, _ = m.encode(torch.tensor([[1, 2, 3, 0]]), causal=True)
    torch.testing.assert_close(a, c[:, :3], rtol=1e-5, atol=1e-5)
    d, _ = m.encode(torch.tensor([[1, 2, 9]]))
    assert not torch.allclose(a[0, 0], d[0, 0])  # the default encoder is bidirectional


def test_fixed_epochs_keep_the_last_weights_and_need_no_holdout():
    seqs, users, which = planted_data(80)
    pairs = planted_pairs(seqs, users, which)
    train, valid = pairs.split(0.0, 0)
    assert len(valid) == 0 and len(train) == len(pairs)
    cfg = dataclasses.replace(FAST, max_epochs=4, patience=0, entropy_weight=1.0, tau_schedule="step",
                              causal_encoder=True)
    out = pretrain_local(PretrainInput(SMALL, cfg, NUM_ITEMS, train, valid), log=lambda *_: None)
    hist = out["metrics"]["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3] and out["metrics"]["best_epoch"] == 3
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["tau"] < hist[0]["tau"] <= 1.0


def test_init_copy_embeddings_only():
    sas = SASRec(SASRecConfig(hidden_size=16, inner_size=32, dropout=0.0), BuildContext(num_items=30, max_len=50))
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert init_from_sasrec(m, sas.state_dict(), encoder=False) == ["item_embedding.weight"]
    torch.testing.assert_close(m.item_embedding.weight[:31], sas.item_embedding.weight)
    for key, value in m.state_dict().items():
        if key != "item_embedding.weight":
            assert torch.equal(value, before[key]), key
    assert len(init_from_sasrec(_model(), sas.state_dict())) > 1  # the default also copies encoder tensors


# ---- presets and artifact ids -----------------------------------------------------------------------
def test_paper_era_preset_sets_the_recipe_and_set_still_overrides():
    cfg = build_regen_config({"regenerate": {"gamma": 0.1}}, "beauty", "paper-era")
    assert cfg.preset == "paper-era" and cfg.regenerate.memories == [0] and cfg.regenerate.gamma == 0.1
    assert ((cfg.compose.mined, cfg.compose.dedupe, cfg.init.data, cfg.init.copy)
            == ("all", "none", "pattern", "embeddings"))
    assert (cfg.pretrain.patience, cfg.pretrain.valid_fraction, cfg.pretrain.entropy_weight) == (0, 0.0, 1.0)
    assert cfg.pretrain.causal_encoder and cfg.regenerate.short_rows == "drop" and cfg.regenerate.max_length == 24


def test_preset_errors_name_the_preset_or_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'paper'"):
        load_preset("paper")
    bad = tmp_path / "mine.yaml"
    bad.write_text("pretrain: {max_epochs: 3}\noptimizer: {lr: 1}\n")
    with pytest.raises(ConfigError, match="mine.yaml: unknown section 'optimizer'"):
        load_preset(str(bad))
    bad.write_text("pretrain: {max_epoch: 3}\n")
    with pytest.raises(ConfigError, match="pretrain.max_epoch"):
        build_regen_config({}, None, str(bad))


def test_new_fields_at_defaults_keep_artifact_ids():
    base = build_regen_config({}, "beauty")
    assert set(pretrain_key(base)["pretrain"]).isdisjoint({"tau_schedule", "tau_decay", "causal_encoder"})
    assert pretrain_key(base)["init"] == "sasrec"
    assert set(regenerate_key(base)).isdisjoint({"memories", "short_rows"})
    era = build_regen_config({}, "beauty", "paper-era")
    assert pretrain_key(era)["pretrain"]["causal_encoder"] is True and pretrain_key(era)["init"] == "sasrec/embeddings"
    assert regenerate_key(era)["memories"] == [0]
    # the preset's name is not part of any id: the same values via --set give the same keys
    same = build_regen_config(load_preset("paper-era"), "beauty")
    assert pretrain_key(same) == pretrain_key(era) and regenerate_key(same) == regenerate_key(era)
