"""Fit and measure the trust block (linear-prior blend, uncertainty model) of a generator that has neither inside
its graph (a plain HFGAN, an imported model), on its leave-one-case-out folds.

    python -m training.studies.fit_trust --cases DIR --folds FOLDS --out FOLDS/trust [--write MANIFEST]

``FOLDS/fold-<case>/fold.json``: the same recipe trained without ``<case>`` (e.g. ``python -m training.train
--holdout <case> --out FOLDS/fold-<case> --name fold``, or your own model's folds, imported). The default weights
need none of this: their prior and their uncertainty are inside the graph (docs/design.md §5).

1. ``cache``: fold ``FOLDS/fold-<case>/fold.json`` synthesizes its held-out case with each modality dropped,
   view by view (the product's :func:`brasyn_infer.synthesis.generate.generate_views`), plain and flipped (the flip
   test-time augmentation is their mean). The linear prior's coefficients are fitted on the fold's training
   cases only (:mod:`brasyn_infer.synthesis.linear`). Kept in ``OUT/cache`` (resumable).
2. ``measure``: for every held-out pair, the whole-volume, brain and tumor SSIM (:func:`brasyn_infer.evaluation.metrics.score`)
   of the blend ``prior + alpha * (generated - prior)`` for each alpha of a grid (alpha 1: the generator alone,
   the old design; alpha 0: the linear baseline), with and without the flip TTA.
3. Nested leave-one-case-out: for held-out case k, alpha (per modality, highest mean brain SSIM) and the
   uncertainty model (:func:`training.studies.laplace.fit_laplace`) are fitted on the other cases' pairs only, then
   scored on case k: the model's SSIM against the linear baseline's, and how the map ranks the real errors
   (:func:`brasyn_infer.evaluation.ranking.rank_quality`). Tables to ``OUT/trust.md`` and ``OUT/trust.json``.
4. Each fold's manifest gets the trust block fitted without its case (so ``brasyn-infer evaluate --weights
   FOLDS/fold-k/fold.json`` reproduces step 3 through the product); ``--write`` puts the block fitted on all
   folds, with the prior fitted on all cases, into the given manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.evaluation.metrics import score
from brasyn_infer.evaluation.ranking import rank_quality
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import load_manifest
from brasyn_infer.synthesis.generate import flipped, generate_views
from brasyn_infer.synthesis.linear import case_stats, fit
from brasyn_infer.synthesis.normalize import Normalizer, background_mask
from brasyn_infer.synthesis.trust import FEATURES, Trust, blend, features, laplace_scale, linear_prior

from ..data import find_case_folders
from .laplace import fit_laplace

ALPHAS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FIT_VOXELS = 60_000  # brain voxels per pair for the uncertainty fit
SMOOTH = 2


def linear_coefficients(cases: dict[str, dict], normalizer: Normalizer, train: list[str]) -> dict[Modality, np.ndarray]:
    """Per missing modality, the prior fitted on all brain voxels of the ``train`` cases (normalized), as
    ``evaluate --baseline linear`` fits it."""
    stats = {m: [] for m in MODALITIES}
    for c in train:
        x4, _ = normalizer.stack(cases[c]["volumes"], None)
        for m in MODALITIES:
            stats[m].append(case_stats(x4, m, normalizer.fill))
    return {m: fit(stats[m]) for m in MODALITIES}


def cache(args: argparse.Namespace, cases: dict[str, dict]) -> None:
    for fold_dir in sorted(args.folds.glob("fold-*")):
        case_id = fold_dir.name.removeprefix("fold-")
        if case_id not in cases or not (fold_dir / "fold.json").is_file():
            continue
        synth = Synthesizer(fold_dir / "fold.json", device=Device.CPU, threads=args.threads, refine=False)
        norm = synth.normalizer
        train = [c for c in cases if c != case_id]
        coef = None
        for missing in MODALITIES:
            target = args.out / "cache" / f"{case_id}-{missing.value}.npz"
            if target.is_file():
                continue
            coef = coef or linear_coefficients(cases, norm, train)
            t0 = time.perf_counter()
            inputs = {m: v for m, v in cases[case_id]["volumes"].items() if m is not missing}
            x4, scales = norm.stack(inputs, missing)
            plain = generate_views(synth.session, x4, missing, synth.views, synth.batch_size, fill=norm.fill)[1]
            flip = (generate_views(flipped(synth.session), x4, missing, synth.views, synth.batch_size, fill=norm.fill)[1]
                    if args.flip else [])
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savez(target, plain=np.stack(plain), coef=coef[missing], slope=norm.slope(missing, scales),
                     **({"flip": np.stack(flip)} if flip else {}))
            print(f"cached {target.name} ({time.perf_counter() - t0:.0f} s)", flush=True)


class FoldNormalizers:
    """Per held-out case, its fold's :class:`Normalizer` (``norm[case_id]``); ``fill`` and ``stack`` are the
    same for every fold (the reference scales only enter the inverse)."""

    def __init__(self, by_case: dict[str, Normalizer]) -> None:
        self.by_case = by_case
        self.any = next(iter(by_case.values()))
        self.fill = self.any.fill

    def __getitem__(self, case_id: str) -> Normalizer:
        return self.by_case[case_id]

    def stack(self, volumes, missing):
        return self.any.stack(volumes, missing)


def pair_inputs(cases, norm, case_id, missing, path):
    data = np.load(path)
    inputs = {m: v for m, v in cases[case_id]["volumes"].items() if m is not missing}
    x4, scales = norm.stack(inputs, missing)
    background = background_mask(x4, missing, norm.fill)
    prior = linear_prior(x4, missing, data["coef"])
    return data, x4, scales, background, prior


def measure(args: argparse.Namespace, cases: dict[str, dict], norm: Normalizer) -> list[dict]:
    """One record per held-out pair: SSIMs per (tta, alpha), and the uncertainty features and errors."""
    records = []
    for path in sorted((args.out / "cache").glob("*.npz")):
        case_id, mod = path.stem.rsplit("-", 1)
        missing = Modality(mod)
        saved = args.out / "measure" / f"{path.stem}.npz"
        truth = cases[case_id]["volumes"][missing]
        seg = cases[case_id]["seg"]
        if saved.is_file():
            records.append(dict(np.load(saved, allow_pickle=True))["record"].item())
            continue
        t0 = time.perf_counter()
        data, x4, scales, background, prior = pair_inputs(cases, norm, case_id, missing, path)
        record = {"case": case_id, "modality": mod, "slope": float(data["slope"]), "ssim": {}}
        for tta in (False, True) if "flip" in data else (False,):
            members = list(data["plain"]) if not tta else [(a + b) / 2 for a, b in zip(data["plain"], data["flip"], strict=True)]
            generated = np.mean(members, axis=0)
            for alpha in ALPHAS:
                out = norm[case_id].restore(blend(generated, prior, alpha), background, missing, scales)
                record["ssim"][(tta, alpha)] = score(out, truth, seg)
        # uncertainty: features of the plain members, errors for each alpha (the map follows the output)
        members = list(data["plain"])
        generated = np.mean(members, axis=0)
        brain = truth > 0
        rng = np.random.default_rng(1)
        idx = np.flatnonzero(brain)
        record["fit_idx"] = rng.choice(idx, min(FIT_VOXELS, len(idx)), replace=False)
        record["brain_idx"] = idx
        records.append(record)
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, record=np.array(record, dtype=object))
        print(f"measured {path.stem} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return records


def pair_features(cases, norm, record, path, alpha, names):
    missing = Modality(record["modality"])
    data, x4, scales, background, prior = pair_inputs(cases, norm, record["case"], missing, path)
    members = list(data["plain"])
    output = blend(np.mean(members, axis=0), prior, alpha)
    feats = features(members, output, prior, background, norm.fill, names, SMOOTH)
    restored = norm[record["case"]].restore(output.copy(), background, missing, scales)
    truth = cases[record["case"]]["volumes"][missing]
    error = np.abs(restored - truth).reshape(-1) / record["slope"]  # normalized units
    return feats.reshape(len(names), -1), error


def spread_quality(cases, norm, record, path) -> dict[str, float]:
    """How the uncalibrated map (what weights without ``trust.uncertainty`` write: the standard deviation of the
    views, unsmoothed, output units) ranks the generator-alone output's errors over the brain."""
    missing = Modality(record["modality"])
    data, x4, scales, background, prior = pair_inputs(cases, norm, record["case"], missing, path)
    fold = norm[record["case"]]
    output = fold.restore(np.mean(data["plain"], axis=0), background, missing, scales)
    spread = np.std(data["plain"], axis=0) * np.float32(fold.slope(missing, scales))
    spread[background] = 0  # as the product writes it
    truth = cases[record["case"]]["volumes"][missing]
    brain = truth > 0
    return rank_quality(spread[brain], np.abs(output[brain] - truth[brain]))


