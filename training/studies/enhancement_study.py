"""Would a synthesized t1c that carries the direct route's enhancing tumor segment better? (issue 41; a study)

    python -m training.studies.enhancement_study --cases ../shared/data/brats2018 ../shared/data/brats2021 \\
        ../shared/data/cases --exclude TCGA-DU-7294 --volumes runs/enh/default-volumes \\
        --direct runs/seg-distill/val/segmenter-any-val.json \\
        --judge runs/seg/val/segmenter-val.json --judge runs/seg-any/val/segmenter-any-val.json

``VOLUMES`` holds a generator's t1c for held-out cases, as ``brasyn-infer evaluate --drop t1c --save-volumes``
writes them. The synthesized t1c has no enhancing rim (docs/research-log.md); the missing-sequence segmenter finds
the enhancing tumor from t1n + t2f + t2w better than any judge finds it in the synthesized t1c. This study asks what
a segmenter reads when the two are put together: where the missing-sequence segmenter (``--direct``) calls the
enhancing tumor (label ET) on t1n + t2f + t2w, the synthesized t1c is raised to the enhancement contrast of real
t1c, and each full-input judge (``--judge``) segments the real t1n, t2f, t2w with that t1c in place.

The contrast is measured on real t1c only, on the cases with expert labels that ``VOLUMES`` does not hold (the
training split): per case, the median t1c in the expert's enhancing tumor over the median t1c in the brain outside
the tumor; the study takes the median of those ratios. Painted: inside the direct route's ET, the synthesized t1c
becomes ``max(t1c, ratio * median of the synthesized t1c in the brain outside the direct route's tumor)``
(``--mode level``), or is scaled so that its median there reaches that level (``--mode gain``: its texture kept;
the product's optional stage, :mod:`brasyn_infer.synthesis.enhance`, which can also darken the direct route's
necrotic core to real t1c's necrosis contrast, ``--necrosis``, and smooth the change, ``--feather``).

Per case and overall: each judge's global Dice (WT, TC, ET; official metrics) with the synthesized, the painted and
the real t1c, and the t1c's SSIM (brain; tumor, expert mask) of the synthesized and the painted against the real
one. Nothing is written but the printed table; no shipped model reads this.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.metrics import score
from brasyn_infer.evaluation.protocol import expert_classes
from brasyn_infer.evaluation.seg_metrics import brats_scores
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs, voxel_spacing
from brasyn_infer.runtime.segmenter import Segmenter
from brasyn_infer.segmentation.labels import REGIONS as CLASS_REGION_NAMES
from brasyn_infer.synthesis.enhance import ENHANCING, NECROTIC, contrast_ratio, enhance, healthy_median

from ..data import find_case_folders, saved_outputs

REGIONS = tuple(r.lower() for r in CLASS_REGION_NAMES)  #: the Dice columns of brats_scores: dice_wt, ...


def paint(t1c: np.ndarray, classes: np.ndarray, ratio: float) -> np.ndarray:
    """``t1c`` ``(X, Y, Z)`` with the voxels that ``classes`` call enhancing raised (never lowered) to ``ratio`` times
    the :func:`~brasyn_infer.synthesis.enhance.healthy_median` (``--mode level``); the rest unchanged. ``--mode
    gain`` is the product's stage, :func:`~brasyn_infer.synthesis.enhance.enhance`."""
    level = ratio * (healthy_median(t1c, classes) or 0.0)
    out = t1c.astype(np.float32).copy()
    enhancing_voxels = np.isin(classes, ENHANCING) & (t1c > 0)
    out[enhancing_voxels] = np.maximum(out[enhancing_voxels], level)
    return out


