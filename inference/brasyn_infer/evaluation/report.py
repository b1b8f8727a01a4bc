"""Dry-run reports: ``cases.csv`` (appended row by row), ``summary.json``, ``report.md`` and QC PNGs."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES
from brasyn_infer.io.atomic import write_json_atomic, write_text_atomic

CSV_FIELDS = ["case", "modality", "method", "ssim", "ssim_brain", "ssim_tumor", "ssim_healthy", "psnr", "mae",
              "dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et", "unc_spearman", "unc_top10", "unc_spearman_raw",
              "unc_top10_raw", "seconds"]
METRICS = CSV_FIELDS[3:]
#: Downstream columns, empty unless `evaluate --segment` ran.
DOWNSTREAM = ["dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et"]
#: How the uncertainty map ranks the model's real errors (brain voxels): empty without a map.
UNCERTAINTY = ["unc_spearman", "unc_top10", "unc_spearman_raw", "unc_top10_raw"]


def read_rows(path: Path) -> list[dict]:
    """Rows of an existing ``cases.csv`` (numbers as floats); [] when absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in METRICS:
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows


def append_row(path: Path, row: Mapping) -> None:
    """Append one row, writing the header first for a new file; flushed so a kill keeps it."""
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        handle.flush()
        os.fsync(handle.fileno())


def summarize(rows: list[dict]) -> dict:
    """``{modality: {method: {metric: {mean, std, n}}}}`` plus ``all`` over modalities; NaN/inf excluded."""
    out: dict = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["modality"], row["method"]), []).append(row)
        groups.setdefault(("all", row["method"]), []).append(row)
    for (modality, method), members in sorted(groups.items()):
        stats = {}
        for metric in METRICS:
            values = np.array([r.get(metric, math.nan) for r in members], dtype=float)
            values = values[np.isfinite(values)]
            stats[metric] = ({"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4), "n": int(len(values))}
                             if len(values) else {"mean": None, "std": None, "n": 0})
        out.setdefault(modality, {})[method] = stats
    return out


def markdown_table(summary: dict, metrics: list[str]) -> str:
    methods = sorted({m for mod in summary.values() for m in mod}, key=lambda m: (m != "model", m))
    lines = ["| modality | method | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for modality in [m.value for m in MODALITIES] + ["all"]:
        for method in methods:
            stats = summary.get(modality, {}).get(method)
            if not stats:
                continue
            cells = [_cell(stats[k]) for k in metrics]
            lines.append(f"| {modality} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(stats: dict) -> str:
    """``mean ± std (n=N)``; one value has no spread: ``mean (n=1)``; none: ``–``."""
    if stats["mean"] is None:
        return "–"
    if stats["n"] == 1:
        return f"{stats['mean']:.4f} (n=1)"
    return f"{stats['mean']:.4f} ± {stats['std']:.4f} (n={stats['n']})"


def weights_label(synth) -> str:
    """What ran, for report.md: weights, ONNX file, views and refiner."""
    return f"Weights `{synth.manifest.name}` ({synth.manifest.onnx}), view {synth.label}"


def write_reports(rows: list[dict], report_dir: Path, label: str) -> dict:
    """``summary.json`` and ``report.md`` of ``rows``; ``label``: :func:`weights_label` of what ran."""
    summary = summarize(rows)
    write_json_atomic(report_dir / "summary.json", summary)
    pictures = sorted(p.name for p in report_dir.glob("*.png"))
    cases = sorted({r["case"] for r in rows})
    text = [
        "# Dry-run report",
        "",
        f"{label}; {len(cases)} cases: "
        + ", ".join(cases) + ".",
        "",
        "SSIM the organizers' way (each volume clipped to its own 0.5-99.5 percentiles, scaled to [0, 1], "
        "Gaussian window 11, sigma 1.5): `ssim` is the mean over the whole volume (background included, "
        "the challenge's figure), `ssim_brain` over truth > 0, `ssim_tumor` / `ssim_healthy` inside / "
        "outside the segmentation (cases with a `-seg` file only). PSNR (dB) and MAE over the brain, on the "
        "[0, 1] images. `seconds`: the pipeline's time per case (model), or the baseline's. With `--segment`: "
        "Dice and HD95 (mm) of WT/TC/ET between the BraTS 2023 segmenter's output on the case with the "
        "synthesized modality and the case's `-seg` (or the segmenter's output on the four real modalities). "
        "With the uncertainty map (the model's rows): `unc_spearman`, the Spearman correlation between the map "
        "and |synthesized - real| over the brain, and `unc_top10`, the mean |error| of the 10% most uncertain "
        "brain voxels over that of the other 90% (1: no better than chance), with the error taken on the same "
        "[0, 1] images as SSIM, PSNR and MAE; `_raw`: on the raw intensities, where the missing modality's "
        "intensity scale, which no model can know from the other three, dominates the error.",
        "",
        "## Mean ± std (n values) per modality and method",
        "",
        markdown_table(summary, [m for m in METRICS if m not in DOWNSTREAM + UNCERTAINTY or _has(rows, m)]),
        "",
        "## QC pictures",
        "",
        "Rows: axial, coronal, sagittal through the tumor (or the brain's center). Columns: the three "
        "inputs, the synthesized and the real volume (each on its own 0.5-99.5 percentile scale, as the metrics "
        "compare them), their |difference| on those [0, 1] images and, with the map, the uncertainty brought to "
        "the synthesized volume's scale (one color scale: the 99.5th percentile of the brain's |difference|).",
        "",
    ]
    text += [f"![{name}]({name})\n" for name in pictures]
    write_text_atomic(report_dir / "report.md", "\n".join(text))
    return summary


def _has(rows: list[dict], metric: str) -> bool:
    return any(isinstance(r.get(metric), float) and math.isfinite(r[metric]) for r in rows)
