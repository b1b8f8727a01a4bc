"""ONNX export: ONNX Runtime equals the reference outputs; a failed check writes nothing."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, needs_torch

from .test_hfgan import reference_batch, reference_net

pytestmark = needs_torch


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from brasyn_infer.authoring.models.export import export

    out = tmp_path_factory.mktemp("ref-weights")
    return {c: export(reference_net(c), out, f"ref{c}") for c in ("A", "B")} if (SHARED / "reference").is_dir() else {}


@needs_shared
@pytest.mark.parametrize("cfg_name", ["A", "B"])
@pytest.mark.parametrize("view", [0, 1, 2])
def test_onnx_matches_reference(exported, cfg_name, view):
    import onnxruntime as ort

    manifest = exported[cfg_name]
    session = ort.InferenceSession(str(manifest.onnx_path), providers=["CPUExecutionProvider"])
    data, x, mask, missing = reference_batch(cfg_name)
    feed = {"x": x.numpy(), "mask": mask.numpy(), "missing": missing.numpy(),
            "view": np.full(len(x), view, dtype=np.float32)}
    names = {i.name for i in session.get_inputs()}
    y = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
    assert np.abs(y - data[f"y_view{view}"]).max() <= 1e-4


@needs_shared
def test_manifest_records_hash_and_config(exported):
    from brasyn_infer.runtime.manifest import load_manifest, sha256_of

    manifest = load_manifest(exported["B"].path)
    assert manifest.sha256 == sha256_of(manifest.onnx_path)
    assert manifest.config["infuse_view"] is True and manifest.config["dim"] == 8
    assert json.loads(manifest.path.read_text())["provenance"]["export"]["parity_max_abs_diff"] <= 1e-4


def test_parity_failure_writes_nothing(tmp_path, monkeypatch):
    from brasyn_infer.authoring.models import export as export_mod
    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
    from brasyn_infer.errors import WeightsError

    monkeypatch.setattr(export_mod, "parity", lambda net, path, batch=3: 0.5)
    with pytest.raises(WeightsError, match="differs from torch"):
        export_mod.export(HFGAN(HFGANConfig(dim=8)), tmp_path / "w", "bad")
    assert list((tmp_path / "w").iterdir()) == []


@needs_shared
def test_export_cli_writes_manifest_and_onnx(tmp_path):
    from typer.testing import CliRunner

    from brasyn_infer.cli import app
    from brasyn_infer.runtime.manifest import load_manifest, verify

    result = CliRunner().invoke(app, ["export", str(SHARED / "reference" / "B.safetensors"), "--config", "B",
                                      "--out", str(tmp_path), "--name", "refB", "--default-view", "coronal"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "refB.json")
    verify(manifest)
    assert manifest.config["dim"] == 8 and manifest.config["infuse_view"] and manifest.default_view.value == "coronal"
    assert manifest.provenance["checkpoint"] == "B.safetensors"


def test_export_cli_refuses_pickle(tmp_path):
    import torch
    from typer.testing import CliRunner

    from brasyn_infer.cli import app

    fake = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, fake)  # a pickle behind a .safetensors name
    result = CliRunner().invoke(app, ["export", str(fake), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "not a readable safetensors file" in result.output and "pickle" in result.output
    assert not (tmp_path / "out").exists()
