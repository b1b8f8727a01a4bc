"""Dry runs end to end on small synthetic complete cases."""

import hashlib
import json
import math

import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import Modality
from brasyn_infer.errors import BrasynError
from brasyn_infer.evaluation.dry_run import parse_drop
from brasyn_infer.evaluation.report import read_rows
from tests.conftest import make_case


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    make_case(root, "C-1", missing="none", seg=True)
    make_case(root, "C-2", missing="none")
    make_case(root, "C-3", missing="none")
    make_case(root, "INCOMPLETE", missing="t1c")
    return root


def test_evaluate_writes_reports_and_leaves_data_untouched(data, tmp_path, tiny_weights):
    before = tree_digest(data)
    report = tmp_path / "report"
    args = ["evaluate", str(data), str(report), "--drop", "t2f,t1n", "--weights", str(tiny_weights), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # the incomplete case is reported
    assert "INCOMPLETE" in result.output and "not complete: t1c missing" in result.output
    assert tree_digest(data) == before
    rows = read_rows(report / "cases.csv")
    assert len(rows) == 3 * 2 * 4  # cases x dropped modalities x (model, linear, mean, copy)
    assert {(r["method"]) for r in rows} == {"model", "linear", "mean", "copy"}
    assert {r["pattern"] for r in rows} == {"t2f", "t1n"}
    seg_rows = [r for r in rows if r["case"] == "C-1"]
    assert all(not math.isnan(r["ssim_tumor"]) for r in seg_rows)
    assert all(math.isnan(r["ssim_tumor"]) for r in rows if r["case"] == "C-2")
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary) == {"t2f", "t1n", "all"} and summary["all"]["model"]["ssim"]["n"] == 6
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == sorted(f"C-{i}-{m}.png" for i in (1, 2, 3) for m in ("t2f", "t1n"))
    md = (report / "report.md").read_text()
    assert "| t2f | model |" in md and "![C-1-t2f.png](C-1-t2f.png)" in md

    # resume: nothing is recomputed, the CSV keeps one row per (case, modality, method)
    stamp = (report / "C-1-t2f.png").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1
    assert len(read_rows(report / "cases.csv")) == 24
    assert (report / "C-1-t2f.png").stat().st_mtime_ns == stamp


def test_a_rerun_with_other_options_is_refused_and_the_same_resumes(data, tmp_path, tiny_weights):
    report = tmp_path / "report"
    base = ["evaluate", str(data), str(report), "--only", "C-1", "--drop", "t2f", "--baseline", "mean",
            "--weights", str(tiny_weights), "--quiet"]
    assert CliRunner().invoke(app, base).exit_code == 1  # INCOMPLETE is reported
    identity = json.loads((report / "run.json").read_text())
    assert identity["weights"]["sha256"] and identity["views"] == ["axial"] and identity["fit_on"] is None
    other = CliRunner().invoke(app, [*base, "--view", "coronal"])
    assert other.exit_code == 2
    lines = [ln for ln in other.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "another run" in lines[0] and "views" in lines[0] and "another REPORT_DIR" in lines[0]
    assert len(read_rows(report / "cases.csv")) == 2  # nothing was added or relabelled
    again = CliRunner().invoke(app, [*base, "--drop", "t2f,t1c"])  # the same run, one more dropped modality
    assert again.exit_code == 1 and len(read_rows(report / "cases.csv")) == 4


def test_fit_on_fits_the_linear_baseline_on_those_cases_only(data, tmp_path, tiny_weights):
    """--fit-on C-1 scores C-2's linear baseline exactly as leave-one-case-out over a DATA of C-1 and C-2 does."""
    import shutil

    pair = tmp_path / "pair"
    for case in ("C-1", "C-2"):
        shutil.copytree(data / case, pair / case)
    args = ["--only", "C-2", "--drop", "t1c", "--baseline", "linear", "--weights", str(tiny_weights), "--quiet"]
    CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "a"), "--fit-on", "C-1", *args])
    CliRunner().invoke(app, ["evaluate", str(pair), str(tmp_path / "b"), *args])
    linear = [next(r for r in read_rows(tmp_path / d / "cases.csv") if r["method"] == "linear") for d in ("a", "b")]
    assert linear[0]["ssim"] == linear[1]["ssim"] and linear[0]["mae"] == linear[1]["mae"]
    assert sorted(p.name for p in (tmp_path / "a" / "linear-stats").iterdir()) == ["C-1.json", "C-2.json"]


