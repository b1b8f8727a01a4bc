"""The segmenter's recipe end to end on small synthetic cases: it trains, resumes only the same recipe, scores its
held-out case with the product's inference code and exports a segmenter that `segment` runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import HAS_TORCH, make_case

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def test_train_resume_score_and_export(tmp_path):
    from training.train_segmenter import main

    cases = tmp_path / "cases"
    for i in range(3):
        make_case(cases, f"C-{i}", missing="none", seg=True)
    make_case(cases, "NOSEG", missing="none")  # no labels: left out
    args = ["--cases", str(cases), "--holdout", "C-2", "--widths", "4", "8", "--crop", "16", "--batch", "2",
            "--steps", "4", "--save-every", "2", "--threads", "1", "--run-dir", str(tmp_path / "run"),
            "--out", str(tmp_path / "w"), "--name", "seg"]
    main(args)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["data"]["train"] == ["C-0", "C-1"] and record["data"]["holdout"] == ["C-2"]
    assert set(record["holdout_scores"]["C-2"]) >= {"dice_WT", "hd95_ET"} and record["steps"] == 4
    manifest = json.loads((tmp_path / "w" / "seg.json").read_text())
    assert manifest["architecture"] == "segmenter" and manifest["context"] == 1
    other = list(args)
    other[other.index("--steps") + 1] = "6"
    with pytest.raises(SystemExit, match="another recipe"):
        main([*other, "--resume"])
    from typer.testing import CliRunner

    from brasyn_infer.cli import app

    result = CliRunner().invoke(app, ["segment", str(cases / "C-2"), str(tmp_path / "out"), "--segmenter",
                                      str(tmp_path / "w" / "seg.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "C-2-seg.nii.gz").is_file()


def test_distillation_from_a_full_segmenter_into_a_missing_sequence_one(tmp_path):
    """--teacher: a full-input checkpoint reads each crop with all four sequences and its softmax joins the loss
    (logged as `distill`); the sampler hands the teacher the crop before the sequences are dropped; a teacher with
    availability planes, or a teacher without --any-pattern, is refused."""
    import numpy as np

    from training.train_segmenter import CropSampler, SegCase, main

    cases = tmp_path / "cases"
    for i in range(2):
        make_case(cases, f"C-{i}", missing="none", seg=True)
    base = ["--cases", str(cases), "--widths", "4", "8", "--crop", "16", "--batch", "2", "--steps", "2",
            "--threads", "1", "--no-export"]
    main([*base, "--run-dir", str(tmp_path / "full"), "--name", "full"])
    main([*base, "--run-dir", str(tmp_path / "any"), "--name", "any", "--any-pattern"])
    teacher = tmp_path / "full" / "full.safetensors"
    main([*base, "--run-dir", str(tmp_path / "kd"), "--name", "kd", "--any-pattern", "--teacher", str(teacher),
          "--init", str(tmp_path / "any" / "any.safetensors")])
    record = json.loads((tmp_path / "kd" / "record.json").read_text())
    assert record["final"]["distill"] > 0 and record["recipe"]["teacher"] == str(teacher)
    with pytest.raises(SystemExit, match="add --any-pattern"):
        main([*base, "--run-dir", str(tmp_path / "bad"), "--name", "bad", "--teacher", str(teacher)])
    with pytest.raises(SystemExit, match="teacher reads all four"):
        main([*base, "--run-dir", str(tmp_path / "bad2"), "--name", "bad2", "--any-pattern", "--teacher",
              str(tmp_path / "any" / "any.safetensors")])

    rng = np.random.default_rng(0)
    x4 = rng.uniform(1, 2, size=(4, 16, 16, 3)).astype(np.float16)
    sampler = CropSampler([SegCase("S", x4, np.ones((16, 16, 3), np.uint8))], 16, 1, 1.0, 0, any_pattern=True)
    x, y, full = sampler.batch(3, 4, full=True)
    assert full.shape == (4, 12, 16, 16) and x.shape == (4, 16, 16, 16)
    kept = x[:, 12:, 0, 0] > 0  # the availability planes: which sequences the student sees
    for b in range(4):
        student = x[b, :12].reshape(3, 4, 16, 16)
        whole = full[b].reshape(3, 4, 16, 16)
        assert np.array_equal(student[:, kept[b]], whole[:, kept[b]]) and not student[:, ~kept[b]].any()
        assert (whole != 0).all()  # the teacher's crop keeps every sequence
    assert np.array_equal(sampler.batch(3, 4)[0], x)  # the same batch with or without the teacher's copy


def test_favored_patterns_are_drawn_for_their_share_of_the_crops(tmp_path):
    """--favor t1n+t2f+t2w --favor-share 0.5: about half the crops keep BraSyn's case without t1c, the rest any of
    the 15 patterns; without --favor the draw is the uniform one, batch for batch; bad names and --favor without
    --any-pattern are refused."""
    import numpy as np

    from training.train_segmenter import CropSampler, SegCase, main, pattern_code, pattern_flags, pattern_name

    assert pattern_name(pattern_flags(pattern_code("t1n+t2f+t2w"))) == "t1n+t2f+t2w"
    assert pattern_code("all") == 15 and pattern_name(pattern_flags(pattern_code("t2w+t1c"))) == "t1c+t2w"
    for bad in ("t1n+flair", "", "t1n+t1n"):
        with pytest.raises(SystemExit, match="name a pattern"):
            pattern_code(bad)
    rng = np.random.default_rng(0)
    x4 = rng.uniform(1, 2, size=(4, 16, 16, 3)).astype(np.float16)
    case = SegCase("S", x4, np.ones((16, 16, 3), np.uint8))
    no_t1c = pattern_code("t1n+t2f+t2w")

    def drawn(sampler: CropSampler) -> list[int]:
        codes = []
        for step in range(50):
            planes = sampler.batch(step, 8)[0][:, 12:, 0, 0] > 0
            codes += [sum(1 << i for i in range(4) if row[i]) for row in planes]
        return codes

    uniform = drawn(CropSampler([case], 16, 1, 1.0, 0, any_pattern=True))
    favored = drawn(CropSampler([case], 16, 1, 1.0, 0, any_pattern=True, favor=(no_t1c,), favor_share=0.5))
    assert 0.4 < np.mean(np.array(favored) == no_t1c) < 0.65  # 0.5 + 0.5 / 15
    assert np.mean(np.array(uniform) == no_t1c) < 0.15 and len(set(favored)) == 15
    plain = CropSampler([case], 16, 1, 1.0, 0, any_pattern=True, favor=(), favor_share=0.5)
    assert np.array_equal(plain.batch(7, 8)[0], CropSampler([case], 16, 1, 1.0, 0, any_pattern=True).batch(7, 8)[0])

    cases = tmp_path / "cases"
    make_case(cases, "C-0", missing="none", seg=True)
    base = ["--cases", str(cases), "--widths", "4", "8", "--crop", "16", "--batch", "2", "--steps", "1",
            "--threads", "1", "--no-export", "--no-score", "--favor", "t1n+t2f+t2w", "--favor-share", "0.5"]
    with pytest.raises(SystemExit, match="add --any-pattern"):
        main([*base, "--run-dir", str(tmp_path / "bad"), "--name", "bad"])
    with pytest.raises(SystemExit, match="give a share"):
        main([*base, "--run-dir", str(tmp_path / "bad"), "--name", "bad", "--any-pattern", "--favor-share", "0"])
    with pytest.raises(SystemExit, match="between 0 and 1"):
        main([*base, "--run-dir", str(tmp_path / "bad"), "--name", "bad", "--any-pattern", "--favor-share", "1.5"])
    main([*base, "--run-dir", str(tmp_path / "ok"), "--name", "ok", "--any-pattern"])
    record = json.loads((tmp_path / "ok" / "record.json").read_text())
    assert record["recipe"]["favor"] == ["t1n+t2f+t2w"] and record["recipe"]["favor_share"] == 0.5
