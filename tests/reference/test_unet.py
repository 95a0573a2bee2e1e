"""The U-Net: the paper's parameter counts, the digits preset, shapes, the skip scheme."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from probekit.errors import ValidationError
from probekit.reference.config import UNetConfig, preset
from probekit.reference.unet import SelfAttention, UNet, count_parameters, sinusoidal_table

# Bonnaire et al. (2025): W = 8, 16, 32, 48, 64 give 0.263M, 1.027M, 4.055M, 9.086M, 16.118M.
PAPER_COUNTS = {8: 0.263e6, 16: 1.027e6, 32: 4.055e6, 48: 9.086e6, 64: 16.118e6}


@pytest.mark.parametrize("width", sorted(PAPER_COUNTS))
def test_celeba32_parameter_counts_match_the_paper(width):
    model = UNet(preset("celeba32", n=1024, width=width).unet)
    assert count_parameters(model) == pytest.approx(PAPER_COUNTS[width], rel=0.01)
    # The paper's totals include the frozen 1000 × W sinusoidal table.
    assert count_parameters(model) - count_parameters(model, trainable_only=True) == 1000 * width


def test_celeba32_is_the_papers_layout():
    cfg = preset("celeba32", n=1024).unet
    assert (cfg.channel_mults, cfg.encoder_blocks, cfg.decoder_blocks) == ((1, 2, 4), 2, 3)
    assert (cfg.attention_resolutions, cfg.attention_heads, cfg.norm_groups) == ((16, 8), 4, 8)
    assert cfg.dropout == 0.1
    model = UNet(cfg)
    attention = [m for m in model.modules() if isinstance(m, SelfAttention)]
    # encoder 2 + 2 (16×16, 8×8), middle 1, decoder 3 + 3
    assert len(attention) == 11
    assert {m.attn.num_heads for m in attention} == {4}
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {m.num_groups for m in norms} == {8}


def test_digits_preset_is_about_464k_parameters():
    model = UNet(preset("digits", n=64).unet)
    # the issue's ≈464k recipe is not known in full; ours is the closest layout (see docs)
    assert count_parameters(model, trainable_only=True) == pytest.approx(464e3, rel=0.02)
    assert not [m for m in model.modules() if isinstance(m, SelfAttention)]


@pytest.mark.parametrize(("dims", "shape"), [(2, (3, 1, 16, 16)), (1, (3, 2, 16))])
def test_forward_keeps_the_shape_in_1d_and_2d(dims, shape):
    cfg = UNetConfig(in_channels=shape[1], resolution=16, dims=dims, base_width=8,
                     attention_resolutions=(8,), attention_heads=2)
    model = UNet(cfg)
    out = model(torch.randn(shape), torch.tensor([1, 500, 999]))
    assert out.shape == shape


def test_decoder_blocks_without_matching_skips_still_build():
    base = UNetConfig(resolution=8, base_width=8, channel_mults=(1, 2), attention_resolutions=())
    for enc, dec in [(1, 1), (1, 2), (2, 1), (1, 4)]:
        cfg = dataclasses.replace(base, encoder_blocks=enc, decoder_blocks=dec)
        x = torch.randn(2, 1, 8, 8)
        assert UNet(cfg)(x, torch.tensor([3, 4])).shape == x.shape


def test_time_table_is_vaswani_sinusoids():
    table = sinusoidal_table(1000, 8)
    t, i = 37, 2
    freq = 10000 ** (-i / 4)
    assert table[t, i].item() == pytest.approx(torch.sin(torch.tensor(t * freq)).item(), abs=1e-6)
    assert table[t, 4 + i].item() == pytest.approx(torch.cos(torch.tensor(t * freq)).item(),
                                                   abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"resolution": 30}, "divisible by 2"), ({"base_width": 12}, "norm_groups"),
     ({"dims": 3}, "dims"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_shapes_are_refused_with_a_reason(change, message):
    with pytest.raises(ValidationError, match=message):
        UNet(dataclasses.replace(UNetConfig(), **change))
