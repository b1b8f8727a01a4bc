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

One diagnostic column is not fitted and not shipped, since it reads the real modality: each pair's **offset**, the
median of the output's [0, 1] brain minus the real one's, and each map's Spearman on the errors with that one number
taken off (:func:`offset_free_errors`). A map can rank where the output is wrong, but not a shift of the whole
brain's tone, which it cannot see; the column measures how much of the ranking's shortfall is that one number per
pair. Beside it, for reference: the Spearman, on the real errors, of the offset-free |errors| themselves, what a
map that predicts each voxel's |error| exactly but for that one number would score (:func:`exact_map_spearman`).
Under the table, the offsets' spread: their mean size, and how far each is from the mean of the other cases'
offsets for the same modality (the best a fitted constant correction could do).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.evaluation.ranking import MapErrors, map_quality, rank_quality
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


def offset_free_errors(synthesized: Scaled, truth: Scaled, brain: np.ndarray) -> tuple[float, np.ndarray]:
    """Diagnostic, from the real modality: the median of ``synthesized``'s [0, 1] image over ``brain`` (``(X, Y, Z)``
    bool) minus ``truth``'s, and the ``(n,)`` |errors| over ``brain`` once that offset is taken off."""
    out, real = synthesized.unit[brain], truth.unit[brain]
    offset = float(np.median(out) - np.median(real))
    return offset, np.abs(out - real - offset)


def exact_map_spearman(offset_free: np.ndarray, abs_error: np.ndarray) -> float:
    """Diagnostic: the Spearman with ``abs_error`` (``(n,)``, the real |errors|) of ``offset_free`` (the same voxels'
    |errors| with the pair's offset taken off, :func:`offset_free_errors`): what a map of |error| that is exact but
    for the offset would score. (A map that knew each error's sign could score more; an |error| map cannot.)"""
    return rank_quality(offset_free, abs_error)["unc_spearman"]


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
    scaled, truth = Scaled.of(output), Scaled.of(volumes[missing])
    errors = MapErrors.of(scaled, truth)  # scale-free errors in [0, 1], and raw ones
    offset, offset_free = offset_free_errors(scaled, truth, errors.brain)
    lo, hi = scaled.lo, scaled.hi
    record = {"mean_abs_error": float(errors.scaled.mean()), "voxels": int(errors.brain.sum()), "offset": offset,
              "exact_map": exact_map_spearman(offset_free, errors.scaled)}
    for name, scale in candidate_maps(moments).items():
        values = scale[errors.brain].astype(np.float64) * (slope / max(hi - lo, 1e-12))  # the map on the output's [0, 1]
        record[name] = {**map_quality(scale * np.float32(slope), errors), "mean_map": float(values.mean()),
                        "unc_spearman_offset_free": rank_quality(values, offset_free)["unc_spearman"]}
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


def offset_spread(records: list[dict]) -> tuple[float, float]:
    """The mean |offset| over the pairs, and the mean |offset - the mean offset of the other cases' pairs with the
    same missing modality| (a constant correction fitted on the other cases, scored on each in turn)."""
    own = [abs(r["offset"]) for r in records]
    loo = []
    for r in records:
        others = [o["offset"] for o in records if o["modality"] == r["modality"] and o["case"] != r["case"]]
        if others:
            loo.append(abs(r["offset"] - float(np.mean(others))))
    return float(np.mean(own)), float(np.mean(loo)) if loo else float("nan")


def table(records: list[dict], variant: str) -> str:
    lines = ["| case | missing | mean abs error ([0, 1] images) | offset | exact map but for the offset (oracle) | "
             + " | ".join(f"{v} top-10% | {v} Spearman | {v} Spearman, offset removed (oracle)" for v in VARIANTS) + " |",
             "|---|---|---|---|---|" + "---|---|---|" * len(VARIANTS)]
    for r in records:
        cells = [f"{r[v]['unc_top10']:.2f} | {r[v]['unc_spearman']:.3f} | {r[v]['unc_spearman_offset_free']:.3f}"
                 for v in VARIANTS]
        lines.append(f"| {r['case']} | {r['modality']} | {r['mean_abs_error']:.4f} | {r['offset']:+.3f} | "
                     f"{r['exact_map']:.3f} | "
                     + " | ".join(cells) + " |")
    means = [f"{np.mean([r[v]['unc_top10'] for r in records]):.2f} | {np.mean([r[v]['unc_spearman'] for r in records]):.3f}"
             f" | {np.mean([r[v]['unc_spearman_offset_free'] for r in records]):.3f}" for v in VARIANTS]
    lines.append(f"| mean | | | {np.mean([r['offset'] for r in records]):+.3f} | "
                 f"{np.mean([r['exact_map'] for r in records]):.3f} | " + " | ".join(means) + " |")
    size, left = offset_spread(records)
    return ("\n".join(lines) + f"\n\nChosen: {variant}.\n\n"
            f"Offset: the median of the output's [0, 1] brain minus the real modality's. Its mean size is {size:.3f}; "
            f"less the mean offset of the other cases for the same modality, {left:.3f}. The oracle column takes each "
            "pair's own offset off the errors, which needs the real modality: it is a diagnostic, not shipped. The column "
            "after the offset is the Spearman of those offset-free |errors| themselves on the real ones: what a map of "
            "|error| exact but for the offset would reach.\n")


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
