"""The weights shipped in weights/: integrity, size limits, provenance."""

import json

import pytest

from brasyn_infer.runtime.manifest import BUNDLED_WEIGHTS_DIR, load_manifest, sha256_of, verify


def test_default_manifest_hash_matches_file():
    manifest = load_manifest("default")
    assert manifest.path.parent == BUNDLED_WEIGHTS_DIR
    assert sha256_of(manifest.onnx_path) == manifest.sha256
    verify(manifest)


def test_size_limits():
    files = [p for p in BUNDLED_WEIGHTS_DIR.rglob("*") if p.is_file()]  # weights/validation/ too
    assert all(p.stat().st_size < 50e6 for p in files)
    assert sum(p.stat().st_size for p in files) < 100e6


@pytest.mark.parametrize("manifest_path", sorted(BUNDLED_WEIGHTS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_model_has_provenance(manifest_path):
    data = json.loads(manifest_path.read_text())
    training = data.get("training") or {}
    if data["architecture"] == "segmenter":  # logits: the class is their argmax
        from brasyn_infer.runtime.segmenter_manifest import load_segmenter_manifest

        load_segmenter_manifest(manifest_path)  # checked, sha256 verified
        assert data["provenance"]["export"]["parity_max_abs_diff"] <= 1e-3
        assert training["command"].startswith("python -m training.train_segmenter") and training["steps"] > 0
        assert training["history"][-1]["loss"] < training["history"][0]["loss"]
        return
    assert data["provenance"]["export"]["parity_max_abs_diff"] <= 1e-4
    if data["architecture"] == "refiner3d":
        from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest

        load_refiner_manifest(manifest_path)  # verifies the sha256
        assert training["command"].startswith("python -m training.train_refiner") and training["history"]
        assert training["history"][-1]["l1"] < training["history"][0]["l1"]
        return
    manifest = load_manifest(manifest_path)
    verify(manifest)
    if "trained_by" in data["provenance"]:
        assert training["steps"] > 0 and training["history"] and training["command"].startswith("python -m training.train")
        assert training["history"][-1]["loss"] < training["history"][0]["loss"]


def test_the_default_refiner_block_resolves():
    """If the default generator names a refiner, it ships beside it and loads (sha256 verified)."""
    from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest

    manifest = load_manifest("default")
    if not manifest.refiner:
        pytest.skip("the default manifest names no refiner")
    refiner = load_refiner_manifest(manifest.refiner["weights"], manifest.path.parent)
    assert refiner.path.parent == BUNDLED_WEIGHTS_DIR


def test_checkpoint_matches_the_onnx_file():
    """weights/default.safetensors is the torch checkpoint the ONNX file was exported from, in float16 (half the
    size in git): both outputs agree within float16's rounding of the weights (outputs of order 1 to 3)."""
    torch = pytest.importorskip("torch")
    import numpy as np
    import onnxruntime as ort

    from brasyn_infer.authoring.models.export import INPUT_NAMES, example_inputs
    from training.train import load_trained

    manifest = load_manifest("default")
    net, info = load_trained(manifest.path.with_suffix(".safetensors"))
    assert info["training"]["steps"] == manifest.training["steps"]
    inputs = example_inputs(2, seed=3)
    session = ort.InferenceSession(str(manifest.onnx_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True) if n in names}
    with torch.no_grad():
        expected = [t.numpy() for t in net(*inputs)]
    got = session.run(None, feed)
    assert len(got) == 2 and all(np.abs(g - e).max() < 5e-3 for g, e in zip(got, expected, strict=True))


def makefile_flags(name: str) -> dict[str, str]:
    """``--flag value`` pairs of a ``NAME = ...`` variable of the repository's Makefile, ``$(VAR)`` expanded."""
    import re
    import shlex

    text = (BUNDLED_WEIGHTS_DIR.parent / "Makefile").read_text().replace("\\\n", " ")
    values = dict(re.findall(r"^(\w+) \??= (.*)$", text, flags=re.M))
    words = shlex.split(re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], values[name]))
    flags, key = {}, None
    for word in words:
        if word.startswith("--"):
            key = word[2:].replace("-", "_")
            flags.setdefault(key, "")
        else:
            flags[key] = (flags[key] + " " + word).strip()
    return flags


def test_the_default_is_the_final_model_of_the_recipe():
    """Trained on all 26 cases by the Makefile's two stages (RECIPE, then TUNE from its network), a residual over
    its prior with its own scale, the map's settings fitted on held-out cases, and the blend with the graph's prior."""
    from brasyn_infer.synthesis.trust import Trust
    from brasyn_infer.synthesis.uncertainty import ScaleMap

    manifest = load_manifest("default")
    record = manifest.training
    assert manifest.architecture == "hfgan-prior-residual" and manifest.outputs == ("y", "log_scale")
    assert record["data"]["holdout"] == [] and len(record["data"]["train"]) == 26
    tune = makefile_flags("TUNE")
    for key, value in tune.items():
        saved = record["recipe"][key]
        assert (sorted(value.split()) == saved if isinstance(saved, list) else float(value) == float(saved)), key
    assert record["steps"] == record["recipe"]["steps"]
    assert record["recipe"]["init"].endswith("final/default.safetensors")
    block = ScaleMap.from_manifest(manifest.uncertainty)
    assert len(block.calibration) == 4
    trust = Trust.from_manifest(manifest.trust)
    blend = {m: float(a) for m, a in (word.split("=") for word in makefile_flags("BLEND")["blend"].split())}
    assert {m.value: a for m, a in trust.blend.items()} == blend
    assert {m.value: c.tolist() for m, c in trust.linear.items()} == {m: record["prior"][m] for m in blend}


def test_the_default_blends_t1c_with_its_prior_and_leaves_the_others_to_the_network():
    """--no-prior changes the default's t1c, toward the generator, and nothing else (a thin synthetic volume)."""
    import numpy as np

    from brasyn_infer.constants import MODALITIES, Modality, View
    from brasyn_infer.pipeline.synthesizer import Synthesizer
    from tests.conftest import brain_volume

    shape = (240, 240, 3)  # three axial slices: the plane the generator needs, little compute
    for missing, blended in ((Modality.T1C, True), (Modality.T2W, False)):
        volumes = {m: brain_volume(shape, 900.0 + 150 * i, seed=i) for i, m in enumerate(MODALITIES) if m is not missing}
        on = Synthesizer("default", View.AXIAL, uncertainty=True).synthesize_stages(volumes, missing)
        off = Synthesizer("default", View.AXIAL, uncertainty=True, prior=False).synthesize_stages(volumes, missing)
        assert np.array_equal(on["uncertainty"], off["uncertainty"])  # the map is the network's either way
        if blended:
            assert not np.allclose(on["generator"], off["generator"], atol=1.0)
        else:
            assert np.array_equal(on["generator"], off["generator"])
