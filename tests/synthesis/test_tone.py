"""brasyn_infer.synthesis.tone: the output's tone distortion undone by a quantile map fitted on held-out outputs; --no-tone."""

from __future__ import annotations

import numpy as np
import pytest

from brasyn_infer.constants import MODALITIES, Modality, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.synthesis.tone import Tone, brain_quantiles, correct_tone, template, tone_curve
from tests.conftest import brain_volume, weights_with


def test_brain_quantiles_are_the_brain_on_the_metrics_unit_image():
    v = brain_volume(scale=1000.0)
    q = brain_quantiles(v, 100)
    assert q.shape == (101,) and np.all(np.diff(q) >= 0) and q[0] >= 0 and q[-1] > 1.0  # the top is not clipped
    unit = Scaled.of(v).unit[v > 0]  # the metrics' own [0, 1] image, which clips it
    assert np.allclose(np.minimum(q, 1), np.quantile(unit, np.linspace(0, 1, 101)))
    assert np.array_equal(brain_quantiles(np.zeros((4, 4, 4)), 10), np.zeros(11))
    with pytest.raises(ValueError):
        template([])


def bend(volume: np.ndarray, power: float) -> np.ndarray:
    """The same structure with another tone: the brain's levels raised to ``power``; background 0."""
    return np.where(volume > 0, (volume / volume.max()) ** power * 1000.0, 0).astype(np.float32)


def test_the_curve_undoes_a_distortion_every_output_shares():
    real = [brain_volume(seed=s, scale=800.0) for s in (1, 2, 3)]
    outputs = [bend(v, 0.5) for v in real]  # every output brighter on its [0, 1] image than its real volume
    curve = (template(brain_quantiles(o) for o in outputs[:2]), template(brain_quantiles(v) for v in real[:2]))
    unseen, its_output = real[2], outputs[2]
    corrected = correct_tone(its_output, *curve)
    brain = its_output > 0
    assert corrected.dtype == np.float32 and (corrected[~brain] == 0).all() and (corrected[brain] > 0).all()
    order = np.argsort(its_output[brain], kind="stable")
    assert (np.diff(corrected[brain][order]) >= -1e-3).all()  # monotone: no voxel passes another
    before = np.abs(Scaled.of(its_output).unit - Scaled.of(unseen).unit)[brain].mean()
    after = np.abs(Scaled.of(corrected).unit - Scaled.of(unseen).unit)[brain].mean()
    assert after < 0.3 * before  # the shared distortion is gone on a case the curve was not fitted on


def test_the_curve_is_level_to_level_so_a_darker_case_stays_darker():
    q = brain_quantiles(brain_volume(seed=1))
    identity = correct_tone(brain_volume(seed=4), q, q)
    assert np.allclose(identity, brain_volume(seed=4), rtol=1e-4, atol=1e-2)  # output == real: nothing to undo
    dark = bend(brain_volume(seed=5), 2.0)
    bright = bend(brain_volume(seed=5), 0.7)
    curve = (brain_quantiles(bend(brain_volume(seed=6), 0.9)), brain_quantiles(brain_volume(seed=6)))
    median = [np.median(Scaled.of(correct_tone(v, *curve)).unit[v > 0]) for v in (dark, bright)]
    assert median[0] < median[1] - 0.1  # a rank-to-rank match would give both the same histogram


def test_tone_curve_scales_the_levels_beyond_its_ends():
    output, real = np.array([0.0, 0.0, 0.2, 0.5, 0.8]), np.array([0.0, 0.1, 0.3, 0.4, 1.0])
    got = tone_curve(np.array([0.0, 0.1, 0.2, 0.5, 0.8, 1.0]), output, real)
    np.testing.assert_allclose(got, [0.05, 0.175, 0.3, 0.4, 1.0, 1.25])  # a flat run at 0 maps to its mean
    assert np.array_equal(correct_tone(np.zeros((5, 5, 5)), output, real), np.zeros((5, 5, 5)))


def test_tone_block_round_trips_and_bad_blocks_name_the_manifest(tmp_path):
    q = brain_quantiles(brain_volume(), 20)
    bent = brain_quantiles(bend(brain_volume(), 0.5), 20)
    tone = Tone.from_manifest(Tone({Modality.T1C: (bent, q)}).to_json())
    assert set(tone.curves) == {Modality.T1C}
    assert np.allclose(tone.curves[Modality.T1C][0], bent, atol=1e-6) and np.allclose(tone.curves[Modality.T1C][1], q, atol=1e-6)
    v = brain_volume(seed=4)
    assert tone.apply(v, Modality.T2W) is v  # no curve: untouched
    assert not np.allclose(tone.apply(v, Modality.T1C), v)
    assert Tone.from_manifest(None).curves == {}
    path = tmp_path / "m.json"
    good = [0.0, 0.5, 1.0]
    for bad in ({"t1x": {"output": good, "real": good}}, {"t1c": {"output": [0.5, 0.2], "real": [0.1, 0.2]}},
                {"t1c": {"output": good, "real": [-0.1, 0.5, 1.0]}}, {"t1c": {"output": good}},
                {"t1c": {"output": good, "real": [0.0, 1.0]}}, {"t1c": "x"}, {"t1c": {"output": [0, 0], "real": [0, 1]}}):
        with pytest.raises(WeightsError, match="tone") as error:
            Tone.from_manifest(bad, path)
        assert str(path) in str(error.value)


