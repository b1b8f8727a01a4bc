"""Dry-run reports: ``cases.csv`` (appended row by row), ``summary.json``, ``report.md`` and QC PNGs."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES
from brasyn_infer.errors import UsageError
from brasyn_infer.io.atomic import write_json_atomic, write_text_atomic

#: the method of a row that says why a case or pair has no scores (its ``error`` column)
ERROR = "error"
#: the method of a row that explains empty figures of a scored case (its ``error`` column holds the reason)
NOTE = "note"

CSV_FIELDS = ["case", "pattern", "modality", "method", "ssim", "ssim_brain", "ssim_tumor", "ssim_healthy",
              "ssim_tumor_organizers", "ssim_non_tumor_organizers", "psnr", "mae",
              "dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et",
              "lw_dice_wt", "lw_dice_tc", "lw_dice_et", "lw_hd95_wt", "lw_hd95_tc", "lw_hd95_et",
              "unc_spearman", "unc_top10", "unc_spearman_raw", "unc_top10_raw", "seconds", "error"]
METRICS = CSV_FIELDS[4:-1]
#: Downstream columns, empty unless `evaluate --segment` ran.
DOWNSTREAM = ["dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et",
              "lw_dice_wt", "lw_dice_tc", "lw_dice_et", "lw_hd95_wt", "lw_hd95_tc", "lw_hd95_et"]
#: How the uncertainty map ranks the model's real errors (brain voxels): empty without a map.
UNCERTAINTY = ["unc_spearman", "unc_top10", "unc_spearman_raw", "unc_top10_raw"]
#: a row's key: one per case, pattern, synthesized modality and method
Key = tuple[str, str, str, str]


def row_key(row: Mapping) -> Key:
    return (row["case"], row.get("pattern") or row["modality"], row["modality"], row["method"])


def read_rows(path: Path) -> list[dict]:
    """Rows of an existing ``cases.csv`` (numbers as floats); [] when absent.

    A row cut short (a full disk, a kill mid-write: no end of line, or fewer fields than the header) is dropped,
    and the file is rewritten without it (atomically), so the pair is scored again. A file written with other
    columns (an older brasyn-infer) is refused."""
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    if header != CSV_FIELDS:
        raise UsageError("holds a cases.csv with other columns (written by another brasyn-infer version)", path,
                         "pass another REPORT_DIR")
    rows, kept = [], [lines[0]]
    for line in lines[1:]:
        values = next(csv.reader([line]), [])
        if not line.endswith("\n") or len(values) != len(CSV_FIELDS):
            continue  # torn: redone
        kept.append(line)
        rows.append(dict(zip(CSV_FIELDS, values, strict=True)))
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(kept))
    for row in rows:
        for key in METRICS:
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows


def append_row(path: Path, row: Mapping) -> None:
    """Append one row, writing the header first for a new file; flushed so a kill keeps it (a kill mid-row leaves
    a torn row, which :func:`read_rows` drops)."""
    new = not path.is_file()
    clean = {k: (f"{v:.6f}" if isinstance(v, float) and math.isfinite(v) else "" if isinstance(v, float)
                 else " ".join(str(v).split()) if k == "error" else v) for k, v in row.items()}
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(clean)
        handle.flush()
        os.fsync(handle.fileno())


def group_name(row: Mapping) -> str:
    """The summary's key for a row: its modality with one missing (the BraSyn setting), else ``t1c [t1c+t2f]``."""
    pattern = row.get("pattern") or row["modality"]
    return row["modality"] if pattern == row["modality"] else f"{row['modality']} [{pattern}]"


def all_name(row: Mapping) -> str:
    """The pooled key: ``all`` (one missing), ``all [two missing]`` or ``all [one left]``."""
    n = len((row.get("pattern") or row["modality"]).split("+"))
    return {1: "all", 2: "all [two missing]", 3: "all [one left]"}[n]


#: methods whose row is the same for every synthesized sequence of a pattern (the segmentation of the real case, or
#: of the case without the pattern's sequences): each case and pattern counts once in the pooled keys
PER_PATTERN = ("real", "direct")


def first_synthesized(row: Mapping) -> str:
    """The first modality of the row's pattern (``t1c`` of ``t1c+t2f``)."""
    return (row.get("pattern") or row["modality"]).split("+")[0]


def summarize(rows: list[dict]) -> dict:
    """``{modality: {method: {metric: {mean, std, n}}}}`` plus ``all`` over modalities (one missing), and the keys
    of :func:`group_name` and :func:`all_name` for other patterns; NaN/inf and error rows excluded."""
    out: dict = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["method"] in (ERROR, NOTE):
            continue
        groups.setdefault((group_name(row), row["method"]), []).append(row)
        if row["method"] in PER_PATTERN and row["modality"] != first_synthesized(row):
            continue  # the same segmentation for every synthesized sequence of the pattern: pooled once
        groups.setdefault((all_name(row), row["method"]), []).append(row)
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
    singles = [m.value for m in MODALITIES] + ["all"]
    others = sorted(k for k in summary if k not in singles and not k.startswith("all ["))
    for modality in singles + others + sorted(k for k in summary if k.startswith("all [")):
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