def test_phases_are_reported_and_statistics_are_reused(data, tmp_path, tiny_weights):
    from brasyn_infer.evaluation.dry_run import DryRunOptions, Hooks, dry_run
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    seen: list[tuple[str, int]] = []
    steps: list[str] = []
    synth = Synthesizer(tiny_weights)
    options = DryRunOptions(drops=[Modality.T2F], baselines=["linear"], only=["C-1"])
    dry_run(data, tmp_path / "r", synth, options, Hooks(on_phase=lambda n, k: seen.append((n, k)), on_step=steps.append))
    assert seen == [("model", 1), ("linear-baseline statistics", 2), ("linear baseline", 1)]
    assert steps[0] == "C-1 -t2f" and len(steps) == 4
    seen.clear()
    dry_run(data, tmp_path / "r2", synth, options, Hooks(on_phase=lambda n, k: seen.append((n, k))))
    (tmp_path / "r3").mkdir()
    import shutil

    shutil.copytree(tmp_path / "r" / "linear-stats", tmp_path / "r3" / "linear-stats")  # kept statistics are reused
    seen.clear()
    dry_run(data, tmp_path / "r3", synth, options, Hooks(on_phase=lambda n, k: seen.append((n, k))))
    assert ("linear-baseline statistics", 0) in seen


def test_the_markdown_report_says_n_and_no_spread_for_one_case():
    from brasyn_infer.evaluation.report import markdown_table, summarize

    rows = [{"case": c, "modality": "t1c", "method": "model", "ssim": v, "ssim_tumor": float("nan") if c == "B" else 0.5}
            for c, v in (("A", 0.9), ("B", 0.8))]
    table = markdown_table(summarize(rows), ["ssim", "ssim_tumor"])
    assert "0.8500 ± 0.0500 (n=2)" in table and "0.5000 (n=1)" in table and "± 0.0000" not in table


def test_report_inside_data_is_refused(data, tiny_weights):
    result = CliRunner().invoke(app, ["evaluate", str(data), str(data / "r"), "--weights", str(tiny_weights)])
    assert result.exit_code == 1 and "inside" in result.output


def test_parse_drop():
    T1C, T1N, T2F, T2W = Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W
    assert parse_drop("all") == [(T1C,), (T1N,), (T2F,), (T2W,)]
    assert parse_drop("t2f, T1C") == [(T2F,), (T1C,)]
    assert parse_drop("t2f+t1c") == [(T1C, T2F)]  # a pattern, in MODALITIES order
    assert len(parse_drop("pairs")) == 6 and all(len(p) == 2 for p in parse_drop("pairs"))
    assert parse_drop("singles") == [(T1C, T1N, T2F), (T1C, T1N, T2W), (T1C, T2F, T2W), (T1N, T2F, T2W)]
    assert len(parse_drop("every")) == 14 and parse_drop("all,t1c") == parse_drop("all")
    for bad in ("flair", "t1c+t1c", "t1c+t1n+t2f+t2w", ""):
        with pytest.raises(BrasynError):
            parse_drop(bad)


def test_only_scores_the_held_out_case_with_baselines_fitted_on_the_rest(data, tmp_path, tiny_weights):
    report = tmp_path / "fold"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--only", "C-2", "--drop", "t2f",
                                      "--baseline", "linear", "--weights", str(tiny_weights), "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    rows = read_rows(report / "cases.csv")
    assert {(r["case"], r["method"]) for r in rows} == {("C-2", "model"), ("C-2", "linear")}
    bad = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "x"), "--only", "NOPE",
                                   "--weights", str(tiny_weights), "--quiet"])
    assert bad.exit_code == 2 and "--only names cases that are not complete cases of DATA" in bad.output


