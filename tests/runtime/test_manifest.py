import json
import shutil

import pytest

from brasyn_infer.errors import WeightsError
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import load_manifest, resolve_manifest_path, verify


@pytest.fixture
def weights_copy(tmp_path, tiny_weights):
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(tiny_weights, folder / "tiny.json")
    shutil.copy(tiny_weights.with_suffix(".onnx"), folder / "tiny.onnx")
    return folder / "tiny.json"


def test_resolution_by_name_path_and_folder(weights_copy, monkeypatch):
    monkeypatch.setenv("BRASYN_WEIGHTS_DIR", str(weights_copy.parent))
    assert resolve_manifest_path("tiny") == weights_copy
    assert resolve_manifest_path(str(weights_copy)) == weights_copy
    assert resolve_manifest_path(str(weights_copy.parent)) == weights_copy
    with pytest.raises(WeightsError, match="no weights named 'nope'"):
        resolve_manifest_path("nope")


def test_sha256_mismatch_is_refused_before_loading(weights_copy):
    onnx = weights_copy.with_suffix(".onnx")
    onnx.write_bytes(onnx.read_bytes() + b"tampered")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        verify(load_manifest(weights_copy))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        Synthesizer(weights_copy)


def test_incomplete_manifest_and_missing_onnx(weights_copy):
    data = json.loads(weights_copy.read_text())
    weights_copy.with_suffix(".onnx").unlink()
    with pytest.raises(WeightsError, match="ONNX file is missing"):
        load_manifest(weights_copy)
    del data["sha256"]
    weights_copy.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="lacks sha256"):
        load_manifest(weights_copy)


def test_window3d_manifest_needs_a_window(tmp_path, tiny_weights):
    data = json.loads(tiny_weights.read_text())
    shutil.copy(tiny_weights.with_suffix(".onnx"), tmp_path / data["onnx"])
    for windows, message in [({}, "windows.window"), ({"window": [32, 32]}, "windows.window"),
                             ({"window": [32, 32, 32], "placement": "edge"}, "placement")]:
        (tmp_path / "m.json").write_text(json.dumps({**data, "kind": "window3d", "windows": windows}))
        with pytest.raises(WeightsError, match=message):
            load_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps({**data, "kind": "volume4d"}))
    with pytest.raises(WeightsError, match="unknown kind"):
        load_manifest(tmp_path / "m.json")


def test_brasyn_weights_environment_names_the_default(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("BRASYN_WEIGHTS", str(tiny_weights))
    assert resolve_manifest_path(None) == tiny_weights
    monkeypatch.delenv("BRASYN_WEIGHTS")
    assert resolve_manifest_path(None).name == "default.json"


def test_a_copy_blend_block_is_checked_and_kept(weights_copy):
    data = json.loads(weights_copy.read_text())
    weights_copy.write_text(json.dumps({**data, "copy_blend": {"t1c+t2w": {"t1c": 0.4}}}))
    with pytest.raises(WeightsError, match="patterns.*any.*only"):  # a one-missing model is never blended
        load_manifest(weights_copy)
    weights_copy.write_text(json.dumps({**data, "patterns": "any", "copy_blend": {"t1c+t2w": {"t1c": 1.4}}}))
    with pytest.raises(WeightsError, match=r"not a weight in \[0, 1\]"):
        load_manifest(weights_copy)
    weights_copy.write_text(json.dumps({**data, "patterns": "any", "copy_blend": {"t1c+t2w": {"t1c": 0.4}}}))
    manifest = load_manifest(weights_copy)
    assert manifest.copy_blend == {"t1c+t2w": {"t1c": 0.4}}
    assert manifest.to_json()["copy_blend"] == {"t1c+t2w": {"t1c": 0.4}}
