"""One configurable U-Net that predicts the noise ``eps_theta(x_t, t)``.

The layout is the DDPM U-Net of Ho et al. (2020), in the variant Bonnaire et al. (2025) trained
on CelebA: a frozen sinusoidal table of the T timesteps → Linear → SiLU → Linear gives the time
embedding; each residual block is GroupNorm → SiLU → conv → (+ Linear(SiLU(embedding))) →
GroupNorm → SiLU → channel dropout → conv, plus a 1×1 conv on the skip when the width changes;
self-attention (GroupNorm → multi-head attention → residual) follows every residual block at the
chosen resolutions; the encoder downsamples with a stride-2 conv, the decoder upsamples with
nearest-neighbour interpolation and a conv, and each decoder block concatenates one encoder
activation of its level (the level's input, then its blocks' outputs, last first).

``dims=1`` builds the same network from ``Conv1d`` layers for series ``(batch, channels, length)``
so a time-series model can reuse every block.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

from probekit.reference.config import UNetConfig

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


def sinusoidal_table(num_timesteps: int, dim: int) -> torch.Tensor:
    """``(num_timesteps, dim)`` table with ``sin(t·f_i)`` in the first half and ``cos(t·f_i)``
    in the second, ``f_i = 10000^(-i/(dim/2))`` (Vaswani et al. 2017, Sect. 3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = torch.arange(num_timesteps, dtype=torch.float64)[:, None] * freqs[None]
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(num_timesteps, 1, dtype=torch.float64)], dim=1)
    return table.float()


