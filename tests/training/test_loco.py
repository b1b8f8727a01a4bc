"""The leave-one-case-out driver: argument split, tables, and refusing to train what was trained elsewhere."""

import pytest

from training.loco import fold_table, main, split_argv, table


def test_split_argv_separates_the_trainers_options():
    assert split_argv(["--out", "x", "--", "--dim", "16"]) == (["--out", "x"], ["--dim", "16"])
    assert split_argv(["--out", "x"]) == (["--out", "x"], [])


def rows():
    out = []
    for case, (m, lin) in {"A": (0.92, 0.90), "B": (0.90, 0.91)}.items():
        for method, ssim in (("model", m), ("linear", lin)):
            out.append({"case": case, "modality": "t1c", "method": method, "ssim": ssim, "ssim_brain": 0.5,
                        "ssim_tumor": float("nan"), "ssim_healthy": float("nan"), "psnr": 20.0, "mae": 0.1,
                        "seconds": 1.0})
    return out


def test_tables_average_over_folds_and_show_the_difference():
    text = table(rows())
    assert "| t1c | model - linear | +0.0050 |" in text and "| all | model - linear | +0.0050 |" in text
    per_fold = fold_table(rows())
    assert "| A | t1c | 0.9200 | 0.9000 | +0.0200 |" in per_fold and "| B | t1c | 0.9000 | 0.9100 | -0.0100 |" in per_fold
    assert fold_table(rows(), metric="ssim_tumor").count("\n") == 1  # no -seg file, no line (not a row of NaN)


def test_no_train_refuses_a_fold_without_its_exported_model(tmp_path):
    cases = tmp_path / "cases"
    (cases / "C-1").mkdir(parents=True)
    with pytest.raises(SystemExit, match="fold.json is missing"):
        main(["--cases", str(cases), "--out", str(tmp_path / "runs"), "--no-train"])