def write_reports(rows: list[dict], report_dir: Path, label: str, border: str = "full") -> dict:
    """``summary.json`` and ``report.md`` of ``rows``; ``label``: :func:`weights_label` of what ran; ``border``: which
    torchmetrics variant the organizers' columns follow (``evaluation.organizers``)."""
    summary = summarize(rows)
    write_json_atomic(report_dir / "summary.json", summary)
    pictures = sorted(p.name for p in report_dir.glob("*.png"))
    cases = sorted({r["case"] for r in rows})
    errors = [r for r in rows if r["method"] == ERROR]
    notes = [r for r in rows if r["method"] == NOTE]
    variant = ("torchmetrics 1.4.2 and later: the map averaged over the whole volume" if border == "full" else
               "torchmetrics 1.4.1 and earlier: the map averaged without its 5-voxel border")
    text = [
        "# Dry-run report",
        "",
        f"{label}; {len(cases)} cases: " + ", ".join(cases) + ".",
        "",
        "Every volume is first clipped to its own 0.5-99.5 percentiles (lower bound 0) and scaled to [0, 1], as "
        "the organizers do. **The organizers' figures** (what the BraSyn leaderboard prints): "
        "`ssim_tumor_organizers` = SSIM(synthesized x m, real x m) and `ssim_non_tumor_organizers` = "
        "SSIM(synthesized x (1 - m), real x (1 - m)), m the tumor mask: the images are multiplied by the mask, "
        f"then the SSIM map (torchmetrics' defaults) is averaged over the whole volume ({variant}), so the zeroed "
        "part scores 1 (cases with a segmentation only). **This product's stricter figures** (the unmasked "
        "images' SSIM map, Gaussian window 11, sigma 1.5, averaged inside a region): `ssim` over the whole "
        "volume (background included), `ssim_brain` over truth > 0, `ssim_tumor` / `ssim_healthy` inside / "
        "outside the tumor. PSNR (dB) and MAE over the brain, on the [0, 1] images (the BraTS inpainting "
        "package's `psnr_01` and MAE on those voxels). `seconds`: the pipeline's time per case (model), or the "
        "baseline's. `pattern`: the modalities dropped together; each synthesized one is a row. Methods: "
        "`model` (the weights), `linear` (a per-voxel linear fit of the missing modality from the available ones, "
        "fitted on other cases), `mean`, `copy` (the most correlated available sequence copied in its place) and, "
        "with `--segment`, `real` (no synthesis: the downstream scores on the four real sequences) and `direct` (no "
        "synthesis either: the missing-sequence segmenter on the sequences the pattern leaves; where `direct` beats "
        "`model`, synthesis does not pay for segmentation with this pattern). With "
        "`--segment`: the case completed by each method is segmented and scored against the expert "
        "segmentation (or, without one, the real case's segmentation) by the official BraTS metrics package: "
        "`dice_*` / `hd95_*` (mm) the global Dice and HD95 of WT, TC, ET, `lw_*` the lesion-wise ones. With the "
        "uncertainty map (the model's rows): `unc_spearman`, the Spearman correlation between the map and "
        "|synthesized - real| over the brain, and `unc_top10`, the mean |error| of the 10% most uncertain brain "
        "voxels over that of the other 90% (1: no better than chance), on the [0, 1] images; `_raw`: on the "
        "raw intensities.",
        "",
        "## Mean ± std (n values) per modality and method",
        "",
        markdown_table(summary, [m for m in METRICS if m not in DOWNSTREAM + UNCERTAINTY or _has(rows, m)]),
        "",
    ]
    if _has(rows, "dice_wt"):
        text += ["## Segmentation with each input (mean Dice; gap to the real sequences)", "",
                 downstream_table(rows), ""]
    if errors:
        text += ["## Cases and pairs without scores", ""]
        text += [f"- {r['case']} {r.get('pattern') or ''}: {r.get('error')}" for r in errors] + [""]
    if notes:
        text += ["## Notes on scored cases", ""]
        text += [f"- {r['case']}: {r.get('error')}" for r in notes] + [""]
    text += [
        "## QC pictures",
        "",
        "Rows: axial, coronal, sagittal through the tumor (or the brain's center). Columns: the three "
        "inputs, the synthesized and the real volume (each on its own 0.5-99.5 percentile scale, as the metrics "
        "compare them), their |difference| on those [0, 1] images and, with the map, the uncertainty brought to "
        "the synthesized volume's scale (one color scale: the 99.5th percentile of the brain's |difference|). "
        "With `--segment`, the whole tumor's outline: expert (green), segmented from the real sequences (cyan) "
        "and from the completed case (yellow).",
        "",
    ]
    text += [f"![{name}]({name})\n" for name in pictures]
    write_text_atomic(report_dir / "report.md", "\n".join(text))
    return summary


def downstream_table(rows: list[dict]) -> str:
    """Per pattern and synthesized modality, each method's mean Dice of WT, TC, ET and its gap to ``real``."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in rows:
        if r["method"] not in (ERROR, NOTE) and math.isfinite(r.get("dice_wt", math.nan)):
            groups.setdefault((r.get("pattern") or r["modality"], r["modality"]), {}).setdefault(r["method"], []).append(r)
    lines = ["| pattern | modality | method | Dice WT | Dice TC | Dice ET | mean | gap to real |", "|---|---|---|---|---|---|---|---|"]
    for (pattern, modality), methods in sorted(groups.items(), key=lambda kv: (len(kv[0][0]), kv[0])):
        means = {m: [float(np.nanmean([r[f"dice_{k}"] for r in rs])) for k in ("wt", "tc", "et")] for m, rs in methods.items()}
        real = float(np.nanmean(means["real"])) if "real" in means else math.nan
        for method in sorted(means, key=lambda m: (m != "real", m != "model", m)):
            mean = float(np.nanmean(means[method]))
            gap = "" if method == "real" or not math.isfinite(real) else f"{mean - real:+.4f}"
            lines.append(f"| {pattern} | {modality} | {method} | " + " | ".join(f"{v:.4f}" for v in means[method])
                         + f" | {mean:.4f} | {gap} |")
    return "\n".join(lines)


def _has(rows: list[dict], metric: str) -> bool:
    return any(isinstance(r.get(metric), float) and math.isfinite(r[metric]) for r in rows)