def test_the_brats_segmenter_is_refused_in_one_line_when_unavailable(data, tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segmentation_unavailable", lambda: "no docker command")
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-1", "--drop", "t2f",
                                      "--baseline", "none", "--segment", "--segmenter", "brats",
                                      "--weights", str(tiny_weights), "--quiet"])
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 1 and len(lines) == 1 and "no docker command" in lines[0]
    assert not (tmp_path / "r" / "cases.csv").exists()


def test_segment_scores_every_input_with_a_stand_in_segmenter(data, tmp_path, tiny_weights, monkeypatch):
    """The protocol's wiring: the real case, the completed case and the copy are segmented and compared with the
    case's -seg file by the official package; a perfect segmenter scores Dice 1 everywhere."""
    import nibabel as nib

    calls = []

    def fake_segment(inputs, output_file, cuda_devices="0"):
        calls.append(sorted(m.value for m in inputs))
        seg_path = next((data / "C-1").glob("*-seg.nii.gz"))
        nib.save(nib.load(str(seg_path)), str(output_file))  # a perfect segmenter
        return output_file

    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segmentation_unavailable", lambda: None)
    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segment", fake_segment)
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-1", "--drop", "t2f",
                                      "--baseline", "copy", "--segment", "--segmenter", "brats",
                                      "--direct-segmenter", "none", "--weights", str(tiny_weights), "--quiet"])
    assert calls == [["t1c", "t1n", "t2f", "t2w"]] * 3, result.output  # real, model-completed, copy-completed
    rows = {r["method"]: r for r in read_rows(tmp_path / "r" / "cases.csv")}
    assert set(rows) == {"model", "copy", "real"}
    assert all(r["dice_wt"] == 1.0 and r["hd95_wt"] == 0.0 for r in rows.values())
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Segmentation with each input" in report and "| t2f | t2f | model |" in report
    identity = json.loads((tmp_path / "r" / "run.json").read_text())
    assert identity["segmenter"]["name"] == "brats"


def test_the_direct_row_segments_what_the_pattern_leaves(data, tmp_path, tiny_any_weights, tiny_segmenter,
                                                          tiny_direct_segmenter):
    """Issue 42: `direct`, the missing-sequence segmenter on the case without the pattern's sequences, beside real,
    model and copy; one segmentation per case and pattern (the same row for each synthesized sequence), exactly what
    the segmenter gives on those volumes; run.json names it."""
    import nibabel as nib
    import numpy as np

    from brasyn_infer.evaluation.seg_metrics import brats_scores
    from brasyn_infer.runtime.segmenter import Segmenter
    from brasyn_infer.segmentation.labels import LabelConvention, classes_from_labels

    report = tmp_path / "r"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--only", "C-1", "--drop", "t1c+t2f",
                                      "--baseline", "copy", "--segment", "--segmenter", str(tiny_segmenter),
                                      "--direct-segmenter", str(tiny_direct_segmenter), "--weights",
                                      str(tiny_any_weights), "--no-uncertainty", "--quiet"])
    assert result.exit_code in (0, 1), result.output
    rows = [r for r in read_rows(report / "cases.csv") if r["case"] == "C-1"]
    direct = [r for r in rows if r["method"] == "direct"]
    assert sorted(r["modality"] for r in direct) == ["t1c", "t2f"]
    assert direct[0]["dice_wt"] == direct[1]["dice_wt"] or np.isnan(direct[0]["dice_wt"])
    folder = data / "C-1"
    volumes = {m: np.asarray(nib.load(str(next(folder.glob(f"*-{m}.nii.gz")))).dataobj, dtype=np.float32)
               for m in ("t1n", "t2w")}
    from brasyn_infer.constants import Modality

    pred = Segmenter(tiny_direct_segmenter).segment({Modality(k): v for k, v in volumes.items()})
    expert = classes_from_labels(np.asarray(nib.load(str(next(folder.glob("*-seg.nii.gz")))).dataobj),
                                 LabelConvention.BRATS2023)
    expected = brats_scores(pred, expert)
    for key in ("dice_wt", "dice_tc", "dice_et"):
        assert (np.isnan(expected[key]) and np.isnan(direct[0][key])) or direct[0][key] == pytest.approx(expected[key], abs=1e-4)
    assert "| t1c+t2f | t1c | direct |" in (report / "report.md").read_text()
    identity = json.loads((report / "run.json").read_text())
    assert identity["segmenter"]["direct"]["name"] == "tiny-any"


