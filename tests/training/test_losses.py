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


def test_the_consistency_input_puts_the_synthesis_in_every_neighbour_block_of_the_target():
    """Segmentation-guided synthesis (issue 41): the segmenter reads the real slices with the synthesis, in z-scores,
    in the target's channel of each neighbour block; the background is 0; availability planes appended on request."""
    import torch

    from training.losses import consistency_input

    seg_x = torch.full((2, 12, 8, 8), 7.0)
    shown = torch.full((2, 1, 8, 8), 0.5)
    background = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    background[..., 0, :] = True
    affine = torch.tensor([[2.0, 1.0], [1.0, -10.0]])  # z = 2 * 0.5 + 1 = 2; z = 0.5 - 10 clipped to -5
    missing = torch.tensor([0.0, 3.0])
    x = consistency_input(shown, background, seg_x, affine, missing)
    for j in range(3):
        assert (x[0, 4 * j, 1:] == 2.0).all() and (x[0, 4 * j, 0] == 0).all()
        assert (x[1, 4 * j + 3, 1:] == -5.0).all()
        assert (x[0, 4 * j + 1:4 * j + 4] == 7.0).all() and (x[1, 4 * j:4 * j + 3] == 7.0).all()
    planes = consistency_input(shown, background, seg_x, affine, missing, extra_planes=4)
    assert planes.shape == (2, 16, 8, 8) and (planes[:, 12:] == 1).all()


def test_the_consistency_loss_pulls_the_synthesis_toward_what_the_judge_reads_as_tumor():
    """A judge that calls a pixel tumor where its t1c channel is bright: the term is lower for a synthesis that is
    bright where the expert tumor is, its gradient reaches the synthesis, and the judge's weights get none."""
    import torch

    from training.losses import consistency_loss

    judge = torch.nn.Conv2d(12, 4, 1)
    with torch.no_grad():
        judge.weight.zero_()
        judge.bias.copy_(torch.tensor([1.0, -2.0, -2.0, -2.0]))
        judge.weight[3, 4] = 3.0  # ET logit from the centre slice's t1c
    for p in judge.parameters():
        p.requires_grad_(False)
    lesion = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    lesion[..., 2:6, 2:6] = 3
    batch = {"seg_x": torch.zeros(1, 12, 8, 8), "seg_affine": torch.tensor([[2.0, 0.0]]),
             "missing": torch.tensor([0.0]), "seg_ok": torch.tensor([1.0]), "lesion": lesion}
    background = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    bright = torch.where(lesion > 0, 1.0, -1.0).float().requires_grad_(True)
    flat = torch.full((1, 1, 8, 8), -1.0)
    good, parts = consistency_loss(judge, bright, background, batch)
    bad, _ = consistency_loss(judge, flat, background, batch)
    assert float(good) < float(bad) and {"seg_ce", "seg_dice"} <= set(parts)
    good.backward()
    assert bright.grad is not None and bright.grad.abs().sum() > 0
    assert judge.weight.grad is None
    off, _ = consistency_loss(judge, flat, background, {**batch, "seg_ok": torch.tensor([0.0])})
    assert float(off) == 0.0


def test_distillation_is_zero_for_the_teachers_own_logits_and_teaches_only_the_student():
    """KL(teacher || student) at the temperature: 0 when the student matches, larger the further it is; the
    gradient reaches the student's logits and never the teacher's."""
    import torch

    from training.losses import distillation_loss

    torch.manual_seed(0)
    teacher = torch.randn(2, 4, 8, 8, requires_grad=True)
    assert float(distillation_loss(teacher.detach().clone(), teacher)) == pytest.approx(0.0, abs=1e-6)
    near = (teacher.detach() + 0.1 * torch.randn(2, 4, 8, 8)).requires_grad_(True)
    far = (teacher.detach() + 2.0 * torch.randn(2, 4, 8, 8)).requires_grad_(True)
    loss_near, loss_far = distillation_loss(near, teacher), distillation_loss(far, teacher)
    assert 0 < float(loss_near) < float(loss_far)
    loss_far.backward()
    assert far.grad is not None and float(far.grad.abs().sum()) > 0 and teacher.grad is None
    # the temperature squared keeps the scale: a higher temperature does not shrink the term toward 0
    assert float(distillation_loss(far, teacher, 4.0)) > 0.1 * float(loss_far)


@pytest.fixture
def gan_batch():
    import torch

    torch.manual_seed(0)
    x = torch.rand(2, 4, 32, 32) * 2 - 1
    real, fake = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    lesion = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    lesion[0, 0, 4:10, 4:10] = 3  # one tumor, top left of the first sample
    return x, real, fake, torch.tensor([0.0, 2.0]), lesion


def test_only_the_tumor_patches_count(gan_batch):
    import torch

    from training.losses import PatchDiscriminator, discriminator_term, generator_term, tumor_patches

    x, real, fake, missing, lesion = gan_batch
    disc = PatchDiscriminator(9, width=8)
    assert disc(torch.zeros(2, 9, 32, 32)).shape == (2, 1, 4, 4)
    weight = tumor_patches(lesion, (4, 4))
    assert weight[0, 0, 0, 0] == 1 and weight[0, 0, 0, 1] == 1 and weight.sum() == 4 and weight[1].sum() == 0
    g, d = generator_term(disc, x, fake, missing, lesion), discriminator_term(disc, x, real, fake, missing, lesion)
    assert float(g.detach()) > 0 and float(d.detach()) > 0
    # the second sample holds no tumor: whatever it shows, neither term changes (instance norm is per sample)
    moved = fake.clone()
    moved[1] = -moved[1]
    assert float(discriminator_term(disc, x, real, moved, missing, lesion)) == pytest.approx(float(d), abs=1e-6)
    assert float(generator_term(disc, x, moved, missing, lesion)) == pytest.approx(float(g), abs=1e-6)
    none = torch.zeros_like(lesion)
    assert float(generator_term(disc, x, fake, missing, none)) == 0
    assert float(discriminator_term(disc, x, real, fake, missing, none)) == 0


def test_the_generator_learns_through_a_frozen_discriminator(gan_batch):
    from training.losses import PatchDiscriminator, discriminator_term, generator_term

    x, real, fake, missing, lesion = gan_batch
    disc = PatchDiscriminator(9, width=8)
    fake = fake.clone().requires_grad_(True)
    disc.requires_grad_(False)
    generator_term(disc, x, fake, missing, lesion).backward()
    disc.requires_grad_(True)
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    assert all(p.grad is None for p in disc.parameters())
    fake.grad = None
    discriminator_term(disc, x, real, fake, missing, lesion).backward()
    assert fake.grad is None and all(p.grad is not None for p in disc.parameters())
