"""training/losses.py: the intensity-distribution loss and its place in the residual loss."""

import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


@pytest.fixture
def images():
    import torch

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 24, 24, generator=g) * 2 - 1
    inside = torch.zeros_like(target, dtype=torch.bool)
    inside[:, :, 4:20, 4:20] = True
    return target, inside


def test_the_quantile_loss_ignores_where_values_lie(images):
    import torch

    from training.losses import quantile_loss

    target, inside = images
    shuffled = target.clone()
    for s in range(len(target)):  # the same values inside the mask, in another order
        values = target[s][inside[s]]
        shuffled[s][inside[s]] = values[torch.randperm(values.numel())]
    assert float(quantile_loss(shuffled, target, inside)) == 0.0
    assert float((shuffled - target).abs()[inside].mean()) > 0.1


def test_the_quantile_loss_penalizes_a_compressed_tail_and_only_inside(images):
    from training.losses import quantile_loss

    target, inside = images
    compressed = target.clamp(max=0.5)
    expected = float((target - compressed)[inside].sum() / inside.sum())
    assert float(quantile_loss(compressed, target, inside)) == pytest.approx(expected, rel=1e-5)
    outside_changed = target.clone()
    outside_changed[~inside] = 5.0
    assert float(quantile_loss(outside_changed, target, inside)) == 0.0


def test_an_empty_mask_counts_zero(images):
    from training.losses import quantile_loss

    target, inside = images
    inside = inside.clone()
    inside[1] = False
    only_first = quantile_loss(target[:1] * 0.5, target[:1], inside[:1])
    assert float(quantile_loss(target * 0.5, target, inside)) == pytest.approx(float(only_first) / 2)


def test_the_residual_loss_adds_the_quantile_part_only_when_weighted(images):
    import torch

    from training.losses import residual_loss

    target, inside = images
    y = (target * 0.5).requires_grad_()
    log_b = torch.zeros_like(target)
    off, parts_off = residual_loss(y, log_b, target, ~inside)
    on, parts_on = residual_loss(y, log_b, target, ~inside, quantile_weight=2.0)
    assert "quantile" not in parts_off
    assert float(on - off) == pytest.approx(2.0 * float(parts_on["quantile"]), rel=1e-5)
    on.backward()
    assert y.grad[inside].abs().sum() > 0


def test_the_tumor_aware_terms_weigh_the_tumor_and_its_enhancing_part():
    """Issue 41's lesion-aware terms: the L1 inside the expert tumor and inside its enhancing part, added with their
    weights; a batch without tumor adds nothing; off by default (the shipped recipe's loss is unchanged)."""
    import torch

    from training.losses import residual_loss

    target = torch.zeros(1, 1, 16, 16)
    y = torch.zeros(1, 1, 16, 16)
    y[..., 4:8, 4:8] = 0.5  # an error inside the tumor only
    lesion = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    lesion[..., 4:8, 4:8] = 2
    lesion[..., 4:6, 4:6] = 3
    background = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    log_b = torch.zeros_like(y)
    base, parts = residual_loss(y, log_b, target, background)
    assert "lesion_l1" not in parts
    weighted, parts = residual_loss(y, log_b, target, background, lesion=lesion, lesion_weight=2.0,
                                    enhancing_weight=3.0)
    assert float(parts["lesion_l1"]) == 0.5 and float(parts["et_l1"]) == 0.5
    assert float(weighted - base) == 2.0 * 0.5 + 3.0 * 0.5
    _, empty = residual_loss(y, log_b, target, background, lesion=torch.zeros_like(lesion), lesion_weight=1.0)
    assert float(empty["lesion_l1"]) == 0.0