def choose_alpha(records: list[dict], modality: str, tta: bool = False) -> float:
    """The grid's alpha with the highest mean brain SSIM over ``records`` of ``modality``."""
    chosen = [r for r in records if r["modality"] == modality]
    return max(ALPHAS, key=lambda a: (np.mean([r["ssim"][(tta, a)]["ssim_brain"] for r in chosen]), a))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--folds", type=Path, required=True, help="FOLDS/fold-<case>/fold.json: one model per held-out case")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    p.add_argument("--write", type=Path, default=None, help="a manifest to receive the trust block fitted on all folds")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="cache without the flipped pass (no TTA "
                   "figures for those pairs; half the time)")
    p.add_argument("--spread-only", action="store_true", help="only score the uncalibrated map (the views' spread) "
                   "on the cached held-out outputs, and stop")
    p.add_argument("--no-blend", action="store_true", help="no linear-prior blend (alpha 1: the generator alone); the "
                   "uncertainty model is fitted to the generator's own errors")
    args = p.parse_args(argv)

    cases = {}
    for folder in find_case_folders(args.cases):
        files = complete_case(folder)
        cases[files.case_id] = {"volumes": {m: v.data for m, v in read_inputs(files.modalities).items()},
                                "seg": load_volume(files.seg).data if files.seg is not None else None}
    cache(args, cases)
    # each held-out case is restored by its own fold's normalizer (its reference scales: the output's units)
    norms = {p.parent.name.removeprefix("fold-"): Normalizer.from_manifest(load_manifest(p).normalization)
             for p in sorted(args.folds.glob("fold-*/fold.json"))}
    norm = FoldNormalizers(norms)
    records = measure(args, cases, norm)
    if args.spread_only:
        quality = []
        for r in records:
            q = spread_quality(cases, norm, r, args.out / "cache" / f"{r['case']}-{r['modality']}.npz")
            quality.append(q)
            print(f"{r['case']} {r['modality']}: views' spread top-10% {q['unc_top10']:.2f} "
                  f"Spearman {q['unc_spearman']:.3f}", flush=True)
        print(f"mean: top-10% {np.mean([q['unc_top10'] for q in quality]):.3f}, "
              f"Spearman {np.mean([q['unc_spearman'] for q in quality]):.3f}")
        for m in MODALITIES:
            chosen = [q for q, r in zip(quality, records, strict=True) if r["modality"] == m.value]
            print(f"{m.value}: top-10% {np.mean([q['unc_top10'] for q in chosen]):.3f}")
        return
    names = tuple(args.features)
    held = sorted({r["case"] for r in records})
    results = []
    fold_trust: dict[str, dict] = {}
    for k in held:
        train = [r for r in records if r["case"] != k]
        alphas = {m.value: 1.0 if args.no_blend else choose_alpha(train, m.value) for m in MODALITIES}
        weights = {}
        for m in MODALITIES:
            feats, errs = [], []
            for r in train:
                if r["modality"] != m.value:
                    continue
                f, e = pair_features(cases, norm, r, args.out / "cache" / f"{r['case']}-{r['modality']}.npz",
                                     alphas[m.value], names)
                feats.append(f[:, r["fit_idx"]])
                errs.append(e[r["fit_idx"]])
            weights[m.value] = fit_laplace(np.concatenate(feats, axis=1), np.concatenate(errs))
        fold_trust[k] = {"blend": alphas, "uncertainty": weights}
        for r in records:
            if r["case"] != k:
                continue
            a = alphas[r["modality"]]
            f, e = pair_features(cases, norm, r, args.out / "cache" / f"{k}-{r['modality']}.npz", a, names)
            b = laplace_scale(f[:, r["brain_idx"]].reshape(len(names), -1, 1, 1), weights[r["modality"]]).reshape(-1)
            quality = rank_quality(b, e[r["brain_idx"]])
            singles = {}
            for i, name in enumerate(names):  # each feature alone, for the model card
                singles[name] = rank_quality(f[i, r["brain_idx"]], e[r["brain_idx"]])["unc_top10"]
            results.append({"case": k, "modality": r["modality"], "alpha": a,
                            "old": r["ssim"][(False, 1.0)], "new": r["ssim"][(False, a)],
                            "linear": r["ssim"][(False, 0.0)], "old_tta": r["ssim"].get((True, 1.0)),
                            "new_tta": r["ssim"].get((True, a)), **quality, "single_top10": singles,
                            "calibration": float(np.mean(e[r["brain_idx"]]) / np.mean(b))})
            print(f"{k} {r['modality']}: alpha {a}, brain SSIM old {results[-1]['old']['ssim_brain']:.4f} "
                  f"new {results[-1]['new']['ssim_brain']:.4f} linear {results[-1]['linear']['ssim_brain']:.4f}; "
                  f"map top10 {quality['unc_top10']:.2f} spearman {quality['unc_spearman']:.3f}", flush=True)
    suffix = "-no-blend" if args.no_blend else ""
    (args.out / f"trust{suffix}.json").write_text(json.dumps({"features": names, "results": results, "folds": {
        k: {"blend": v["blend"], "uncertainty": {m: list(map(float, w)) for m, w in v["uncertainty"].items()}}
        for k, v in fold_trust.items()}}, indent=1, default=float) + "\n")
    (args.out / f"trust{suffix}.md").write_text(tables(results) + "\n")
    print(tables(results))

    for k, v in fold_trust.items():  # each fold's manifest: the block fitted without its case
        path = args.folds / f"fold-{k}" / "fold.json"
        coef = linear_coefficients(cases, norm, [c for c in cases if c != k])
        trust = Trust(coef, {} if args.no_blend else {Modality(m): a for m, a in v["blend"].items()}, names,
                      {Modality(m): w for m, w in v["uncertainty"].items()}, SMOOTH)
        manifest = json.loads(path.read_text())
        manifest["trust"] = trust.to_json()
        write_json_atomic(path, manifest)
    if args.write:
        alphas = {m.value: 1.0 if args.no_blend else choose_alpha(records, m.value) for m in MODALITIES}
        weights = {}
        for m in MODALITIES:
            feats, errs = [], []
            for r in records:
                if r["modality"] == m.value:
                    f, e = pair_features(cases, norm, r, args.out / "cache" / f"{r['case']}-{r['modality']}.npz",
                                         alphas[m.value], names)
                    feats.append(f[:, r["fit_idx"]])
                    errs.append(e[r["fit_idx"]])
            weights[m] = fit_laplace(np.concatenate(feats, axis=1), np.concatenate(errs))
        target_norm = Normalizer.from_manifest(load_manifest(args.write).normalization)
        trust = Trust(linear_coefficients(cases, target_norm, list(cases)),
                      {} if args.no_blend else {Modality(m): a for m, a in alphas.items()}, names, weights, SMOOTH)
        manifest = json.loads(args.write.read_text())
        manifest["trust"] = {**trust.to_json(), "fitted": {
            "folds": str(args.folds), "cases": list(cases), "by": "python -m training.studies.fit_trust",
            "note": "blend and uncertainty fitted on the folds' out-of-fold outputs; the prior on all cases"}}
        write_json_atomic(args.write, manifest)
        print(f"wrote the trust block into {args.write}")


