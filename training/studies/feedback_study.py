"""All at once, or one after another? How a case lacking several sequences is best completed (issue 35).

    python -m training.studies.feedback_study --data runs/train/validation/all-data --only CASE ... \\
        --weights runs/any/val/val-any-1v.json --report runs/any/validation --out runs/any/feedback.json

The product makes every missing sequence from the real inputs only, all at once (docs/design.md §5b). The
alternative feeds each output back: the first missing sequence (MODALITIES order) is made from the real inputs,
then counts as an input for the next, and so on. The first sequence of a pattern is the same either way; this
study makes the others by feeding back and scores them (brain SSIM, :func:`brasyn_infer.evaluation.metrics.ssim_brain`)
against the all-at-once rows that ``evaluate --drop pairs,singles`` wrote for the same weights into ``REPORT``'s
``cases.csv``. Both use the weights as they are (no ``copy_blend``: ``prior=False``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.evaluation.metrics import ssim_brain
from brasyn_infer.evaluation.patterns import group, label
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.pipeline.synthesizer import Synthesizer


def fed_back(synth: Synthesizer, real: dict[Modality, np.ndarray], pattern: tuple[Modality, ...]) -> dict[Modality, np.ndarray]:
    """Every sequence of ``pattern`` after the first, each made with the ones before it fed back as inputs."""
    inputs = {m: v for m, v in real.items() if m not in pattern}
    made = {}
    for k, target in enumerate(pattern):
        y = synth.synthesize_stages(inputs, target, absent=list(pattern[k + 1:]))["generator"]
        if k:
            made[target] = y
        inputs[target] = y
    return made


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a folder of complete case folders")
    p.add_argument("--only", nargs="+", required=True, help="the held-out case IDs")
    p.add_argument("--weights", type=Path, required=True, help="the pattern model (patterns: any)")
    p.add_argument("--report", type=Path, required=True, help="evaluate's REPORT_DIR with the all-at-once rows")
    p.add_argument("--out", type=Path, required=True, help="the study's JSON")
    args = p.parse_args(argv)
    at_once = {(r["case"], r["pattern"], r["modality"]): float(r["ssim_brain"])
               for r in csv.DictReader((args.report / "cases.csv").open()) if r["method"] == "model"}
    synth = Synthesizer(args.weights, prior=False)
    rows = []
    for case_id in args.only:
        real = {m: load_volume(path).data for m, path in complete_case(args.data / case_id).modalities.items()}
        for pattern in group("pairs") + group("singles"):
            for target, y in fed_back(synth, real, pattern).items():
                key = (case_id, label(pattern), target.value)
                if key not in at_once:
                    raise SystemExit(f"{args.report / 'cases.csv'}: no model row for {key}")
                rows.append({"case": case_id, "pattern": label(pattern), "target": target.value,
                             "at_once": at_once[key], "fed_back": ssim_brain(y, real[target])})
                print(rows[-1], flush=True)
        write_json_atomic(args.out, {"weights": str(args.weights), "rows": rows})
    print("| missing | synthesized | n | all at once | fed back | fed back - all at once |\n|---|---|---|---|---|---|")
    for pattern in group("pairs") + group("singles"):
        for target in (m for m in MODALITIES if m in pattern[1:]):
            mine = [r for r in rows if r["pattern"] == label(pattern) and r["target"] == target.value]
            a, b = np.mean([r["at_once"] for r in mine]), np.mean([r["fed_back"] for r in mine])
            print(f"| {label(pattern)} | {target.value} | {len(mine)} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    diffs = [r["fed_back"] - r["at_once"] for r in rows]
    print(f"all {len(rows)}: fed back - all at once, mean {np.mean(diffs):+.4f}, better in {sum(d > 0 for d in diffs)}")


if __name__ == "__main__":
    main()
