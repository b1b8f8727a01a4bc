"""What changes made after the network would do to the validation model's outputs, on the validation cases.

    python -m training.studies.posthoc_study --cases ../shared/data/cases ../shared/data/brats2018 \\
        --weights runs/train/val/val.json --volumes runs/train/validation/volumes \\
        [--also runs/train-g/validation/volumes] --out runs/train/posthoc [--jobs 2]

``VOLUMES`` holds the validation model's outputs, as ``brasyn-infer evaluate --save-volumes`` writes them
(``<case>/<case>-<modality>.nii.gz``; ``make validate`` keeps them). For every one of them, the brain SSIM
(:func:`brasyn_infer.evaluation.metrics.score`'s ``ssim_brain``) of:

- ``linear``: the per-voxel linear fit on the model's training cases (the manifest's ``training.data.train``), which
  is the fit ``evaluate --baseline linear --fit-on training`` makes and the prior the default's graph adds its
  residual to;
- ``blend A``: ``linear + A * (output - linear)`` for each ``--alpha`` (1: the output itself), the fitted blend
  that a model with no prior of its own could ship (:func:`brasyn_infer.synthesis.trust.blend`). Per modality,
  the report names the largest ``A`` at which no pair of that modality falls below ``--floor`` against ``linear``
  (:func:`chosen_blend`): the blend ``training.export_checkpoint --blend`` ships;
- ``smooth S``: the output smoothed by a Gaussian of ``S`` voxels inside its own foreground, for each ``--sigma``;
- ``mean of two``: with ``--also``, the mean of this output and another model's output for the same pair, each
  divided by its brain's 99th percentile first;
- ``tone`` (with ``--tone``): the output taken through the tone correction fitted on these outputs
  (:func:`training.studies.fit_tone.fit_tone`, what ``training.studies.fit_tone`` ships), and ``tone (leave-one-case-out)``: each
  output through the correction fitted on the other cases' outputs only, the honest estimate of what it does to an
  unseen case;
- ``tone matched (oracle)``: the output's foreground values replaced, rank for rank, by the real modality's brain
  values (:func:`tone_matched`). It reads the real modality, so it is a diagnostic and never a candidate: how much
  brain SSIM a perfect correction of the output's tone (its intensity histogram) would add, with every voxel's
  rank, hence the structure, unchanged.

It also scores ``|output - linear|``, where the network departs from the regression, as an uncertainty map
(:func:`brasyn_infer.evaluation.ranking.map_quality`), and, where ``evaluate --save-volumes`` kept the model's own
map beside an output (``<case>-<modality>-uncertainty.nii.gz``), how that map ranks the errors of the output and of
each tone variant. ``OUT/posthoc.csv`` has one row per pair and ``OUT/posthoc.md``
the gains over ``linear``: their mean, the worst pair and each modality's mean, the figures the targets are set on.
The linear statistics of the training cases are kept in ``OUT/linear-stats`` (evaluate's format).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.evaluation.baselines import baseline_output, predict_linear
from brasyn_infer.evaluation.dry_run import StatsCache
from brasyn_infer.evaluation.metrics import Scaled, score
from brasyn_infer.evaluation.ranking import MapErrors, map_quality
from brasyn_infer.io.atomic import write_text_atomic
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.runtime.manifest import load_manifest
from brasyn_infer.synthesis.linear import case_stats, fit
from brasyn_infer.synthesis.normalize import Normalizer, foreground_percentile
from brasyn_infer.synthesis.tone import Tone
from brasyn_infer.synthesis.trust import blend

from ..data import SavedOutput, find_case_folders, saved_outputs
from .fit_tone import fit_tone, tones_of

LINEAR = "linear"
ORACLE = "tone matched (oracle)"
TONE, TONE_LOO = "tone", "tone (leave-one-case-out)"
#: the model's own map's columns: "own map <metric>: <variant>"
OWN_MAP = "own map"
#: tumor SSIM columns ("tumor SSIM <variant>", from the case's segmentation) for these variants
TUMOR = "tumor SSIM"
TUMOR_SCORED = (LINEAR, "blend 1", TONE, TONE_LOO)


def smooth_inside(volume: np.ndarray, sigma: float) -> np.ndarray:
    """``volume`` ``(X, Y, Z)`` smoothed by a Gaussian of ``sigma`` voxels over its foreground only (normalized
    convolution: the background's zeros do not darken the edge), 0 where it was 0."""
    from scipy.ndimage import gaussian_filter

    inside = volume > 0
    weight = gaussian_filter(inside.astype(np.float32), sigma)
    smoothed = gaussian_filter(np.where(inside, volume, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    return np.where(inside, smoothed, np.float32(0)).astype(np.float32)


def mean_of_two(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean of two syntheses of one volume, each over its own foreground's 99th percentile (their intensity
    scales are arbitrary); 0 where both are 0."""
    def unit(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float32) / np.float32(foreground_percentile(v, 99) or 1.0)

    return (unit(a) + unit(b)) / np.float32(2)


def tone_matched(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Diagnostic: ``output`` ``(X, Y, Z)`` with its foreground (``> 0``) values replaced, rank for rank, by the
    quantiles of ``truth``'s (``> 0``): the output's structure with the real modality's intensity histogram; 0
    elsewhere. float32, in ``truth``'s units."""
    inside = output > 0
    values = output[inside]
    reference = np.sort(truth[truth > 0]).astype(np.float32)
    matched = np.zeros(output.shape, np.float32)
    if values.size and reference.size:
        ranks = np.empty(values.size, np.int64)
        ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
        matched[inside] = reference[np.round(ranks * ((reference.size - 1) / max(values.size - 1, 1))).astype(np.int64)]
    return matched


def variants(output: np.ndarray, prior: np.ndarray, alphas: Sequence[float], sigmas: Sequence[float],
             other: np.ndarray | None, truth: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every candidate volume for one pair, by the name the report gives it (with ``truth``, the oracle too)."""
    out = {LINEAR: prior}
    out.update({f"blend {a:g}": blend(output, prior, a) for a in alphas})
    out.update({f"smooth {s:g}": smooth_inside(output, s) for s in sigmas})
    if other is not None:
        out["mean of two"] = mean_of_two(output, other)
    if truth is not None:
        out[ORACLE] = tone_matched(output, truth)
    return out


@dataclass(frozen=True)
class Pair:
    saved: SavedOutput
    #: ``--also``: another model's output for the same pair
    other: Path | None
    coef: np.ndarray
    #: ``--tone``: the correction fitted on the other cases' outputs
    tone_loo: Tone | None = None


@dataclass(frozen=True)
class Settings:
    normalization: Mapping
    alphas: tuple[float, ...]
    sigmas: tuple[float, ...]
    #: ``--tone``: the correction fitted on every output
    tone: Tone | None = None


def score_pair(pair: Pair, settings: Settings) -> dict:
    """One pair's row: each variant's brain SSIM, and how ``|output - linear|`` ranks the output's errors."""
    norm = Normalizer.from_manifest(settings.normalization)
    saved = pair.saved
    files = complete_case(saved.folder)
    volumes = {m: v.data for m, v in read_inputs(files.modalities).items()}
    inputs = {m: v for m, v in volumes.items() if m is not saved.missing}
    prior = baseline_output(norm, inputs, saved.missing, partial(predict_linear, missing=saved.missing, coef=pair.coef))
    output = load_volume(saved.path).data
    other = load_volume(pair.other).data if pair.other is not None else None
    truth = Scaled.of(volumes[saved.missing])
    row: dict = {"case": saved.case_id, "modality": saved.missing.value}
    candidates = variants(output, prior, settings.alphas, settings.sigmas, other, truth.raw)
    if settings.tone is not None and pair.tone_loo is not None:
        candidates[TONE] = settings.tone.apply(output, saved.missing)
        candidates[TONE_LOO] = pair.tone_loo.apply(output, saved.missing)
    seg = load_volume(files.seg).data if files.seg is not None else None
    for name, volume in candidates.items():
        scores = score(volume, truth, seg if name in TUMOR_SCORED else None)
        row[name] = scores["ssim_brain"]
        if name in TUMOR_SCORED:
            row[f"{TUMOR} {name}"] = scores["ssim_tumor"]
    quality = map_quality(np.abs(output - prior), MapErrors.of(output, truth))
    row["map unc_spearman"], row["map unc_top10"] = quality["unc_spearman"], quality["unc_top10"]
    if saved.uncertainty.is_file():
        uncertainty = load_volume(saved.uncertainty).data
        for name in ("output", TONE, TONE_LOO):
            volume = output if name == "output" else candidates.get(name)
            if volume is not None:
                quality = map_quality(uncertainty, MapErrors.of(volume, truth))
                row[f"{OWN_MAP} unc_spearman: {name}"] = quality["unc_spearman"]
                row[f"{OWN_MAP} unc_top10: {name}"] = quality["unc_top10"]
    return row


def own_map_table(rows: list[dict]) -> str:
    """Markdown: how the model's own map ranks the errors of the output and of each tone variant (pair means),
    and the t1c tumor SSIM of the variants that have it (the pairs with a segmentation)."""
    names = [k.split(": ", 1)[1] for k in rows[0] if k.startswith(f"{OWN_MAP} unc_spearman: ")]
    lines = []
    if names:
        lines += ["| the model's own map, on the errors of | unc_spearman | unc_top10 |", "|---|---|---|"]
        for name in names:
            spearman = np.nanmean([r[f"{OWN_MAP} unc_spearman: {name}"] for r in rows])
            top = np.nanmean([r[f"{OWN_MAP} unc_top10: {name}"] for r in rows])
            lines.append(f"| {name} | {spearman:.3f} | {top:.2f} |")
        lines.append("")
    t1c = [r for r in rows if r["modality"] == "t1c" and not math.isnan(r.get(f"{TUMOR} {LINEAR}", math.nan))]
    if t1c:
        tumor = [k for k in rows[0] if k.startswith(TUMOR)]
        lines.append(f"t1c tumor SSIM (mean over {len(t1c)} pairs with a segmentation): "
                     + ", ".join(f"{k[len(TUMOR) + 1:]} {np.mean([r[k] for r in t1c]):.3f}" for k in tumor))
    return "\n".join(lines) + "\n"


def gains_table(rows: list[dict]) -> str:
    """Markdown: per variant, the brain-SSIM gain over ``linear``: mean, worst pair (named) and per modality."""
    names = [k for k in rows[0] if k not in ("case", "modality", LINEAR) and not k.startswith(("map ", OWN_MAP, TUMOR))]
    mods = [m.value for m in MODALITIES if any(r["modality"] == m.value for r in rows)]
    lines = [f"| variant | mean gain | worst pair | {' | '.join(mods)} |", "|---|---|---|" + "---|" * len(mods)]
    for name in names:
        gain = [(r[name] - r[LINEAR], r) for r in rows]
        worst, at = min(gain, key=lambda g: g[0])
        per = [np.mean([g for g, r in gain if r["modality"] == m]) for m in mods]
        lines.append(f"| {name} | {np.mean([g for g, _ in gain]):+.4f} | {worst:+.4f} ({at['case']} {at['modality']}) | "
                     + " | ".join(f"{p:+.4f}" for p in per) + " |")
    spearman = [r["map unc_spearman"] for r in rows if not math.isnan(r["map unc_spearman"])]
    top = [r["map unc_top10"] for r in rows if not math.isnan(r["map unc_top10"])]
    lines.append("")
    if any(ORACLE in r for r in rows):
        lines.append(f"`{ORACLE}` reads the real modality: a diagnostic (how much of the gap is the output's tone), "
                     "not a candidate.")
        lines.append("")
    lines.append(f"|output - linear| as a map: unc_spearman {np.mean(spearman):.3f}, unc_top10 {np.mean(top):.2f} "
                 f"(mean over {len(spearman)} pairs)")
    return "\n".join(lines) + "\n"


def chosen_blend(rows: list[dict], alphas: Sequence[float], floor: float = -0.02) -> dict[str, float | None]:
    """Per modality, the largest of ``alphas`` at which every pair of that modality keeps a brain-SSIM gain over
    ``linear`` of at least ``floor`` (None where no alpha does): the blend ``training.export_checkpoint --blend``
    ships, chosen on these held-out pairs. 1 means no blend."""
    chosen: dict[str, float | None] = {}
    for m in [m.value for m in MODALITIES if any(r["modality"] == m.value for r in rows)]:
        ok = [a for a in alphas if min(r[f"blend {a:g}"] - r[LINEAR] for r in rows if r["modality"] == m) >= floor]
        chosen[m] = max(ok) if ok else None
    return chosen


def blend_line(chosen: Mapping[str, float | None], floor: float) -> str:
    """The report's line on :func:`chosen_blend`, with the export arguments it gives."""
    args = " ".join(f"--blend {m}={a:g}" for m, a in chosen.items() if a is not None and a < 1)
    parts = ", ".join(f"{m} {a:g}" if a is not None else f"{m} none of the alphas" for m, a in chosen.items())
    return (f"Blend per modality (the largest alpha at which every pair of the modality gains at least {floor:+g} "
            f"brain SSIM over the linear fit): {parts}. Export arguments: `{args or '(none)'}`")


def linear_fits(training: list[Path], normalization: Mapping, stats: StatsCache) -> dict[Modality, np.ndarray]:
    """Per modality, the linear fit on the ``training`` case folders (their statistics kept in ``stats``)."""
    norm = Normalizer.from_manifest(normalization)
    ids: set[str] = set()
    for folder in training:
        files = complete_case(folder)
        ids.add(files.case_id)
        if not stats.load(files.case_id, list(MODALITIES)):
            x4, _ = norm.stack({m: v.data for m, v in read_inputs(files.modalities).items()}, None)
            stats.store(files.case_id, {m: case_stats(x4, m, norm.fill) for m in MODALITIES})
            print(f"linear statistics: {files.case_id}", flush=True)
    return {m: fit(stats.table.cases[c][m] for c in sorted(ids)) for m in MODALITIES}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--weights", type=Path, required=True, help="the validation model's manifest (its training cases)")
    p.add_argument("--volumes", type=Path, required=True, help="its outputs: evaluate --save-volumes DIR")
    p.add_argument("--also", type=Path, default=None, help="another model's outputs for the same pairs (mean of two)")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    p.add_argument("--sigma", type=float, nargs="*", default=[0.6])
    p.add_argument("--floor", type=float, default=-0.02,
                   help="the least brain-SSIM gain over the linear fit any pair may have at the chosen blend")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1, help="pairs scored at once (one process each)")
    p.add_argument("--tone", action="store_true", help="also score the tone correction fitted on these outputs, "
                   "and fitted leave-one-case-out")
    args = p.parse_args(argv)
    manifest = load_manifest(args.weights)
    trained = manifest.training.get("data", {}).get("train", [])
    if not trained:
        raise SystemExit(f"{args.weights}: the manifest records no training cases (training.data.train)")
    folders = {f.name: f for f in find_case_folders(args.cases)}
    absent = sorted(set(trained) - set(folders))
    if absent:
        raise SystemExit(f"training cases not found under --cases: {', '.join(absent)}")
    scored = sorted(d.name for d in args.volumes.iterdir() if d.is_dir())
    if set(scored) & set(trained):
        raise SystemExit(f"the model was trained on {', '.join(sorted(set(scored) & set(trained)))}: not held out")
    args.out.mkdir(parents=True, exist_ok=True)
    fits = linear_fits([folders[c] for c in trained], manifest.normalization, StatsCache(args.out / "linear-stats"))
    outputs = saved_outputs(args.volumes, folders)
    pairs = []
    for saved in outputs:
        other = args.also / saved.case_id / saved.path.name if args.also is not None else None
        if other is not None and not other.is_file():
            raise SystemExit(f"{other}: missing (--also must hold the same pairs)")
        pairs.append(Pair(saved, other, fits[saved.missing]))
    tone = None
    if args.tone:
        tones = tones_of(outputs)
        tone = fit_tone(tones)
        pairs = [replace(p, tone_loo=fit_tone(tones, leave_out=p.saved.case_id)) for p in pairs]
    settings = Settings(manifest.normalization, tuple(args.alpha), tuple(args.sigma), tone)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = []
        for row in pool.map(score_pair, pairs, [settings] * len(pairs)):
            rows.append(row)
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(args.out / "posthoc.csv", text.getvalue())
    report = (gains_table(rows) + "\n" + blend_line(chosen_blend(rows, args.alpha, args.floor), args.floor) + "\n\n"
              + own_map_table(rows))
    write_text_atomic(args.out / "posthoc.md", report)
    print(report)


if __name__ == "__main__":
    main()