def tables(results: list[dict]) -> str:
    lines = ["| fold | missing | alpha | old brain | new brain | linear brain | new - linear | old tumor | new tumor | "
             "linear tumor | map top-10% | map Spearman |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["case"], r["modality"])):
        t = [r[k]["ssim_tumor"] for k in ("old", "new", "linear")]
        lines.append(f"| {r['case']} | {r['modality']} | {r['alpha']:.1f} | {r['old']['ssim_brain']:.4f} | "
                     f"{r['new']['ssim_brain']:.4f} | {r['linear']['ssim_brain']:.4f} | "
                     f"{r['new']['ssim_brain'] - r['linear']['ssim_brain']:+.4f} | "
                     + " | ".join("–" if math.isnan(v) else f"{v:.4f}" for v in t)
                     + f" | {r['unc_top10']:.2f} | {r['unc_spearman']:.3f} |")
    lines += ["", "| modality | method | ssim | ssim_brain | ssim_tumor | map top-10% | map Spearman |", "|---|---|---|---|---|---|---|"]
    for mod in [m.value for m in MODALITIES] + ["all"]:
        chosen = [r for r in results if mod in ("all", r["modality"])]
        for method in ("old", "new", "linear", "old_tta", "new_tta"):
            paired = [r for r in chosen if r["old_tta"] is not None]  # TTA figures: the pairs cached with flips
            members = chosen if method in ("old", "new", "linear") else paired

            def mean(metric, method=method, members=members):
                v = [r[method][metric] for r in members if not math.isnan(r[method][metric])]
                return f"{np.mean(v):.4f}" if v else "–"
            extra = (f"{np.mean([r['unc_top10'] for r in chosen]):.2f} | {np.mean([r['unc_spearman'] for r in chosen]):.3f}"
                     if method == "new" else " | ")
            label = method if method in ("old", "new", "linear") else f"{method} (n={len(paired)})"
            lines.append(f"| {mod} | {label} | {mean('ssim')} | {mean('ssim_brain')} | {mean('ssim_tumor')} | {extra} |")
        if paired:  # the same pairs without TTA, for a fair difference
            for method in ("old", "new"):
                v = [r[method]["ssim_brain"] for r in paired]
                lines.append(f"| {mod} | {method} on those n | | {np.mean(v):.4f} | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
