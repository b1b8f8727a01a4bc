"""Training losses: L1 and SSIM (Gaussian window 11, sigma 1.5, as the organizers' metric)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM of ``(B, 1, H, W)`` images in ``[0, data_range]``."""
    w = (window if window is not None else gaussian_window()).to(a)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    saa = F.conv2d(a * a, w) - mu_a**2
    sbb = F.conv2d(b * b, w) - mu_b**2
    sab = F.conv2d(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean()


def synthesis_loss(
    pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.5
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L1 + ``ssim_weight * (1 - SSIM)`` on images in normalized units ``[-1, 1]``.

    The parts come back as detached 0-d tensors on the loss's device: reading them (``float``)
    waits for the GPU, so the training loop reads them only when it logs.
    """
    l1 = (pred - target).abs().mean()
    s = ssim((pred.clamp(-1, 1) + 1) / 2, (target + 1) / 2)
    loss = l1 + ssim_weight * (1 - s)
    return loss, {"l1": l1.detach(), "ssim": s.detach()}


#: the log-scale is clipped to this range inside the likelihood (b from 1e-4 to 20 normalized units)
LOG_SCALE_RANGE = (-9.0, 3.0)


def quantile_loss(pred: torch.Tensor, target: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the 1D Wasserstein-1 distance between the values of ``pred`` and ``target`` inside
    each sample's ``inside`` mask (``(B, 1, H, W)`` tensors, normalized units): the mean |difference| of the two
    sorted lists. It compares the intensity distributions and ignores where each value lies, so it penalizes an
    output whose brightest tissue comes out compressed toward the rest (L1 alone predicts the conditional median,
    which pulls uncertain bright voxels down) without asking for any voxel to move to a particular place.
    Samples with no voxel inside count 0."""
    total = pred.new_zeros(())
    for p, t, m in zip(pred, target, inside, strict=True):
        if bool(m.any()):
            total = total + (torch.sort(p[m]).values - torch.sort(t[m]).values).abs().mean()
    return total / max(len(pred), 1)


def residual_loss(
    y: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor, background: torch.Tensor,
    ssim_weight: float = 0.5, nll_weight: float = 0.1, quantile_weight: float = 0.0,
    lesion: torch.Tensor | None = None, lesion_weight: float = 0.0, enhancing_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The residual model's loss on ``(B, 1, H, W)`` tensors in normalized units.

    ``y`` is scored where the pipeline keeps it: ``background`` (two of the three inputs background) is set to -1
    first, as the pipeline does. L1 + ``ssim_weight * (1 - SSIM)`` train ``y``; the Laplace negative
    log-likelihood ``|e| / b + log b`` of the brain's errors ``e = y - target`` (``y`` detached: the uncertainty
    never pulls the synthesis) trains ``log_scale = log b``, weighted by ``nll_weight``. With ``quantile_weight``
    above 0, :func:`quantile_loss` over the brain is added for ``y`` (its part is ``quantile``; not computed at 0).
    The tumor-aware terms (UMMGAT's lesion-aware weighting, paper 004), with ``lesion`` the ``(B, 1, H, W)`` classes
    (0 background, 1 NCR, 2 ED, 3 ET): ``lesion_weight`` times the mean L1 over the batch's tumor pixels
    (``lesion_l1``) and ``enhancing_weight`` times the mean L1 over its enhancing-tumor pixels (``et_l1``), each 0
    for a batch without such pixels.
    """
    minus_one = torch.full_like(y, -1.0)
    shown = torch.where(background, minus_one, y)
    l1 = (shown - target).abs().mean()
    s = ssim((shown.clamp(-1, 1) + 1) / 2, (target + 1) / 2)
    brain = ~background
    log_b = log_scale.clamp(*LOG_SCALE_RANGE)
    error = (y.detach() - target).abs()
    nll = ((error * torch.exp(-log_b) + log_b) * brain).sum() / brain.sum().clamp(min=1)
    loss = l1 + ssim_weight * (1 - s) + nll_weight * nll
    parts = {"l1": l1.detach(), "ssim": s.detach(), "nll": nll.detach()}
    if quantile_weight > 0:
        q = quantile_loss(y, target, brain)
        loss = loss + quantile_weight * q
        parts["quantile"] = q.detach()
    for name, weight, inside in (("lesion_l1", lesion_weight, lambda c: c > 0), ("et_l1", enhancing_weight,
                                                                                lambda c: c == 3)):
        if weight > 0 and lesion is not None:
            region = inside(lesion) & brain
            term = ((shown - target).abs() * region).sum() / region.sum().clamp(min=1)
            loss = loss + weight * term
            parts[name] = term.detach()
    return loss, parts
