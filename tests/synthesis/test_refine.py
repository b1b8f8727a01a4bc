"""The refiner stage: z-scoring, the brain box, sliding-window refinement, its manifest and the Synthesizer."""

import json

import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest
from brasyn_infer.synthesis.refine import refine_volume, refiner_input, window_count, zscore_nonzero
from brasyn_infer.synthesis.windows import BlendMode, brain_box
from tests.conftest import brain_volume


def inputs_for(missing: Modality, shape=(30, 34, 22)) -> dict[Modality, np.ndarray]:
    return {m: brain_volume(shape, 500 + 300 * i, seed=i) for i, m in enumerate(Modality) if m is not missing}


def test_zscore_over_nonzero_voxels_only():
    v = brain_volume()
    z, mean, std = zscore_nonzero(v)
    fg = v > 0
    assert abs(z[fg].mean()) < 1e-5 and abs(z[fg].std() - 1) < 1e-4
    assert (z[~fg] == 0).all()
    assert mean == pytest.approx(float(v[fg].mean()), rel=1e-6)
    assert zscore_nonzero(np.zeros((3, 3, 3)))[0].max() == 0  # empty volume: no division by zero
    region = np.ones(v.shape, bool)
    z_all = zscore_nonzero(v, region)[0]  # same statistics, written everywhere: zeros keep their value
    np.testing.assert_allclose(z_all[~fg], -mean / zscore_nonzero(v)[2], rtol=1e-5)


def test_brain_box_grows_by_the_margin_and_clips():
    brain = np.zeros((20, 20, 20), bool)
    brain[5:9, 2:4, 10:19] = True
    assert brain_box(brain, margin=3) == (slice(2, 12), slice(0, 7), slice(7, 20))
    assert brain_box(np.zeros((4, 5, 6), bool)) == (slice(0, 4), slice(0, 5), slice(0, 6))


def test_refiner_input_places_the_synthesized_volume_in_the_missing_channel():
    inputs = inputs_for(Modality.T1N)
    synthesized = brain_volume((30, 34, 22), 700, seed=9)
    x4, mean, std = refiner_input(inputs, synthesized, synthesized == 0, Modality.T1N)
    np.testing.assert_allclose(x4[1], zscore_nonzero(synthesized)[0])
    np.testing.assert_allclose(x4[0], zscore_nonzero(inputs[Modality.T1C])[0])
    assert mean > 0 and std > 0


def identity(x, missing):
    return x[np.arange(len(x)), missing.astype(int)][:, None]


@pytest.mark.parametrize("window", [(8, 8, 8), (16, 12, 8), (64, 64, 64)])  # the last is larger than the volume
def test_an_identity_refiner_returns_its_input(window):
    missing = Modality.T2W
    inputs = inputs_for(missing)
    synthesized = brain_volume((30, 34, 22), 700, seed=9)
    background = synthesized == 0
    out = refine_volume(identity, inputs, synthesized, background, missing, window, 0.5, BlendMode.GAUSSIAN)
    np.testing.assert_allclose(out, synthesized, rtol=1e-5, atol=1e-2)
    assert (out[background] == 0).all()


def test_a_constant_residual_shifts_by_one_std_inside_the_brain():
    missing = Modality.T1C
    inputs = inputs_for(missing)
    synthesized = brain_volume((30, 34, 22), 700, seed=9)
    background = synthesized == 0
    std = zscore_nonzero(synthesized)[2]
    out = refine_volume(lambda x, m: identity(x, m) + 1, inputs, synthesized, background, missing, (8, 8, 8), 0.25,
                        BlendMode.HANN)
    np.testing.assert_allclose(out[~background], synthesized[~background] + std, rtol=1e-4)
    assert (out[background] == 0).all()


def test_window_count_matches_the_windows_run():
    calls = []
    missing = Modality.T1C
    synthesized = brain_volume((30, 34, 22), 700, seed=9)
    background = synthesized == 0

    def counting(x, m):
        calls.append(len(x))
        return identity(x, m)

    refine_volume(counting, inputs_for(missing), synthesized, background, missing, (8, 8, 8), 0.5, BlendMode.GAUSSIAN)
    assert sum(calls) == window_count(background, (8, 8, 8), 0.5)


def test_refiner_manifest_is_verified(tiny_refiner, tmp_path):
    manifest = load_refiner_manifest(tiny_refiner)
    assert manifest.window == (16, 16, 16) and manifest.blend is BlendMode.GAUSSIAN
    assert load_refiner_manifest("tiny-refiner", beside=tiny_refiner.parent).sha256 == manifest.sha256
    data = json.loads(tiny_refiner.read_text())
    bad = tmp_path / "bad.json"
    (tmp_path / data["onnx"]).write_bytes(manifest.onnx_path.read_bytes() + b"x")
    bad.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_refiner_manifest(bad)
    bad.write_text(json.dumps({**data, "architecture": "hfgan"}))
    with pytest.raises(WeightsError, match="not a refiner"):
        load_refiner_manifest(bad)
    with pytest.raises(WeightsError, match="no refiner weights"):
        load_refiner_manifest("nope", beside=tmp_path)


def test_synthesizer_refines_only_when_asked(tiny_weights, tiny_refiner):
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    with pytest.raises(WeightsError, match="name no refiner"):
        Synthesizer(tiny_weights, refine=True)
    plain = Synthesizer(tiny_weights)
    assert plain.refiner is None
    synth = Synthesizer(tiny_weights, refiner=str(tiny_refiner))
    missing = Modality.T2F
    stages = synth.synthesize_stages(inputs_for(missing), missing)
    assert set(stages) == {"generator", "refined"} and set(synth.last_seconds) == {"generator", "refined"}
    # the untrained refiner's last conv is zero: it is the identity, through ONNX and the blending
    np.testing.assert_allclose(stages["refined"], stages["generator"], rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(plain.synthesize(inputs_for(missing), missing), stages["generator"])


def test_manifest_refiner_block_sets_the_default(tiny_weights, tiny_refiner, tmp_path):
    import shutil

    from brasyn_infer.pipeline.synthesizer import Synthesizer

    for path in (tiny_weights, tiny_weights.with_suffix(".onnx"), tiny_refiner, tiny_refiner.with_suffix(".onnx")):
        shutil.copy(path, tmp_path / path.name)
    data = json.loads(tiny_weights.read_text())
    manifest = tmp_path / tiny_weights.name
    manifest.write_text(json.dumps({**data, "refiner": {"weights": "tiny-refiner", "enabled": True}}))
    assert Synthesizer(manifest).refiner is not None
    assert Synthesizer(manifest, refine=False).refiner is None
    manifest.write_text(json.dumps({**data, "refiner": {"weights": "tiny-refiner", "enabled": False}}))
    assert Synthesizer(manifest).refiner is None
    assert Synthesizer(manifest, refine=True).refiner.manifest.name == "tiny-refiner"


def test_a_refiner_manifest_given_as_generator_weights_is_explained(tiny_refiner):
    from brasyn_infer.runtime.manifest import load_manifest

    with pytest.raises(WeightsError, match="refiner's manifest.*--refiner"):
        load_manifest(tiny_refiner)
