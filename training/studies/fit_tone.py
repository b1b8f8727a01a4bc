"""Fit the tone correction on held-out outputs, and write it into a manifest.

    python -m training.studies.fit_tone --cases ../shared/data/cases ../shared/data/brats2018 \\
        --volumes runs/train/validation/volumes --weights weights/default.json

``VOLUMES`` holds the validation model's outputs on the validation cases, as ``brasyn-infer evaluate
--save-volumes`` writes them (``<case>/<case>-<modality>.nii.gz``; ``make validate`` keeps them): a model's
outputs on cases it never trained on, since the distortion to undo is the one it makes on unseen cases. For each
modality, the curve pairs the mean quantile function of those outputs' brains on their [0, 1] images with that of
the same cases' real brains (:func:`brasyn_infer.synthesis.tone.brain_quantiles`); it goes into the manifest's
``tone`` block, and every run of those weights then takes its output through it
(:func:`brasyn_infer.synthesis.tone.correct_tone`; ``--no-tone`` turns it off). ``training/studies/posthoc_study.py``
scores it on the same cases, and leave-one-case-out.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.runtime.manifest import load_manifest, write_manifest
from brasyn_infer.synthesis.tone import POINTS, Tone, brain_quantiles, template

from ..data import SavedOutput, find_case_folders, saved_outputs


@dataclass(frozen=True)
class PairTone:
    """One held-out pair's quantile functions ``(POINTS + 1,)``: its output's brain and the real one's."""

    case_id: str
    missing: Modality
    output: np.ndarray
    real: np.ndarray


def pair_tone(case_id: str, missing: Modality, output: np.ndarray, real: np.ndarray, points: int = POINTS) -> PairTone:
    """The :class:`PairTone` of an output and the real volume ``(X, Y, Z)`` it stands for."""
    return PairTone(case_id, missing, brain_quantiles(output, points), brain_quantiles(real, points))


def fit_tone(pairs: Iterable[PairTone], leave_out: str | None = None) -> Tone:
    """Per modality, the mean output and mean real quantile functions of ``pairs`` (without case ``leave_out``)."""
    curves = {}
    pairs = [p for p in pairs if p.case_id != leave_out]
    for m in MODALITIES:
        mine = [p for p in pairs if p.missing is m]
        if mine:
            curves[m] = (template(p.output for p in mine), template(p.real for p in mine))
    return Tone(curves)


def tones_of(outputs: Iterable[SavedOutput], points: int = POINTS) -> list[PairTone]:
    """The :class:`PairTone` of each saved output and its case's real modality."""
    pairs = []
    for saved in outputs:
        real = complete_case(saved.folder).modalities[saved.missing]
        pairs.append(pair_tone(saved.case_id, saved.missing, load_volume(saved.path).data, load_volume(real).data,
                               points))
        print(f"tone: {saved.case_id} {saved.missing.value}", flush=True)
    return pairs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--volumes", type=Path, required=True, help="held-out outputs: evaluate --save-volumes DIR")
    p.add_argument("--weights", type=Path, required=True, help="the manifest its tone block is written into")
    p.add_argument("--points", type=int, default=POINTS, help=f"quantiles per curve, 0..1 in POINTS steps ({POINTS})")
    args = p.parse_args(argv)
    manifest = load_manifest(args.weights)
    pairs = tones_of(saved_outputs(args.volumes, {f.name: f for f in find_case_folders(args.cases)}), args.points)
    tone = fit_tone(pairs)
    middle = args.points // 2
    for m, (output, real) in tone.curves.items():
        print(f"{m.value}: {sum(p.missing is m for p in pairs)} pairs; the outputs' median brain level "
              f"{output[middle]:.3f} on [0, 1], the real ones' {real[middle]:.3f}")
    write_manifest(replace(manifest, tone=tone.to_json()))
    print(f"tone block ({len(pairs)} pairs, {args.points + 1} quantiles per curve) written into {args.weights}")


if __name__ == "__main__":
    main()
