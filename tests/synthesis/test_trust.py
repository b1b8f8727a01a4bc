"""brasyn_infer.synthesis.trust: the linear prior blend, the uncertainty model and its scores; --uncertainty, --tta, --no-prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import MODALITIES, Modality, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.evaluation.baselines import predict_linear
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.synthesis.generate import generate_views, generate_volume
from brasyn_infer.synthesis.trust import FEATURES, Trust, blend, box_mean, features, linear_prior
from tests.conftest import brain_volume, make_case, weights_with


def test_box_mean_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.random((7, 6, 5)).astype(np.float32)
    got = box_mean(x, 1)
    for i, j, k in [(0, 0, 0), (3, 2, 2), (6, 5, 4), (2, 0, 4)]:
        expected = x[max(0, i - 1):i + 2, max(0, j - 1):j + 2, max(0, k - 1):k + 2].mean()
        assert got[i, j, k] == pytest.approx(expected, rel=1e-5)
    assert np.array_equal(box_mean(x, 0), x)


def test_prior_and_blend():
    rng = np.random.default_rng(3)
    x4 = rng.uniform(-1, 1, (4, 5, 6, 7)).astype(np.float32)
    coef = np.array([0.5, -0.2, 0.1, 0.05])
    for missing in MODALITIES:
        assert np.allclose(linear_prior(x4, missing, coef), predict_linear(x4, missing, coef), atol=1e-6)
    g, p = x4[0], x4[1]
    assert np.array_equal(blend(g, p, 1.0), g) and np.array_equal(blend(g, p, 0.0), p)
    assert np.allclose(blend(g, p, 0.25), 0.75 * p + 0.25 * g, atol=1e-6)


def test_features_shapes_and_meaning():
    shape = (12, 10, 8)
    members = [np.full(shape, v, np.float32) for v in (0.0, 0.2, 0.4)]
    background = np.zeros(shape, bool)
    background[:2] = True
    f = features(members, np.mean(members, 0), np.zeros(shape, np.float32), background, -1.0, FEATURES, 0)
    assert f.shape == (len(FEATURES), *shape)
    views, prior, edge, level, rim = f
    assert np.allclose(views, np.std([0.0, 0.2, 0.4])) and np.allclose(prior, 0.2)
    assert np.allclose(edge, 0) and np.allclose(level, 1.2) and rim[0].all() and not rim[5].any()


def test_trust_block_round_trip_and_errors():
    block = {"linear": {"t1c": [0.1, 0.2, 0.3, 0.0]}, "blend": {"t1c": 0.6}, "features": ["views", "edge"],
             "uncertainty": {"t1c": [-2.0, 0.5, 0.1]}, "smooth": 1}
    trust = Trust.from_manifest(block)
    assert trust.blend == {Modality.T1C: 0.6} and trust.calibrated(Modality.T1C) and not trust.calibrated(Modality.T2F)
    assert Trust.from_manifest(trust.to_json()).to_json() == trust.to_json()
    assert Trust.from_manifest(None) == Trust()
    for bad in ({**block, "features": ["nope"]}, {**block, "linear": {"t1c": [1, 2]}},
                {**block, "uncertainty": {"t1c": [1.0]}}, {**block, "blend": {"t2w": 0.5}}, {**block, "linear": {"xx": [0, 0, 0, 0]}}):
        with pytest.raises(WeightsError):
            Trust.from_manifest(bad)


def flip_sensitive(x, mask, missing, view):
    """A slice 'model' that is not flip-equivariant: the first channel times a ramp along the columns."""
    ramp = np.linspace(0.0, 1.0, x.shape[-1], dtype=np.float32)
    return (x[:, :1] * ramp).astype(np.float32)


def test_tta_averages_the_flipped_pass():
    rng = np.random.default_rng(4)
    x4 = np.where(rng.random((4, 10, 12, 9)) > 0.2, rng.uniform(-0.9, 1, (4, 10, 12, 9)), -1).astype(np.float32)
    plain = generate_volume(flip_sensitive, x4, Modality.T2F, View.AXIAL, 4)
    tta = generate_volume(flip_sensitive, x4, Modality.T2F, View.AXIAL, 4, tta=True)
    # axial planes are (X, Y) padded to 240x240: the flip is along Y, and the ramp over 240 columns averages to 0.5
    assert not np.allclose(plain, tta)
    mid = x4[0] * np.float32(0.5)
    occupied = (x4[[1, 3, 0]] != -1).any(0).any((0, 1))  # slices the model ran on (t2f is missing)
    assert np.allclose(tta[..., occupied], mid[..., occupied], atol=1e-5)
    fused, halves = generate_views(flip_sensitive, x4, Modality.T2F, [View.AXIAL], 4, tta=True, split_tta=True)
    assert len(halves) == 2 and np.allclose(np.mean(halves, 0), tta, atol=1e-6)
    assert np.array_equal(fused, tta)  # the same output, bit for bit, as without keeping the members
    for views in ([View.AXIAL, View.CORONAL], [View.AXIAL, View.CORONAL, View.SAGITTAL]):  # three: the default's
        fused, members = generate_views(flip_sensitive, x4, Modality.T2F, views, 4)
        every = generate_volume(flip_sensitive, x4, Modality.T2F, views, 4)
        assert np.allclose(np.mean(members, 0), every, atol=1e-6) and np.array_equal(fused, every)


def with_trust(tiny_weights: Path, tmp_path: Path, block: dict) -> Path:
    return weights_with(tiny_weights, tmp_path / "weights", trust=block)


def run_cli(*args: str):
    return CliRunner().invoke(app, ["run", *args])


def test_uncertainty_is_written_beside_never_inside(tmp_path, tiny_weights):
    make_case(tmp_path / "in", "BraTS-GLI-00007-000", "t1c")
    weights = with_trust(tiny_weights, tmp_path, {
        "linear": {"t1c": [0.3, 0.3, 0.3, 0.0]}, "blend": {"t1c": 0.5}, "features": list(FEATURES),
        "uncertainty": {"t1c": [-2.0, 0.3, 0.3, 0.2, 0.1, 0.1]}, "smooth": 1})
    result = run_cli(str(tmp_path / "in"), str(tmp_path / "out"), "--weights", str(weights), "--uncertainty",
                     str(tmp_path / "unc"), "--view", "axial", "--view", "coronal", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["BraTS-GLI-00007-000-t1c.nii.gz"]
    assert sorted(p.name for p in (tmp_path / "unc").iterdir()) == ["BraTS-GLI-00007-000-t1c-uncertainty.nii.gz"]
    out = load_volume(tmp_path / "out" / "BraTS-GLI-00007-000-t1c.nii.gz")
    unc = load_volume(tmp_path / "unc" / "BraTS-GLI-00007-000-t1c-uncertainty.nii.gz")
    assert unc.data.shape == out.data.shape and np.allclose(unc.image.affine, out.image.affine)
    assert (unc.data >= 0).all() and (unc.data[out.data == 0] == 0).mean() > 0.9 and unc.data.max() > 0
    for inside in (tmp_path / "out", tmp_path / "out" / "sub", tmp_path / "in" / "x"):
        result = run_cli(str(tmp_path / "in"), str(tmp_path / "out"), "--weights", str(weights), "--uncertainty",
                         str(inside), "-q")
        assert result.exit_code == 2 and "--uncertainty folder is the" in result.output


def test_blend_zero_is_the_linear_prior_and_no_prior_is_the_generator(tmp_path, tiny_weights):
    from brasyn_infer.io.nifti import read_inputs
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    folder = make_case(tmp_path / "in", "BraTS-GLI-00008-000", "t2w")
    coef = [0.2, 0.5, 0.25, 0.1]
    weights = with_trust(tiny_weights, tmp_path, {"linear": {"t2w": coef}, "blend": {"t2w": 0.0}})
    volumes = {m: v.data for m, v in read_inputs({Modality(p.name.split("-")[-1][:3]): p for p in folder.iterdir()}).items()}
    synth = Synthesizer(weights, View.AXIAL)
    got = synth.synthesize(volumes, Modality.T2W)
    x4, scales = synth.normalizer.stack(volumes, Modality.T2W)
    from brasyn_infer.synthesis.normalize import background_mask

    background = background_mask(x4, Modality.T2W)
    expected = synth.normalizer.restore(linear_prior(x4, Modality.T2W, np.array(coef)), background, Modality.T2W, scales)
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-3)
    raw = Synthesizer(weights, View.AXIAL, prior=False).synthesize(volumes, Modality.T2W)
    plain = Synthesizer(tiny_weights, View.AXIAL).synthesize(volumes, Modality.T2W)
    assert np.array_equal(raw, plain) and not np.allclose(raw, got)


def test_uncalibrated_map_is_the_views_spread_in_output_units(tmp_path, tiny_weights):
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    volumes = {m: brain_volume(seed=i, scale=900.0 + 100 * i) for i, m in enumerate(MODALITIES) if m is not Modality.T1N}
    synth = Synthesizer(tiny_weights, [View.AXIAL, View.SAGITTAL], uncertainty=True)
    stages = synth.synthesize_stages(volumes, Modality.T1N)
    x4, scales = synth.normalizer.stack(volumes, Modality.T1N)
    _, views = generate_views(synth.session, x4, Modality.T1N, [View.AXIAL, View.SAGITTAL], 8)
    from brasyn_infer.synthesis.normalize import background_mask

    background = background_mask(x4, Modality.T1N)
    expected = np.std(views, 0) * synth.normalizer.slope(Modality.T1N, scales)
    expected[background] = 0
    assert np.allclose(stages["uncertainty"], expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(WeightsError, match="no fitted uncertainty model"):
        Synthesizer(tiny_weights, View.AXIAL, uncertainty=True)
    assert Synthesizer(tiny_weights, View.AXIAL, uncertainty=None).uncertainty is False
    assert Synthesizer(tiny_weights, View.AXIAL, tta=True, uncertainty=None).uncertainty is True
    one = Synthesizer(tiny_weights, View.AXIAL, tta=True, uncertainty=True).synthesize_stages(volumes, Modality.T1N)
    assert one["uncertainty"].max() > 0  # one view with --tta: the spread of its two passes


def test_evaluate_scores_the_map(tmp_path, tiny_weights):
    from brasyn_infer.evaluation.report import read_rows

    for i, case_id in enumerate(["BraTS-GLI-00010-000", "BraTS-GLI-00011-000"]):
        make_case(tmp_path / "data", case_id, missing="none", seg=i == 0)
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "data"), str(report), "--weights", str(tiny_weights),
                                      "--drop", "t2f", "--view", "axial", "--view", "coronal", "--baseline", "linear", "-q"])
    assert result.exit_code == 0, result.output
    rows = read_rows(report / "cases.csv")
    model = [r for r in rows if r["method"] == "model"]
    assert len(model) == 2 and all(-1 <= r["unc_spearman"] <= 1 and r["unc_top10"] > 0 for r in model)
    assert all(r["unc_top10"] != r["unc_top10"] for r in rows if r["method"] == "linear")  # NaN: no map
    assert "unc_top10" in (report / "report.md").read_text()
    assert len(list(report.glob("*.png"))) == 2
