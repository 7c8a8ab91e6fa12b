import numpy as np
import pytest
import torch

from dr4sr.errors import DR4SRError
from dr4sr.models.base import BuildContext
from dr4sr.models.sasrec import SASRec, SASRecConfig
from dr4sr.regen.config import RegeneratorConfig
from dr4sr.regen.model import Regenerator, init_from_sasrec

CFG = RegeneratorConfig(hidden_size=16, inner_size=32, k=4, dropout=0.0, max_positions=12)


def _model(**kw) -> Regenerator:
    torch.manual_seed(0)
    import dataclasses
    return Regenerator(dataclasses.replace(CFG, **kw), num_items=20).eval()


def test_tokens_and_shapes():
    m = _model()
    assert (m.bos, m.eos, m.vocab) == (21, 22, 23)
    src = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    pattern = torch.tensor([[1, 3], [5, 0]])
    dec_in = torch.tensor([[21, 1, 3], [21, 5, 0]])
    logits, pi = m(src, dec_in, pattern)
    assert logits.shape == (2, 3, 23) and pi.shape == (2, 4)
    assert torch.allclose(pi.sum(1), torch.ones(2))
    sel = torch.tensor([[True, True, True], [True, True, False]])
    assert m(src, dec_in, pattern, select=sel)[0].shape == (5, 23)
    mem, keep = m.encode(src)
    assert m.memories(mem).shape == (2, 4, 4, 16) and keep.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]


def test_vanilla_model_has_one_memory_and_no_promoter():
    m = _model(diversity=False)
    assert m.num_memories == 1 and not hasattr(m, "memory_mlp") and not hasattr(m, "pattern_encoder")
    logits, pi = m(torch.tensor([[1, 2]]), torch.tensor([[21, 1]]), torch.tensor([[1]]))
    assert pi is None and logits.shape == (1, 2, 23)


def test_encoder_is_bidirectional_and_ignores_padding():
    m = _model()
    a, _ = m.encode(torch.tensor([[1, 2, 3]]))
    b, _ = m.encode(torch.tensor([[1, 2, 3, 0, 0]]))
    torch.testing.assert_close(a, b[:, :3], rtol=1e-5, atol=1e-5)  # padding never changes real positions
    c, _ = m.encode(torch.tensor([[1, 2, 7]]))
    assert not torch.allclose(a[0, 0], c[0, 0])  # position 0 sees a later item: no causal mask


def test_incremental_step_equals_full_decoder():
    m = _model()
    mem, keep = m.encode(torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]))
    memory = m.memories(mem)[:, 2]
    tokens = torch.tensor([[21, 3, 1, 4], [21, 6, 5, 2]])
    full = m.decode(tokens, memory, keep)
    cache = [[None, None] for _ in m.decoder]
    mem_kv, mask = m.memory_kv(memory), keep[:, None, None, :]
    for t in range(tokens.size(1)):
        step = m.decode_step(tokens[:, t], t, cache, mem_kv, mask)
        torch.testing.assert_close(step, full[:, t], rtol=1e-5, atol=1e-5)


def test_init_from_sasrec_copies_embeddings_and_matching_encoder_tensors():
    sas = SASRec(SASRecConfig(hidden_size=16, inner_size=8, dropout=0.0), BuildContext(num_items=20, max_len=50))
    m = _model()
    copied = init_from_sasrec(m, sas.state_dict())
    torch.testing.assert_close(m.item_embedding.weight[:21], sas.item_embedding.weight)
    wq = "encoder.layers.layers.0.self_attn.in_proj_weight"
    assert wq in copied and torch.equal(m.state_dict()[wq], sas.state_dict()[wq])
    assert "encoder.layers.layers.0.linear1.weight" not in copied  # FFN 8 vs 32: shapes differ
    # positions: the regenerator has 12, SASRec 50 -> the first 12 rows are copied
    torch.testing.assert_close(m.encoder["position_embedding"].weight, sas.encoder.position_embedding.weight[:12])
    with pytest.raises(DR4SRError, match="item embeddings"):
        init_from_sasrec(Regenerator(CFG, num_items=19), sas.state_dict())


def test_state_dict_round_trip_is_exact():
    m = _model()
    m2 = Regenerator(CFG, 20).eval()
    m2.load_state_dict(m.state_dict())
    x = torch.tensor([[1, 2, 3]])
    assert np.array_equal(m.encode(x)[0].detach().numpy(), m2.encode(x)[0].detach().numpy())


def test_score_items_equals_gathered_logits():
    m = _model()
    h = torch.randn(3, 16)
    items = torch.tensor([[1, 5, 0], [22, 2, 2], [7, 8, 9]])
    torch.testing.assert_close(m.score_items(h, items), m.logits(h).gather(1, items))
