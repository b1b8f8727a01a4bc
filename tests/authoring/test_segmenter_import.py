"""Bring your own segmenter: a third-party-shaped ONNX segmenter (an nnU-Net-like 3D network taking the modalities in
nnU-Net's BraTS order, whose output channels are its own label order) imported and run through `segment`."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from tests.conftest import HAS_TORCH, make_case

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def flair_thresholder():
    """A 1x1x1 convolution over (t1n, t1c, t2w, t2f) z-scores whose channel 1 ("edema" in this network's order, our
    class 2) wins where FLAIR is above its mean: a segmenter with a known answer."""
    import torch

    net = torch.nn.Conv3d(4, 4, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[1, 3] = 10.0  # channel 1 follows FLAIR (input channel 3 in nnU-Net's order)
        net.bias[0] = 0.0
    return net.eval()


def test_a_third_party_segmenter_runs_through_segment(tmp_path):
    import torch

    net = flair_thresholder()
    torch.onnx.export(net, (torch.randn(1, 4, 16, 16, 16),), str(tmp_path / "nnunet.onnx"), input_names=["input"],
                      output_names=["seg"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "b", 2: "x", 3: "y", 4: "z"}, "seg": {0: "b", 2: "x", 3: "y", 4: "z"}})
    result = CliRunner().invoke(app, ["import", str(tmp_path / "nnunet.onnx"), "--kind", "segmenter",
                                      "--seg-kind", "volume3d", "--channels", "t1n,t1c,t2w,t2f",
                                      "--classes", "0,2,1,3", "--multiple", "8", "--out", str(tmp_path / "w"),
                                      "--name", "nn"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "w" / "nn.json").read_text())
    assert manifest["architecture"] == "segmenter" and manifest["channels"] == ["t1n", "t1c", "t2w", "t2f"]
    case = make_case(tmp_path / "in", "Brats18_X_1", missing="none")
    for path in case.iterdir():  # BraTS 2018 names: the output's labels follow them
        suffix = {"t1c": "t1ce", "t1n": "t1", "t2f": "flair", "t2w": "t2"}[path.name.split("-")[-1].split(".")[0]]
        path.rename(case / f"Brats18_X_1_{suffix}.nii.gz")
    run = CliRunner().invoke(app, ["segment", str(tmp_path / "in"), str(tmp_path / "out"), "--segmenter",
                                   str(tmp_path / "w" / "nn.json"), "--quiet"])
    assert run.exit_code == 0, run.output
    seg = np.asarray(nib.load(str(tmp_path / "out" / "Brats18_X_1_seg.nii.gz")).dataobj)
    flair = nib.load(str(case / "Brats18_X_1_flair.nii.gz")).get_fdata()
    brain = flair > 0
    expected = brain & (flair > flair[brain].mean())
    assert set(np.unique(seg)) <= {0, 2} and np.array_equal(seg == 2, expected)  # "edema" = label 2 in 2018 too


def test_a_graph_that_does_not_fit_the_manifest_is_refused_and_nothing_is_left(tmp_path):
    import torch

    torch.onnx.export(torch.nn.Conv3d(4, 3, 1).eval(), (torch.randn(1, 4, 8, 8, 8),), str(tmp_path / "s.onnx"),
                      input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    result = CliRunner().invoke(app, ["import", str(tmp_path / "s.onnx"), "--kind", "segmenter", "--out",
                                      str(tmp_path / "w"), "--name", "s"])  # 3 output channels, 4 classes given
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "--classes" in lines[0]
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())
