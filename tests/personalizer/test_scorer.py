"""g_phi: the Gumbel-softmax weight of Eq. 5 and its shard-invariant noise."""
import math

import pytest
import torch

from dr4sr.personalizer.scorer import Personalizer, gumbel_noise


def test_noise_is_a_function_of_row_and_position_not_of_the_batch():
    a = gumbel_noise(torch.tensor([3, 7, 9]), 5, step=11, seed=0)
    b = gumbel_noise(torch.tensor([9, 3]), 4, step=11, seed=0)  # another shard, another padding width
    assert torch.equal(a[2, :4], b[0]) and torch.equal(a[0, :4], b[1])
    assert not torch.equal(a, gumbel_noise(torch.tensor([3, 7, 9]), 5, step=12, seed=0))
    assert not torch.equal(a, gumbel_noise(torch.tensor([3, 7, 9]), 5, step=11, seed=1))
    assert not torch.equal(a[..., 0], a[..., 1])


def test_noise_is_standard_gumbel():
    g = gumbel_noise(torch.arange(20_000), 10, step=0, seed=0).double().flatten()  # 400k draws
    assert float(g.mean()) == pytest.approx(0.5772156649, abs=0.01)  # Euler-Mascheroni constant
    assert float(g.var()) == pytest.approx(math.pi ** 2 / 6, abs=0.02)
    # P(G <= 0) = exp(-1)
    assert float((g <= 0).double().mean()) == pytest.approx(math.exp(-1), abs=0.005)


def test_weight_is_the_first_component_of_the_tempered_softmax():
    scorer = Personalizer(hidden_size=4, width=3, temperature=10.0)
    with torch.no_grad():  # make z = (2, -1) for every input: weight = sigmoid((2 - (-1)) / 10)
        scorer.mlp[2].weight.zero_()
        scorer.mlp[2].bias.copy_(torch.tensor([2.0, -1.0]))
    h = torch.randn(2, 3, 4)
    assert torch.allclose(scorer(h), torch.full((2, 3), 1 / (1 + math.exp(-0.3))))
    noise = torch.zeros(2, 3, 2)
    noise[..., 1] = 3.0  # the noise enters before the temperature: z + G = (2, 2) -> 0.5
    assert torch.allclose(scorer(h, noise), torch.full((2, 3), 0.5))
    cooler = Personalizer(4, 3, temperature=1.0)
    cooler.load_state_dict(scorer.state_dict())
    assert torch.allclose(cooler(h), torch.full((2, 3), 1 / (1 + math.exp(-3.0))))


def test_width_defaults_to_the_hidden_size():
    assert Personalizer(8).mlp[0].out_features == 8 and Personalizer(8, 5).mlp[0].out_features == 5
