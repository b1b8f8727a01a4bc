"""An adversarial term on the tumor (issue 41): a conditional PatchGAN that tells the real target's tumor patches
from the synthesis's, so that the generator draws the tumor's texture (the enhancing rim) rather than the blurred
median a pixel loss settles on where the inputs leave it uncertain.

HFGAN's authors train their generator against a discriminator (paper 000), as pix2pix does: least-squares GAN
losses on a patch map. Here the discriminator sees the inputs the generator saw, the image (real or synthesized) and
which modality it is; only the patches that cover the expert tumor count (both for the discriminator and for the
generator), so the term is about the tumor and nothing else. Training only: nothing here is exported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brasyn_infer.constants import MODALITIES


class PatchDiscriminator(nn.Module):
    """Three stride-2 4x4 convolutions (``width``, 2x, 4x; instance norm after the first; LeakyReLU 0.2) and a
    4x4 convolution to one logit per patch: a ``(B, 1, H/8, W/8)`` map for ``(B, C, H, W)`` inputs, each patch
    seeing 38x38 pixels."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.InstanceNorm2d(2 * w, affine=True), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.InstanceNorm2d(4 * w, affine=True), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * w, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def discriminator_input(x: torch.Tensor, image: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """``(B, 4 + 1 + 4, H, W)``: the generator's inputs ``x`` ``(B, 4, H, W)``, the ``image`` ``(B, 1, H, W)`` and
    one constant plane per modality, 1 for the one ``image`` stands for (``missing`` ``(B,)``, a MODALITIES index)."""
    onehot = F.one_hot(missing.long(), len(MODALITIES)).to(x.dtype)[:, :, None, None]
    return torch.cat([x, image, onehot.expand(-1, -1, *x.shape[2:])], dim=1)


def tumor_patches(lesion: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` float: 1 for the patches of a ``size`` map that hold any expert tumor voxel of ``lesion``
    ``(B, 1, H, W)`` (classes, 0 outside the tumor)."""
    return F.adaptive_max_pool2d((lesion > 0).float(), size)


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def generator_term(disc: nn.Module, x: torch.Tensor, fake: torch.Tensor, missing: torch.Tensor,
                   lesion: torch.Tensor) -> torch.Tensor:
    """The generator's least-squares GAN loss on the tumor patches, mean of ``(D(fake) - 1)^2``; 0 for a batch
    without tumor. The gradient flows through ``disc`` to ``fake`` (keep ``disc``'s own gradients off)."""
    if not bool((lesion > 0).any()):
        return fake.new_zeros(())
    out = disc(discriminator_input(x, fake, missing))
    return _masked_mean((out - 1) ** 2, tumor_patches(lesion, out.shape[-2:]))


def discriminator_term(disc: nn.Module, x: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                       missing: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor:
    """The discriminator's least-squares loss on the tumor patches: ``((D(real) - 1)^2 + D(fake)^2) / 2``, with
    ``fake`` detached; 0 for a batch without tumor."""
    if not bool((lesion > 0).any()):
        return real.new_zeros(())
    out_real = disc(discriminator_input(x, real, missing))
    out_fake = disc(discriminator_input(x, fake.detach(), missing))
    weight = tumor_patches(lesion, out_real.shape[-2:])
    return 0.5 * (_masked_mean((out_real - 1) ** 2, weight) + _masked_mean(out_fake**2, weight))