def with_tone(tiny_weights, tmp_path, block):
    return weights_with(tiny_weights, tmp_path / "weights", tone=block)


def test_synthesizer_corrects_the_tone_unless_told_not_to(tmp_path, tiny_weights):
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    volumes = {m: brain_volume(seed=i, scale=900.0 + 100 * i) for i, m in enumerate(MODALITIES) if m is not Modality.T2W}
    curve = (brain_quantiles(brain_volume(seed=9)), brain_quantiles(bend(brain_volume(seed=9), 2.0)))
    weights = with_tone(tiny_weights, tmp_path, Tone({Modality.T2W: curve}).to_json())
    plain = Synthesizer(tiny_weights, View.AXIAL).synthesize(volumes, Modality.T2W)
    toned = Synthesizer(weights, View.AXIAL).synthesize(volumes, Modality.T2W)
    off = Synthesizer(weights, View.AXIAL, tone=False).synthesize(volumes, Modality.T2W)
    assert np.array_equal(off, plain)
    assert np.allclose(toned, correct_tone(plain, *Tone.from_manifest(Tone({Modality.T2W: curve}).to_json()).curves[Modality.T2W]))
    assert np.array_equal(toned > 0, plain > 0)
    bad = with_tone(tiny_weights, tmp_path / "bad", {"t2w": {"output": [0.9, 0.1], "real": [0.1, 0.9]}})
    with pytest.raises(WeightsError, match=str(bad)):
        Synthesizer(bad, View.AXIAL)


def test_run_takes_no_tone(tmp_path, tiny_weights):
    from typer.testing import CliRunner

    from brasyn_infer.cli import app
    from brasyn_infer.io.nifti import load_volume
    from tests.conftest import make_case

    make_case(tmp_path / "in", "BraTS-GLI-00012-000", "t2w")
    curve = (brain_quantiles(brain_volume(seed=9)), brain_quantiles(bend(brain_volume(seed=9), 2.0)))
    weights = with_tone(tiny_weights, tmp_path, Tone({Modality.T2W: curve}).to_json())
    outs = {}
    for flag in ("--tone", "--no-tone"):
        result = CliRunner().invoke(app, ["run", str(tmp_path / "in"), str(tmp_path / flag), "--weights", str(weights),
                                          "--view", "axial", flag, "-q"])
        assert result.exit_code == 0, result.output
        outs[flag] = load_volume(tmp_path / flag / "BraTS-GLI-00012-000-t2w.nii.gz").data
    assert not np.allclose(outs["--tone"], outs["--no-tone"])
    assert np.array_equal(outs["--tone"] > 0, outs["--no-tone"] > 0)


def test_evaluate_scores_the_toned_output_and_knows_tone_from_no_tone(tmp_path, tiny_weights):
    """A report folder records whether the tone ran: an evaluation with --no-tone may not resume one with it."""
    from typer.testing import CliRunner

    from brasyn_infer.cli import app
    from brasyn_infer.evaluation.dry_run import DryRunOptions, run_identity
    from brasyn_infer.pipeline.synthesizer import Synthesizer
    from tests.conftest import make_case

    curve = (brain_quantiles(brain_volume(seed=9)), brain_quantiles(bend(brain_volume(seed=9), 2.0)))
    weights = with_tone(tiny_weights, tmp_path, Tone({Modality.T2W: curve}).to_json())
    on = run_identity(Synthesizer(weights, View.AXIAL), DryRunOptions(drops=[Modality.T2W]))
    off = run_identity(Synthesizer(weights, View.AXIAL, tone=False), DryRunOptions(drops=[Modality.T2W]))
    assert on["tone"] is True and off["tone"] is False
    assert "tone" not in run_identity(Synthesizer(tiny_weights, View.AXIAL), DryRunOptions(drops=[Modality.T2W]))
    for case_id in ("BraTS-GLI-00013-000", "BraTS-GLI-00014-000"):
        make_case(tmp_path / "data", case_id, missing="none")
    args = ["evaluate", str(tmp_path / "data"), str(tmp_path / "report"), "--weights", str(weights), "--view", "axial",
            "--drop", "t2w", "--baseline", "none", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(app, [*args, "--no-tone"])
    assert refused.exit_code == 2 and "holds the scores of another run" in refused.output and "tone" in refused.output
