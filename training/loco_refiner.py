"""Leave-one-case-out evaluation of the 3D Refiner, on top of the generator's folds.

    python -m training.loco_refiner --cases ../shared/data/cases --generators runs/loco \\
        --oof runs/oof --out runs/loco-refiner [-- train_refiner options]

Needs the generator folds (``python -m training.loco``) and their out-of-fold outputs
(``python -m training.oof`` or ``training.loco --oof``); resumable: a fold whose refiner and report
exist is read, not redone. Fold k trains a refiner on the out-of-fold outputs of every case but
k (``training.train_refiner --holdout k``), then ``brasyn-infer evaluate --only k --drop all
--weights GENERATORS/fold-k/fold.json --refiner OUT/fold-k/refiner.json`` scores the generator
alone (``model``), with the refiner (``model+refiner``) and the linear baseline on case k. The table (whole-volume,
tumor and healthy SSIM with and without, per modality) goes to ``OUT/loco.md`` and ``OUT/loco.json``,
with the default-on rule of the refiner issue applied: on only if tumor SSIM rises and whole-volume
SSIM falls by less than 0.005.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from brasyn_infer.evaluation.dry_run import MODEL, REFINED
from brasyn_infer.evaluation.report import read_rows, summarize

from .loco import already_scored, fold_table, split_argv, table

#: The refiner is on by default only if it raises tumor SSIM and lowers whole-volume SSIM by less than this.
MAX_WHOLE_SSIM_DROP = 0.005


def decide(summary: dict) -> tuple[bool, str]:
    """Apply the default-on rule to the ``all`` row of a summary; returns (on, the reason in words)."""
    model, refined = summary["all"][MODEL], summary["all"][REFINED]
    whole = refined["ssim"]["mean"] - model["ssim"]["mean"]
    if refined["ssim_tumor"]["mean"] is None or model["ssim_tumor"]["mean"] is None:
        return False, (f"whole-volume SSIM {whole:+.4f}, no tumor SSIM (no held-out case has a -seg file): "
                       "off by default (the rule needs tumor SSIM to rise)")
    tumor = refined["ssim_tumor"]["mean"] - model["ssim_tumor"]["mean"]
    on = tumor > 0 and whole > -MAX_WHOLE_SSIM_DROP
    return on, (f"tumor SSIM {tumor:+.4f}, whole-volume SSIM {whole:+.4f}: "
                + ("on by default" if on else "off by default (the rule needs tumor > 0 and whole > -0.005)"))


def main(argv: list[str] | None = None) -> None:
    mine, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, default=Path("../shared/data/cases"))
    p.add_argument("--generators", type=Path, default=Path("runs/loco"))
    p.add_argument("--oof", type=Path, default=Path("runs/oof"))
    p.add_argument("--out", type=Path, default=Path("runs/loco-refiner"))
    p.add_argument("--folds", nargs="*", default=None)
    args = p.parse_args(mine)
    case_ids = args.folds or sorted(d.name for d in args.cases.iterdir() if d.is_dir())
    rows = []
    for case_id in case_ids:
        fold = args.out / f"fold-{case_id}"
        if not (fold / "refiner.json").is_file():
            subprocess.run([sys.executable, "-m", "training.train_refiner", "--cases", str(args.cases), "--synthesized",
                            str(args.oof), "--holdout", case_id, "--out", str(fold), "--name", "refiner", *extra],
                           check=True)
        report = fold / "report"
        if already_scored(report, fold / "refiner.json"):
            rows += read_rows(report / "cases.csv")
            continue
        subprocess.run([sys.executable, "-m", "brasyn_infer", "evaluate", str(args.cases), str(report), "--only",
                        case_id, "--drop", "all", "--baseline", "linear", "--weights",
                        str(args.generators / f"fold-{case_id}" / "fold.json"), "--refiner", str(fold / "refiner.json"),
                        "--quiet"], check=True)
        rows += read_rows(report / "cases.csv")
    summary = summarize(rows)
    on, reason = decide(summary)
    text = "\n\n".join([table(rows, REFINED, MODEL, ("ssim", "ssim_brain", "ssim_tumor", "ssim_healthy", "psnr", "mae")),
                        fold_table(rows, REFINED, MODEL), fold_table(rows, REFINED, MODEL, "ssim_tumor"),
                        f"Decision: {reason}",
                        "The generator alone against the linear baseline (the same evaluation):",
                        table(rows), fold_table(rows)])
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loco.md").write_text(text + "\n")
    (args.out / "loco.json").write_text(json.dumps({"summary": summary, "default_on": on, "reason": reason}, indent=1) + "\n")


if __name__ == "__main__":
    main()
