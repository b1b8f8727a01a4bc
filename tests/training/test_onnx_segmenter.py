"""training/onnx_segmenter.py: the torch weights of a segmenter recovered from its ONNX export, checked against ONNX
Runtime, so that a shipped model (which keeps only its graph) can be fine-tuned or teach another."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def test_the_recovered_checkpoint_computes_what_the_graph_computes(tmp_path):
    import torch

    from brasyn_infer.authoring.models.segmenter_export import export_segmenter
    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig
    from training.onnx_segmenter import convert
    from training.train_segmenter import load_checkpoint

    torch.manual_seed(0)
    net = UNet2D(UNetConfig(in_channels=16, widths=(4, 8))).eval()
    with torch.no_grad():  # not the initial values: the instance norms' affine weights must come back too
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    manifest = export_segmenter(net, tmp_path / "w", "seg-any", context=1, training={"steps": 7}, availability=True)
    path = convert(manifest, tmp_path / "ckpt" / "seg-any.safetensors")
    back, info = load_checkpoint(path)
    assert info["availability"] is True and info["context"] == 1 and info["training"] == {"steps": 7}
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    x = torch.randn(1, 16, 32, 32)
    with torch.no_grad():
        assert np.allclose(back(x).numpy(), net(x).numpy(), atol=1e-6)
    assert json.loads(manifest.read_text())["sha256"] == info["converted_from"]["sha256"]


def test_a_manifest_that_is_not_a_segmenters_is_refused(tmp_path):
    from training.onnx_segmenter import convert

    manifest = tmp_path / "default.json"
    manifest.write_text(json.dumps({"name": "default", "onnx": "default.onnx", "config": {"dim": 8}}))
    with pytest.raises(SystemExit, match="not a segmenter manifest"):
        convert(manifest, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
