"""Bring your own model: third-party architectures exported, imported, run and evaluated (issue 16).

Parity: the pipeline's ONNX output equals direct torch inference on the same normalized input, with the
same window placement and blending, to 1e-4 in normalized units; the written file is that result
de-normalized.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import Device, Modality
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.synthesis.generate import generate_volume, generate_windows
from brasyn_infer.synthesis.normalize import background_mask
from brasyn_infer.synthesis.windows import BlendMode
from tests.conftest import HAS_TORCH, make_case

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")
PARITY = 1e-4


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:") and "fix:" in lines[0], result.output
    return lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The two third-party generators, randomly initialized (seeded) and exported as a participant would."""
    import torch

    from tests.thirdparty import SIT3D, UNet2D, export_onnx

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("byom")
    unet, sit = UNet2D().eval(), SIT3D().eval()
    export_onnx(unet, folder / "unet2d.onnx", (torch.randn(2, 4, 240, 240),), ["x"])
    export_onnx(sit, folder / "sit3d.onnx", (torch.randn(1, 4, 32, 32, 32), torch.zeros(1)), ["x", "missing"])
    return {"folder": folder, "unet": unet, "sit": sit}


def torch_slice_model(net):
    import torch

    def run(x, mask=None, missing=None, view=None):  # noqa: ARG001 - the contract's optional inputs
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return run


def torch_window_model(net):
    import torch

    def run(x, missing):
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(missing)).numpy()

    return run


def parity_case(tmp_path: Path, missing: str = "t1c") -> tuple[Path, dict[Modality, np.ndarray]]:
    folder = make_case(tmp_path / "in", "BraTS-GLI-00003-000", missing=missing, shape=(44, 52, 36))
    volumes = {}
    for path in folder.glob("*.nii.gz"):
        volumes[Modality(path.name.split("-")[-1].split(".")[0])] = nib.load(str(path)).get_fdata(dtype=np.float32)
    return folder.parent, volumes


def check_file(output: Path, expected: np.ndarray) -> float:
    written = nib.load(str(output)).get_fdata(dtype=np.float32)
    scale = float(np.percentile(expected[expected > 0], 99.5))
    diff = float(np.abs(written - expected).max())
    assert diff <= PARITY * scale * 10, (diff, scale)  # scanner units: the 1e-4 of normalized units, scaled
    return diff / scale