class TimeEmbedding(nn.Module):
    """Integer timestep → vector: frozen sinusoidal table, then a two-layer MLP."""

    def __init__(self, num_timesteps: int, dim: int, out_dim: int):
        super().__init__()
        # A frozen nn.Embedding (not a buffer) as in the paper's network: its table counts in
        # the parameter totals the paper quotes (see docs/reference_pipeline.md).
        self.table = nn.Embedding.from_pretrained(sinusoidal_table(num_timesteps, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table(t))


class ChannelDropout(nn.Module):
    """Zero whole channels with probability ``p`` in training, scale the rest by ``1/(1-p)``.

    Without a ``mask``: the same random draws as ``nn.Dropout2d``/``nn.Dropout1d`` (one
    Bernoulli per sample and channel from the global generator, in call order), so results are
    those of torch's layers. With a ``mask`` (drawn by :meth:`UNet.draw_dropout_masks`, which
    makes the same draws in the same order): that mask. Handing the masks in is what lets the
    batched ensemble (``vmap``) and a compiled training step reproduce a plain run exactly.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def mask_shape(self, batch: int, channels: int, dims: int) -> tuple[int, ...]:
        """Shape of the mask of a ``(batch, channels, *spatial)`` input with ``dims`` spatial
        dimensions."""
        return (batch, channels, *([1] * dims))

    def draw_mask(self, shape: tuple[int, ...], device: torch.device | str = "cpu"
                  ) -> torch.Tensor:
        """One mask from the global generator (``nn.Dropout2d``'s draw)."""
        return torch.empty(shape, device=device).bernoulli_(1.0 - self.p).div_(1.0 - self.p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if mask is None:
            mask = self.draw_mask(self.mask_shape(x.shape[0], x.shape[1], x.ndim - 2),
                                  x.device)
        return x * mask.to(x.dtype)


class ResidualBlock(nn.Module):
    """Two 3-wide convolutions with the time embedding added in between (Ho et al. 2020)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dims: int, groups: int,
                 dropout: float):
        super().__init__()
        conv = _CONV[dims]
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = conv(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = ChannelDropout(dropout)
        self.conv2 = conv(out_ch, out_ch, 3, padding=1)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb)).view(*h.shape[:2], *([1] * (h.ndim - 2)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h)), mask))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """GroupNorm, multi-head self-attention over all positions, residual connection.

    The weights live in an ``nn.MultiheadAttention`` (its ``in_proj`` and ``out_proj``, the
    layout of the paper's network and of older checkpoints), but the attention is computed here:
    ``softmax(q kᵀ / sqrt(d)) v`` with the scale folded into ``q``. On a CPU this is 2–3× faster
    than torch's fused kernel at the tiny head widths of a small U-Net (d = W/4 at 16×16), and
    it runs under ``torch.func.vmap`` (the batched ensemble); on CUDA the fused
    ``scaled_dot_product_attention`` is used.
    """

    def __init__(self, ch: int, *, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).flatten(2).transpose(1, 2)  # (batch, positions, channels)
        batch, positions, ch = h.shape
        heads = self.attn.num_heads
        qkv = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.view(batch, positions, 3, heads, ch // heads).permute(2, 0, 3, 1, 4)
        if h.is_cuda:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            q = q * (ch // heads) ** -0.5
            o = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        o = self.attn.out_proj(o.transpose(1, 2).reshape(batch, positions, ch))
        return x + o.transpose(1, 2).reshape(x.shape)


class Block(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResidualBlock(in_ch, out_ch, emb_dim, dims=cfg.dims, groups=cfg.norm_groups,
                                 dropout=cfg.dropout)
        self.attn = (SelfAttention(out_ch, heads=cfg.attention_heads, groups=cfg.norm_groups)
                     if attention else None)

    def forward(self, x: torch.Tensor, emb: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.res(x, emb, mask)
        return self.attn(x) if self.attn is not None else x


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3-wide convolution."""

    def __init__(self, ch: int, dims: int):
        super().__init__()
        self.conv = _CONV[dims](ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """``eps_theta(x_t, t)`` for ``x_t`` of shape ``(batch, in_channels, *spatial)`` and integer
    ``t`` of shape ``(batch,)``; see :class:`~probekit.reference.config.UNetConfig`."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        conv = _CONV[cfg.dims]
        emb_dim = cfg.time_embed_mult * cfg.base_width
        widths = [cfg.base_width * m for m in cfg.channel_mults]
        self.time = TimeEmbedding(cfg.num_timesteps, cfg.base_width, emb_dim)
        self.stem = conv(cfg.in_channels, cfg.base_width, 3, padding=1)

        # Encoder: skip_widths[level] lists the widths of the activations the decoder of that
        # level may concatenate (the level's input, then each block's output).
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_widths: list[list[int]] = []
        ch, res = cfg.base_width, cfg.resolution
        for level, width in enumerate(widths):
            skip_widths.append([ch])
            blocks = nn.ModuleList()
            for _ in range(cfg.encoder_blocks):
                blocks.append(Block(ch, width, emb_dim, cfg, res in cfg.attention_resolutions))
                ch = width
                skip_widths[-1].append(ch)
            self.down_blocks.append(blocks)
            last = level == len(widths) - 1
            self.downsamples.append(nn.Identity() if last else conv(ch, ch, 3, stride=2,
                                                                    padding=1))
            res = res if last else res // 2

        self.middle = nn.ModuleList(
            Block(ch, ch, emb_dim, cfg, attention=cfg.middle_attention and i == 0)
            for i in range(cfg.middle_blocks)
        )

        # Decoder: block j of a level concatenates that level's skips in reverse order, while any
        # remain (Ho et al.: decoder_blocks = encoder_blocks + 1 uses each skip exactly once).
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(widths))):
            skips = list(skip_widths[level])
            blocks = nn.ModuleList()
            for _ in range(cfg.decoder_blocks):
                skip = skips.pop() if skips else 0
                blocks.append(Block(ch + skip, widths[level], emb_dim, cfg,
                                    res in cfg.attention_resolutions))
                ch = widths[level]
            self.up_blocks.append(blocks)
            self.upsamples.append(Upsample(ch, cfg.dims) if level else nn.Identity())
            res = res * 2 if level else res

        self.head = nn.Sequential(nn.GroupNorm(cfg.norm_groups, ch), nn.SiLU(),
                                  conv(ch, cfg.in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                dropout_masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``eps_theta(x, t)``; ``dropout_masks`` (training only): one mask per residual block
        in call order, as :meth:`draw_dropout_masks` returns them (default: drawn inside)."""
        if self.cfg.channels_last:  # series (batch, length, channels): the conv layout and back
            return self._forward(x.transpose(1, 2), t, dropout_masks).transpose(1, 2)
        return self._forward(x, t, dropout_masks)

    def residual_blocks(self) -> list[ResidualBlock]:
        """The residual blocks in the order the forward pass calls them (= module order)."""
        return [m for m in self.modules() if isinstance(m, ResidualBlock)]

    def draw_dropout_masks(self, batch: int, device: torch.device | str = "cpu"
                           ) -> list[torch.Tensor] | None:
        """The masks a training forward pass on ``batch`` samples would draw, drawn now from the
        global generator in the same order (``None`` when dropout is off)."""
        if not self.training or self.cfg.dropout == 0.0:
            return None
        return [block.dropout.draw_mask(block.dropout.mask_shape(
            batch, block.conv2.out_channels, self.cfg.dims), device)
            for block in self.residual_blocks()]

    def _forward(self, x: torch.Tensor, t: torch.Tensor,
                 dropout_masks: list[torch.Tensor] | None) -> torch.Tensor:
        masks = iter(dropout_masks) if dropout_masks is not None else None
        emb = self.time(t)
        h = self.stem(x)
        skips: list[list[torch.Tensor]] = []
        for blocks, down in zip(self.down_blocks, self.downsamples, strict=True):
            skips.append([h])
            for block in blocks:
                h = block(h, emb, next(masks) if masks is not None else None)
                skips[-1].append(h)
            h = down(h)
        for block in self.middle:
            h = block(h, emb, next(masks) if masks is not None else None)
        for blocks, up in zip(self.up_blocks, self.upsamples, strict=True):
            level_skips = skips.pop()
            for block in blocks:
                if level_skips:
                    h = torch.cat([h, level_skips.pop()], dim=1)
                h = block(h, emb, next(masks) if masks is not None else None)
            h = up(h)
        return self.head(h)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters; by default including the frozen time table, as the paper counts."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
