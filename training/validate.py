"""Fit the uncertainty map's settings on the validation cases, and write them into the validation model's manifest.

    python -m training.validate --cases ../shared/data/cases ../shared/data/brats2018 --holdout ID ... \\
        --weights runs/train/val/val.json --out runs/train/validation

For every held-out case and dropped modality, the validation model (trained without these cases) synthesizes the
case as the product does, keeping its views' moments (:func:`brasyn_infer.synthesis.generate.generate_volume` with
``with_scale``). Two maps are scored against the real errors over the brain, taken on the scale-free images the
metrics compare (each volume over its own 0.5-99.5 percentiles; :func:`brasyn_infer.evaluation.ranking.map_quality`):
the mean Laplace scale of the views, and that scale widened by the views' spread. The one with the higher mean
``unc_top10`` is chosen (``view_spread``). Per modality, the calibration factor makes its mean over the validation
brains equal to the mean error there: the error of the output against the real modality brought to the output's
intensity scale (a missing modality's absolute scale cannot be known from the others). Both go into the manifest's
``uncertainty`` block (:mod:`brasyn_infer.synthesis.uncertainty`). ``OUT/validate.json`` and ``OUT/validate.md``
hold the per-pair figures. Nothing here is fitted on a case the model trained on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.evaluation.ranking import MapErrors, map_quality
from brasyn_infer.io.atomic import write_json_atomic, write_text_atomic
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import read_inputs
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import load_manifest, write_manifest
from brasyn_infer.synthesis.generate import generate_volume
from brasyn_infer.synthesis.normalize import background_mask
from brasyn_infer.synthesis.uncertainty import ScaleMap

from .data import find_case_folders

VARIANTS = ("scale", "scale+spread")


def candidate_maps(moments: np.ndarray) -> dict[str, np.ndarray]:
    """The two candidate maps (normalized units) from the views' moments ``(3, X, Y, Z)`` (y, y**2, b)."""
    y, second, scale = moments
    variance = np.maximum(second - y * y, 0)
    return {"scale": scale, "scale+spread": np.sqrt(scale * scale + variance)}


def score_pair(synth: Synthesizer, volumes: dict[Modality, np.ndarray], missing: Modality) -> dict:
    """One held-out pair: the output as the product makes it, each candidate map in output units, their ranking
    of the real errors, and the sums a calibration needs."""
    norm = synth.normalizer
    inputs = {m: v for m, v in volumes.items() if m is not missing}
    x4, scales = norm.stack(inputs, missing)
    background = background_mask(x4, missing, norm.fill)
    moments = generate_volume(synth.session, x4, missing, synth.views, synth.batch_size, fill=norm.fill, tta=synth.tta,
                              with_scale=True)
    output = norm.restore(moments[0].copy(), background, missing, scales)
    slope = norm.slope(missing, scales)
    scaled = Scaled.of(output)
    errors = MapErrors.of(scaled, volumes[missing])  # scale-free errors in [0, 1], and raw ones
    lo, hi = scaled.lo, scaled.hi
    record = {"mean_abs_error": float(errors.scaled.mean()), "voxels": int(errors.brain.sum())}
    for name, scale in candidate_maps(moments).items():
        values = scale[errors.brain].astype(np.float64) * (slope / max(hi - lo, 1e-12))  # the map on the output's [0, 1]
        record[name] = {**map_quality(scale * np.float32(slope), errors), "mean_map": float(values.mean())}
    return record


def choose(records: list[dict]) -> tuple[str, dict[Modality, float]]:
    """The variant with the higher mean ``unc_top10`` over all pairs, and per modality the factor that makes its
    mean equal the mean |error| (voxel-weighted over the modality's pairs)."""
    variant = max(VARIANTS, key=lambda v: np.mean([r[v]["unc_top10"] for r in records]))
    calibration = {}
    for m in MODALITIES:
        pairs = [r for r in records if r["modality"] == m.value]
        if pairs:
            errors = sum(r["mean_abs_error"] * r["voxels"] for r in pairs)
            maps = sum(r[variant]["mean_map"] * r["voxels"] for r in pairs)
            calibration[m] = errors / maps if maps > 0 else 1.0
    return variant, calibration


def table(records: list[dict], variant: str) -> str:
    lines = ["| case | missing | mean abs error ([0, 1] images) | " + " | ".join(f"{v} top-10% | {v} Spearman" for v in VARIANTS)
             + " |",
             "|---|---|---|" + "---|---|" * len(VARIANTS)]
    for r in records:
        cells = [f"{r[v]['unc_top10']:.2f} | {r[v]['unc_spearman']:.3f}" for v in VARIANTS]
        lines.append(f"| {r['case']} | {r['modality']} | {r['mean_abs_error']:.4f} | " + " | ".join(cells) + " |")
    means = [f"{np.mean([r[v]['unc_top10'] for r in records]):.2f} | {np.mean([r[v]['unc_spearman'] for r in records]):.3f}"
             for v in VARIANTS]
    lines.append("| mean | | | " + " | ".join(means) + " |")
    return "\n".join(lines) + f"\n\nChosen: {variant}.\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--holdout", nargs="+", required=True, help="the validation cases (never trained on)")
    p.add_argument("--weights", type=Path, required=True, help="the validation model's manifest (written back)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    manifest = load_manifest(args.weights)
    trained = set(manifest.training.get("data", {}).get("train", []))
    if trained & set(args.holdout):
        raise SystemExit(f"the model was trained on {', '.join(sorted(trained & set(args.holdout)))}: not held out")
    folders = {p.name: p for p in find_case_folders(args.cases)}
    synth = Synthesizer(args.weights, device=Device.CPU, uncertainty=True)
    if not synth.own_scale:
        raise SystemExit(f"{args.weights}: the graph has no log_scale output to fit a map on")
    records = []
    for case_id in args.holdout:
        files = complete_case(folders[case_id])
        volumes = {m: v.data for m, v in read_inputs(files.modalities).items()}
        for missing in MODALITIES:
            record = {"case": case_id, "modality": missing.value, **score_pair(synth, volumes, missing)}
            records.append(record)
            print(json.dumps(record), flush=True)
    variant, calibration = choose(records)
    block = ScaleMap(view_spread=variant == "scale+spread", calibration=calibration).to_json()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "validate.json", {"records": records, "variant": variant, "uncertainty": block})
    write_text_atomic(args.out / "validate.md", table(records, variant))
    from dataclasses import replace

    write_manifest(replace(manifest, uncertainty=block))
    print(table(records, variant))
    print(f"uncertainty block written into {args.weights}: {json.dumps(block)}")


if __name__ == "__main__":
    main()
