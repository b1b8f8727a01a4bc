"""The torch HFGAN against the published layout and the reference implementation's outputs."""

import json
import re

import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, needs_torch

pytestmark = needs_torch


def reference_net(cfg_name):
    from brasyn_infer.authoring.models.hfgan import HFGANConfig, load_checkpoint

    cfg = HFGANConfig.from_dict(json.loads((SHARED / "reference" / f"{cfg_name}.json").read_text()))
    return load_checkpoint(str(SHARED / "reference" / f"{cfg_name}.safetensors"), cfg)


def reference_batch(cfg_name):
    import torch

    data = np.load(SHARED / "reference" / f"{cfg_name}_slices.npz")
    n = len(data["x"])
    mask = torch.zeros(n, 4)
    mask[torch.arange(n)[:, None], torch.from_numpy(data["available"])] = 1
    return data, torch.from_numpy(data["x"]), mask, torch.from_numpy(data["missing"]).float()


@needs_shared
@pytest.mark.parametrize("cfg_name", ["A", "B"])
def test_published_key_layout_dim64(cfg_name):
    """Every published key and shape (spec key lists), built on the meta device: no memory."""
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGAN, config_preset

    text = (SHARED / "spec" / f"hfgan_keys_{cfg_name}_dim64.txt").read_text().splitlines()
    expected = {}
    for line in text:
        if line.startswith("#") or not line.strip():
            continue
        name, shape, _ = line.split("\t")
        expected[name] = tuple(int(v) for v in re.findall(r"\d+", shape))
    with torch.device("meta"):
        net = HFGAN(config_preset(cfg_name, dim=64))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == expected


@needs_shared
@pytest.mark.parametrize("cfg_name", ["A", "B"])
@pytest.mark.parametrize("view", [0, 1, 2])
def test_torch_matches_reference(cfg_name, view):
    import torch

    net = reference_net(cfg_name)
    data, x, mask, missing = reference_batch(cfg_name)
    with torch.no_grad():
        y = net(x, mask, missing, torch.full((len(x),), float(view))).numpy()
    assert np.abs(y - data[f"y_view{view}"]).max() <= 1e-4


def test_mask_fusion_batch_independent_and_k1_path():
    """Samples with different missing modalities (and k=1) in one batch equal their single runs."""
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig

    torch.manual_seed(0)
    net = HFGAN(HFGANConfig(dim=8)).eval()
    x = torch.rand(3, 4, 240, 240) * 2 - 1
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1], [0, 0, 1, 0]], dtype=torch.float32)
    missing = torch.tensor([2.0, 0.0, 1.0])
    view = torch.zeros(3)
    with torch.no_grad():
        together = net(x, mask, missing, view)
        alone = torch.cat([net(x[i : i + 1], mask[i : i + 1], missing[i : i + 1], view[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(together).all()


def test_strip_module_prefix_only_first():
    from brasyn_infer.authoring.models.hfgan import strip_module_prefix

    assert list(strip_module_prefix({"module.a.module.b": 1, "c": 2})) == ["a.module.b", "c"]