def test_unet2d_export_import_run_evaluate(exported, tmp_path):
    weights = tmp_path / "weights"
    result = invoke("import", exported["folder"] / "unet2d.onnx", "--kind", "slice2d", "--normalization", "minmax",
                    "--range", "-1", "1", "--view", "axial", "--view", "coronal", "--out", weights, "--name", "unet",
                    "--source", "pix2pix U-Net (MM-GAN / ResViT style), random init")
    assert result.exit_code == 0, result.output
    manifest = json.loads((weights / "unet.json").read_text())
    assert manifest["inputs"] == ["x"] and manifest["views"] == ["axial", "coronal"] and manifest["kind"] == "slice2d" if "kind" in manifest else manifest["views"] == ["axial", "coronal"]
    inp, volumes = parity_case(tmp_path)
    synth = Synthesizer(weights / "unet.json", device=Device.CPU)
    inputs = {m: v for m, v in volumes.items()}
    x4, scales = synth.normalizer.stack(inputs, Modality.T1C)
    ours = synth.generate(x4, Modality.T1C, background_mask(x4, Modality.T1C, synth.normalizer.fill))
    theirs = generate_volume(torch_slice_model(exported["unet"]), x4, Modality.T1C, synth.views, 4,
                             fill=synth.normalizer.fill)
    diff = float(np.abs(ours - theirs).max())
    print(f"\n    UNet2D (slice2d, axial+coronal): max |ONNX pipeline - torch| = {diff:.2e} normalized units")
    assert diff <= PARITY
    run = invoke("run", inp, tmp_path / "out", "--weights", weights / "unet.json", "--quiet")
    assert run.exit_code == 0, run.output
    expected = synth.normalizer.restore(theirs.copy(), background_mask(x4, Modality.T1C, synth.normalizer.fill),
                                        Modality.T1C, scales)
    print(f"    written file vs torch, de-normalized: {check_file(tmp_path / 'out' / 'BraTS-GLI-00003-000-t1c.nii.gz', expected):.2e} of p99.5")
    data = tmp_path / "data"
    for i in range(2):
        make_case(data, f"BraTS-GLI-0001{i}-000", missing="none", shape=(44, 52, 36))
    report = invoke("evaluate", data, tmp_path / "report", "--weights", weights / "unet.json", "--drop", "t2w",
                    "--baseline", "mean", "--quiet")
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize("placement", ["brain", "center"])
def test_sit3d_export_import_run_evaluate(exported, tmp_path, placement):
    weights = tmp_path / "weights"
    extra = ["--crop", "40", "48", "32"] if placement == "center" else []
    result = invoke("import", exported["folder"] / "sit3d.onnx", "--kind", "window3d", "--normalization", "minmax",
                    "--range", "0", "1", "--overlap", "0.5", "--blend", "gaussian", "--placement", placement, *extra,
                    "--out", weights, "--name", "sit", "--source", "BraSyn tutorial 3D generator shape, random init")
    assert result.exit_code == 0, result.output
    manifest = json.loads((weights / "sit.json").read_text())
    assert manifest["kind"] == "window3d" and manifest["windows"]["window"] == [32, 32, 32]
    assert manifest["inputs"] == ["x", "missing"]
    inp, volumes = parity_case(tmp_path, missing="t2f")
    synth = Synthesizer(weights / "sit.json", device=Device.CPU)
    x4, scales = synth.normalizer.stack(volumes, Modality.T2F)
    background = background_mask(x4, Modality.T2F, synth.normalizer.fill)
    ours = synth.generate(x4, Modality.T2F, background)
    plan = synth.manifest.window_plan
    assert plan["placement"] == placement and plan["overlap"] == 0.5
    theirs = generate_windows(torch_window_model(exported["sit"]), x4, Modality.T2F, background, (32, 32, 32),
                              plan["overlap"], BlendMode(plan["blend"]), placement, plan["crop"], 1,
                              synth.normalizer.fill)
    diff = float(np.abs(ours - theirs).max())
    print(f"\n    SIT3D (window3d 32^3, {placement}, overlap 0.5, gaussian): max |ONNX pipeline - torch| = {diff:.2e}")
    assert diff <= PARITY
    assert synth.work_total(volumes) > 1  # several windows: blending is exercised
    run = invoke("run", inp, tmp_path / "out", "--weights", weights / "sit.json", "--quiet")
    assert run.exit_code == 0, run.output
    expected = synth.normalizer.restore(theirs.copy(), background, Modality.T2F, scales)
    print(f"    written file vs torch, de-normalized: {check_file(tmp_path / 'out' / 'BraTS-GLI-00003-000-t2f.nii.gz', expected):.2e} of p99.5")
    data = tmp_path / "data"
    make_case(data, "BraTS-GLI-00020-000", missing="none", shape=(44, 52, 36))
    report = invoke("evaluate", data, tmp_path / "report", "--weights", weights / "sit.json", "--drop", "t1n",
                    "--baseline", "mean", "--quiet")
    assert report.exit_code == 0, report.output


def test_malformed_graphs_get_one_line(tmp_path):
    """Wrong rank, wrong channel count, no batch dimension, an unknown input: one line each, nothing written."""
    import torch
    from torch import nn

    from tests.thirdparty import export_onnx

    class Plain(nn.Module):
        def __init__(self, channels: int, three_d: bool = False) -> None:
            super().__init__()
            self.conv = (nn.Conv3d if three_d else nn.Conv2d)(channels, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    class NoBatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x.unsqueeze(0))[0]

    class Extra(nn.Module):
        def forward(self, x, age):
            return x[:, :1] * age

    export_onnx(Plain(4), tmp_path / "two_d.onnx", (torch.randn(1, 4, 240, 240),), ["x"])
    export_onnx(Plain(3), tmp_path / "three_channels.onnx", (torch.randn(1, 3, 240, 240),), ["x"])
    export_onnx(NoBatch(), tmp_path / "no_batch.onnx", (torch.randn(4, 240, 240),), ["x"], dynamic_batch=False)
    export_onnx(Extra(), tmp_path / "extra.onnx", (torch.randn(1, 4, 240, 240), torch.ones(1, 1, 1, 1)), ["x", "age"])
    (tmp_path / "garbage.onnx").write_bytes(b"not onnx")
    cases = {
        ("two_d.onnx", "window3d"): "--kind slice2d",
        ("three_channels.onnx", "slice2d"): "3 channels",
        ("no_batch.onnx", "slice2d"): "no batch dimension",
        ("extra.onnx", "slice2d"): "age",
        ("garbage.onnx", "slice2d"): "cannot load",
    }
    for (file, kind), expected in cases.items():
        result = invoke("import", tmp_path / file, "--kind", kind, "--out", tmp_path / "w", "--window", "32", "32", "32")
        line = one_error_line(result)
        assert expected in line, line
        print(f"    {file} as {kind}: {line}")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").glob("*.json"))


