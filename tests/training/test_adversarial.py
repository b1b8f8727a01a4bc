"""training/adversarial.py: the tumor PatchGAN's terms count only the patches over the expert tumor, teach the
generator through a frozen discriminator, and a training run with the term saves and resumes the discriminator."""

from __future__ import annotations

import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


@pytest.fixture
def batch():
    import torch

    torch.manual_seed(0)
    x = torch.rand(2, 4, 32, 32) * 2 - 1
    real, fake = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    lesion = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    lesion[0, 0, 4:10, 4:10] = 3  # one tumor, top left of the first sample
    return x, real, fake, torch.tensor([0.0, 2.0]), lesion


def test_only_the_tumor_patches_count(batch):
    import torch

    from training.adversarial import PatchDiscriminator, discriminator_term, generator_term, tumor_patches

    x, real, fake, missing, lesion = batch
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


def test_the_generator_learns_through_a_frozen_discriminator(batch):
    from training.adversarial import PatchDiscriminator, discriminator_term, generator_term

    x, real, fake, missing, lesion = batch
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


def test_a_run_with_the_term_saves_and_resumes_the_discriminator(tmp_path):
    from tests.training.test_train import CASES, LEGACY, tiny_args

    if not CASES.is_dir() or not LEGACY.is_dir():
        pytest.skip("../shared/data is absent")
    import torch

    from training.train import train

    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "TCGA-DU-7294").symlink_to((CASES / "TCGA-DU-7294").resolve())
    (tmp_path / "cases" / "Brats18_CBICA_ABM_1").symlink_to((LEGACY / "Brats18_CBICA_ABM_1").resolve())
    args = ["--no-export", "--adv-weight", "0.1", "--tumor", "1.0"]
    record = train(tiny_args(tmp_path, "--steps", "2", *args))
    assert record["recipe"]["adv_weight"] == 0.1 and "adv_g" in record["final"] and "adv_d" in record["final"]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert set(state["extras"]) == {"discriminator", "discriminator_optimizer"}
    assert state["extras"]["discriminator_optimizer"]["state"]  # the discriminator took steps

    from training.adversarial import PatchDiscriminator
    from training.runstate import restore

    class Net(torch.nn.Module):  # stands in for the generator: restore loads what save_state saved
        def load_state_dict(self, *_):
            pass

    disc = PatchDiscriminator(9)
    opt_d = torch.optim.Adam(disc.parameters())
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
    opt.load_state_dict = lambda *_: None
    step, _, _ = restore(state, Net(), opt, {"discriminator": disc, "discriminator_optimizer": opt_d})
    assert step == 2
    assert all(torch.equal(v, state["extras"]["discriminator"][k]) for k, v in disc.state_dict().items())
    with pytest.raises(SystemExit, match="another recipe"):
        train(tiny_args(tmp_path, "--steps", "2", "--no-export", "--resume"))  # the term off is another recipe
