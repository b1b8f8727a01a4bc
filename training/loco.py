"""Leave-one-case-out evaluation of the trainer: one fold per case, scored by ``brasyn-infer evaluate``.

    python -m training.loco --cases ../shared/data/cases --minutes 15 --out runs/loco [-- trainer options]

Fold k trains on every case but k (``training.train --holdout k``), then
``brasyn-infer evaluate CASES REPORT --only k --drop all --baseline linear`` scores the held-out case,
the linear baseline fitted on the same three training cases. The table of all folds (model vs
linear, per modality, whole-volume / brain / tumor / healthy SSIM, PSNR, MAE) is printed and
written to ``OUT/loco.md`` and ``OUT/loco.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from brasyn_infer.evaluation.report import DOWNSTREAM, METRICS, read_rows, summarize

COLUMNS = [m for m in METRICS if m not in DOWNSTREAM and m != "seconds"]


def run_fold(case_id: str, args: argparse.Namespace, extra: list[str]) -> Path:
    """Train fold ``case_id`` (unless its ``fold.json`` exists) and score it (unless its report is newer than
    ``fold.json``); returns the report folder."""
    fold = args.out / f"fold-{case_id}"
    fold.mkdir(parents=True, exist_ok=True)
    manifest = fold / "fold.json"
    if not manifest.is_file():
        if args.no_train:
            raise SystemExit(f"{manifest} is missing (--no-train): export the fold's checkpoint first "
                             "(python -m training.export_checkpoint, or make export-gpu)")
        subprocess.run([sys.executable, "-m", "training.train", "--cases", str(args.cases), "--holdout", case_id,
                        "--minutes", str(args.minutes), "--seed", str(args.seed), "--out", str(fold), "--name", "fold",
                        "--checkpoint-dir", str(fold), *extra], check=True)
    report = fold / (f"report-{'+'.join(args.view)}" if args.view else "report")
    if already_scored(report, manifest):
        return report
    views = [a for v in args.view or [] for a in ("--view", v)]
    subprocess.run([sys.executable, "-m", "brasyn_infer", "evaluate", str(args.cases), str(report), "--only", case_id,
                    "--drop", "all", "--baseline", "linear", "--weights", str(manifest), "--no-refine", "--quiet", *views,
                    *(["--save-volumes", str(args.oof)] if args.oof else [])],
                   check=True)
    return report


def already_scored(report: Path, model: Path) -> bool:
    """Whether ``report/cases.csv`` was written after ``model`` (its manifest): then the fold is resumed, not redone."""
    scored = report / "cases.csv"
    return scored.is_file() and scored.stat().st_mtime > model.stat().st_mtime


def table(rows: list[dict], ours: str = "model", theirs: str = "linear", deltas: tuple[str, ...] = ("ssim",)) -> str:
    """Mean over folds per modality of ``ours`` and ``theirs``, and ``ours - theirs`` for ``deltas``."""
    summary = summarize(rows)
    lines = ["| modality | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for modality in ["t1c", "t1n", "t2f", "t2w", "all"]:
        for method in (ours, theirs):
            stats = summary.get(modality, {}).get(method)
            if stats:
                cells = [f"{stats[m]['mean']:.4f}" if stats[m]["mean"] is not None else "–" for m in COLUMNS]
                lines.append(f"| {modality} | {method} | " + " | ".join(cells) + " |")
        a, b = summary.get(modality, {}).get(ours), summary.get(modality, {}).get(theirs)
        if a and b:
            cells = [f"{a[m]['mean'] - b[m]['mean']:+.4f}" if m in deltas and a[m]["mean"] is not None
                     and b[m]["mean"] is not None else "" for m in COLUMNS]
            lines.append(f"| {modality} | {ours} - {theirs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_table(rows: list[dict], ours: str = "model", theirs: str = "linear", metric: str = "ssim") -> str:
    """One line per fold and modality: ``metric`` of ``ours``, of ``theirs``, and the difference."""
    by = {(r["case"], r["modality"], r["method"]): r[metric] for r in rows}
    lines = [f"| fold | missing | {ours} {metric} | {theirs} {metric} | delta |", "|---|---|---|---|---|"]
    for case, modality in sorted({(r["case"], r["modality"]) for r in rows}):
        a, b = by.get((case, modality, ours)), by.get((case, modality, theirs))
        if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)):  # NaN: e.g. no -seg file
            lines.append(f"| {case} | {modality} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    return "\n".join(lines)


def split_argv(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """``[ours...] -- [trainer's...]`` -> (ours, the trainer's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    return argv[: argv.index("--")], argv[argv.index("--") + 1 :]


def main(argv: list[str] | None = None) -> None:
    mine, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, default=Path("../shared/data/cases"))
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per fold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/loco"))
    p.add_argument("--folds", nargs="*", default=None, help="case IDs to hold out (default: every case)")
    p.add_argument("--view", nargs="*", default=None, help="evaluate with these views instead of the manifest's")
    p.add_argument("--no-train", action="store_true", help="score existing folds only (trained elsewhere, e.g. on a GPU)")
    p.add_argument("--oof", type=Path, default=None,
                   help="also keep each fold's outputs on its held-out case here (what training.oof writes: the "
                   "refiner's training inputs)")
    args = p.parse_args(mine)
    case_ids = args.folds or sorted(d.name for d in args.cases.iterdir() if d.is_dir())
    rows = []
    for case_id in case_ids:
        rows += read_rows(run_fold(case_id, args, extra) / "cases.csv")
    text = table(rows) + "\n\n" + fold_table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"loco-{'+'.join(args.view)}" if args.view else "loco"
    (args.out / f"{stem}.md").write_text(text + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps(summarize(rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