def test_a_failed_import_in_place_keeps_the_users_model(tmp_path):
    """Regression: `import weights/mine.onnx --out weights --name mine` whose smoke run fails used to delete mine.onnx
    (the target was the source). Only what the command created is removed."""
    import torch
    from torch import nn

    from tests.thirdparty import export_onnx

    class GivesNaN(nn.Module):
        def forward(self, x):
            return torch.log(x[:, :1] - 10.0)  # normalized inputs are <= 1: log of a negative number

    folder = tmp_path / "weights"
    folder.mkdir()
    export_onnx(GivesNaN(), folder / "mine.onnx", (torch.randn(1, 4, 240, 240),), ["x"])
    original = (folder / "mine.onnx").read_bytes()
    result = invoke("import", folder / "mine.onnx", "--kind", "slice2d", "--out", folder, "--name", "mine")
    assert "non-finite" in one_error_line(result)
    assert (folder / "mine.onnx").read_bytes() == original  # the user's only copy is still there
    assert sorted(p.name for p in folder.iterdir()) == ["mine.onnx"]  # the manifest it wrote is gone
    result = invoke("import", folder / "mine.onnx", "--kind", "slice2d", "--out", tmp_path / "elsewhere", "--name", "x")
    assert "non-finite" in one_error_line(result)
    assert not any((tmp_path / "elsewhere").iterdir()) and (folder / "mine.onnx").read_bytes() == original


def test_a_second_output_named_other_than_y_gives_the_map(tmp_path):
    """Regression: a graph with outputs `out` and `log_scale` imported, then `run --uncertainty` and evaluate failed
    with "the graph has no output y". The synthesis is the first output whatever its name; import runs the map."""
    import torch

    from tests.thirdparty import export_onnx

    class TwoOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.tanh(y[:, :1]), y[:, 1:] - 2.0

    torch.manual_seed(0)
    export_onnx(TwoOutputs().eval(), tmp_path / "two.onnx", (torch.randn(2, 4, 240, 240),), ["x"],
                outputs=["out", "log_scale"])
    result = invoke("import", tmp_path / "two.onnx", "--out", tmp_path / "w", "--name", "two", "--view", "axial")
    assert result.exit_code == 0, result.output
    inp, _ = parity_case(tmp_path)
    run = invoke("run", inp, tmp_path / "out", "--weights", tmp_path / "w" / "two.json", "--uncertainty",
                 tmp_path / "unc", "--quiet")
    assert run.exit_code == 0, run.output
    unc = nib.load(str(tmp_path / "unc" / "BraTS-GLI-00003-000-t1c-uncertainty.nii.gz")).get_fdata()
    assert np.isfinite(unc).all() and unc.max() > 0
    data = tmp_path / "data"
    for i in range(2):
        make_case(data, f"BraTS-GLI-0001{i}-000", missing="none", shape=(44, 52, 36))
    report = invoke("evaluate", data, tmp_path / "report", "--weights", tmp_path / "w" / "two.json", "--drop", "t2w",
                    "--baseline", "none", "--quiet")
    assert report.exit_code == 0, report.output


def test_uncertainty_from_a_3d_model_names_the_real_fix(exported, tmp_path):
    """Regression: the error advised --view or --tta, which do not apply to a window3d generator."""
    result = invoke("import", exported["folder"] / "sit3d.onnx", "--kind", "window3d", "--normalization", "minmax",
                    "--range", "0", "1", "--fill", "0", "--window", "32", "32", "32", "--out", tmp_path / "w",
                    "--name", "sit")
    assert result.exit_code == 0, result.output
    inp, _ = parity_case(tmp_path)
    run = invoke("run", inp, tmp_path / "out", "--weights", tmp_path / "w" / "sit.json", "--uncertainty",
                 tmp_path / "unc", "--quiet")
    line = one_error_line(run)
    assert "3D" in line and "log_scale" in line and "--view" not in line and "--tta" not in line