def test_with_a_refiner_both_stages_are_scored(data, tmp_path, tiny_weights, tiny_refiner):
    report = tmp_path / "refined"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--only", "C-1", "--drop", "t1n",
                                      "--baseline", "none", "--weights", str(tiny_weights), "--refiner",
                                      str(tiny_refiner), "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    rows = read_rows(report / "cases.csv")
    assert sorted(r["method"] for r in rows) == ["model", "model+refiner"]
    model, refined = sorted(rows, key=lambda r: r["method"])
    assert refined["seconds"] > model["seconds"]  # the refiner's time is added to the generator's
    assert "model+refiner" in (report / "report.md").read_text()


def test_save_volumes_keeps_the_generator_output_with_the_inputs_geometry(data, tmp_path, tiny_weights):
    import nibabel as nib
    import numpy as np

    from brasyn_infer.constants import Device
    from brasyn_infer.io.nifti import read_inputs
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    keep = tmp_path / "oof"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-2", "--drop", "t2f",
                                      "--baseline", "none", "--weights", str(tiny_weights), "--save-volumes", str(keep),
                                      "--device", "cpu", "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    assert sorted(p.relative_to(keep).as_posix() for p in keep.rglob("*.nii.gz")) == ["C-2/C-2-t2f.nii.gz"]
    saved = nib.load(keep / "C-2" / "C-2-t2f.nii.gz")
    real = nib.load(data / "C-2" / "C-2-t2f.nii.gz")
    np.testing.assert_allclose(saved.affine, real.affine)
    loaded = read_inputs({m: data / "C-2" / f"C-2-{m.value}.nii.gz" for m in Modality})
    expected = Synthesizer(tiny_weights, device=Device.CPU, refine=False).synthesize(
        {m: v.data for m, v in loaded.items() if m is not Modality.T2F}, Modality.T2F)
    # the dry run scores exactly what `run` writes: the same call, the same bits
    assert np.array_equal(np.asarray(saved.dataobj, dtype=np.float32), expected)


def test_the_map_is_scored_on_the_scale_free_images_and_on_raw_intensities():
    """An output three times too bright everywhere, wrong only in one region: the raw error follows brightness,
    the scale-free error follows the region. A map of that region ranks the scale-free error, not the raw one."""
    import numpy as np

    from brasyn_infer.evaluation.ranking import MapErrors, map_quality
    from tests.conftest import brain_volume

    truth = brain_volume((30, 30, 30), scale=1000.0)
    wrong = np.zeros(truth.shape, dtype=bool)
    wrong[10:16, 10:16, 10:16] = True
    synthesized = 3 * np.where(wrong, truth * 0.5, truth)
    uncertainty = np.where(wrong, 1.0, 0.1).astype(np.float32)
    quality = map_quality(uncertainty, MapErrors.of(synthesized, truth))
    assert quality["unc_top10"] > 5 and quality["unc_spearman"] > 0.2
    assert quality["unc_top10_raw"] < quality["unc_top10"]
    # volumes the evaluation has already scaled give the same errors
    from brasyn_infer.evaluation.metrics import Scaled

    assert map_quality(uncertainty, MapErrors.of(Scaled.of(synthesized), Scaled.of(truth))) == quality