def rim_classes(classes: np.ndarray, width: int) -> np.ndarray:
    """``classes`` with the tumor core (NCR + ET) redrawn as a rim: its outer ``width`` voxels enhancing, the
    interior necrotic (``--rim``)."""
    core = np.isin(classes, NECROTIC + ENHANCING)
    inside = ndimage.binary_erosion(core, iterations=width)  # the 6-neighbourhood; outside the array is outside
    out = classes.copy()
    out[core] = ENHANCING[0]
    out[inside] = NECROTIC[0]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--exclude", nargs="*", default=[], help="case IDs not used (e.g. algorithmic labels)")
    p.add_argument("--volumes", type=Path, required=True, help="evaluate --save-volumes of --drop t1c")
    p.add_argument("--direct", type=Path, required=True, help="the missing-sequence segmenter's manifest")
    p.add_argument("--judge", type=Path, action="append", required=True, help="a full-input segmenter's manifest")
    p.add_argument("--mode", choices=("level", "gain"), default="level",
                   help="level: the called enhancing voxels raised to the level; gain: scaled to it (texture kept)")
    p.add_argument("--necrosis", action="store_true",
                   help="gain only: also scale the called necrotic core down to real t1c's necrosis contrast")
    p.add_argument("--feather", type=float, default=0.0,
                   help="gain only: smooth the change by a Gaussian of this sigma (voxels)")
    p.add_argument("--rim", type=int, default=0,
                   help="gain only: paint the guide's tumor core as a rim of this many voxels (enhancing) around "
                        "its interior (necrotic), instead of the guide's own enhancing/necrotic split")
    p.add_argument("--ratio", type=float, default=None,
                   help="the enhancement contrast to paint, instead of the training cases' median (a sweep)")
    args = p.parse_args(argv)

    folders = {f.name: f for f in find_case_folders(args.cases) if f.name not in args.exclude}
    outputs = [o for o in saved_outputs(args.volumes, folders) if o.missing is Modality.T1C]
    held = {o.case_id for o in outputs}
    if args.mode == "level" and (args.necrosis or args.feather):
        p.error("--necrosis and --feather apply to --mode gain")
    ratios, necroses = [], []
    for name, folder in sorted(folders.items()):
        if name in held:
            continue
        files = complete_case(folder)
        labels = expert_classes(files, None)
        if labels is None:
            continue
        real_t1c = load_volume(files.modalities[Modality.T1C]).data
        r, n = contrast_ratio(real_t1c, labels, ENHANCING), contrast_ratio(real_t1c, labels, NECROTIC)
        if r is not None:
            ratios.append(r)
        if n is not None:
            necroses.append(n)
    if not ratios:
        raise SystemExit("no case outside --volumes has an expert segmentation with enhancing tumor: the "
                         "enhancement contrast is measured on those; add their folders to --cases")
    if not outputs:
        raise SystemExit(f"{args.volumes}: no synthesized t1c (evaluate --drop t1c --save-volumes writes them)")
    ratio = float(np.median(ratios))
    print(f"enhancement ratio: median {ratio:.3f} over {len(ratios)} training cases "
          f"(range {min(ratios):.3f} to {max(ratios):.3f})", flush=True)
    if args.ratio is not None:
        ratio = args.ratio
        print(f"painted with --ratio {ratio:.3f} instead", flush=True)
    necrosis = float(np.median(necroses)) if args.necrosis and necroses else None
    if args.necrosis:
        if necrosis is None:
            raise SystemExit("no case outside --volumes has an expert necrotic core: --necrosis measures it there")
        print(f"necrosis ratio: median {necrosis:.3f} over {len(necroses)} training cases "
              f"(range {min(necroses):.3f} to {max(necroses):.3f})", flush=True)

    direct = Segmenter(args.direct)
    judges = [Segmenter(j) for j in args.judge]
    rows: list[dict] = []
    for out in outputs:
        files = complete_case(out.folder)
        loaded = read_inputs(files.modalities)
        real = {m: v.data for m, v in loaded.items()}
        reference = expert_classes(files, None)
        spacing = voxel_spacing(loaded[Modality.T1C].image)
        synthesized = load_volume(out.path).data.astype(np.float32)
        guide = direct.segment({m: v for m, v in real.items() if m is not Modality.T1C})
        if args.rim:
            guide = rim_classes(guide, args.rim)
        painted = (enhance(synthesized, guide, ratio, necrosis, args.feather) if args.mode == "gain"
                   else paint(synthesized, guide, ratio))
        for source, t1c in (("synthesized", synthesized), ("painted", painted), ("real", real[Modality.T1C])):
            row = {"case": out.case_id, "t1c": source}
            for j, judge in enumerate(judges, start=1):
                s = brats_scores(judge.segment({**real, Modality.T1C: t1c}), reference, spacing)
                row.update({f"j{j}_{k}": s[f"dice_{k}"] for k in REGIONS})
            if source != "real":
                image = score(t1c, real[Modality.T1C], tumor=reference > 0)
                row.update(ssim_brain=image["ssim_brain"], ssim_tumor=image["ssim_tumor"])
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)

    print(f"\n| t1c | n | {' | '.join(f'judge {j} WT / TC / ET' for j in range(1, len(judges) + 1))} "
          "| ssim_brain / ssim_tumor |")
    print("|---|---|" + "---|" * len(judges) + "---|")
    for source in ("synthesized", "painted", "real"):
        sel = [r for r in rows if r["t1c"] == source]
        cells = [" / ".join(f"{np.nanmean([r[f'j{j}_{k}'] for r in sel]):.3f}" for k in REGIONS)
                 for j in range(1, len(judges) + 1)]
        image = (f"{np.nanmean([r['ssim_brain'] for r in sel]):.3f} / {np.nanmean([r['ssim_tumor'] for r in sel]):.3f}"
                 if source != "real" else "")
        print(f"| {source} | {len(sel)} | {' | '.join(cells)} | {image} |")


if __name__ == "__main__":
    main()
