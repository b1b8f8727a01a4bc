"""The refiner's trainer on synthetic cases: pairs, crops, a falling loss, an exported manifest; the LOCO rule."""

import numpy as np
import pytest

from tests.conftest import brain_volume, make_case, needs_torch, write_nifti


@pytest.fixture
def oof(tmp_path):
    """Two complete synthetic cases and 'generator outputs': the real volume, distorted nonlinearly."""
    cases, synthesized = tmp_path / "cases", tmp_path / "oof"
    for n, case_id in enumerate(["C-1", "C-2"]):
        make_case(cases, case_id, missing="none")
        (synthesized / case_id).mkdir(parents=True)
        for i, mod in enumerate(("t1c", "t1n", "t2f", "t2w")):
            real = brain_volume(scale=800 + 200 * i, seed=i)
            fake = np.where(real > 0, (real / real.max()) ** 3 * 1000 + 50 * (n + 1), 0)  # z-scores differ
            write_nifti(synthesized / case_id / f"{case_id}-{mod}.nii.gz", fake, dtype=np.float32)
    return cases, synthesized


@needs_torch
def test_pairs_crops_and_a_falling_loss(oof, tmp_path):
    import torch

    from brasyn_infer.authoring.models.refiner import Refiner, RefinerConfig
    from training.train_refiner import CropSampler, load_pairs, masked_l1

    cases, synthesized = oof
    pairs = load_pairs(cases / "C-1", synthesized)
    assert [p.missing.value for p in pairs] == ["t1c", "t1n", "t2f", "t2w"]
    sampler = CropSampler(pairs, crop=16, seed=0)
    batch = sampler.batch(3)
    assert batch["x"].shape == (3, 4, 16, 16, 16) and batch["target"].shape == batch["brain"].shape == (3, 1, 16, 16, 16)
    torch.manual_seed(0)
    net = Refiner(RefinerConfig(width=4, levels=2, decoder_convs=1)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    fixed = {k: torch.from_numpy(v) for k, v in sampler.batch(2, augment=False).items()}
    losses = []
    for _ in range(15):
        loss = masked_l1(net(fixed["x"], fixed["missing"]), fixed["target"], fixed["brain"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.9 * losses[0], losses


@needs_torch
def test_trainer_exports_a_loadable_refiner(oof, tmp_path):
    from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest
    from training.train_refiner import main

    cases, synthesized = oof
    main(["--cases", str(cases), "--synthesized", str(synthesized), "--holdout", "C-2", "--width", "4", "--crop", "16",
          "--steps", "4", "--window", "16", "--out", str(tmp_path / "w"), "--name", "r"])
    manifest = load_refiner_manifest(tmp_path / "w" / "r.json")
    assert manifest.window == (16, 16, 16)
    assert manifest.training["data"] == {"train": ["C-1"], "holdout": ["C-2"], "synthesized": str(synthesized)}
    assert "holdout" in manifest.training["history"][-1]
