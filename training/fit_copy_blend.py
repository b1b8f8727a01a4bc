"""Fit the companion's blend toward the stand-in on held-out outputs, and write it into manifests.

    python -m training.fit_copy_blend --cases ../shared/data/cases ../shared/data/brats2018 ../shared/data/brats2021 \\
        --volumes runs/any/volumes --weights runs/any/val/val-any-1v.json --report runs/any/val/copy-blend.json \\
        --write runs/any/val/val-any-1v-blend.json
    python -m training.fit_copy_blend --apply runs/any/val/copy-blend.json --write weights/default-any.json

``VOLUMES`` holds the validation model's outputs on its held-out cases with two or three sequences dropped, as
``brasyn-infer evaluate --drop pairs,singles --save-volumes VOLUMES`` writes them
(``<case>/<pattern>/<case>-<modality>.nii.gz``, made with no ``copy_blend`` in the manifest). For each saved output
the stand-in (:mod:`brasyn_infer.synthesis.stand_in`) is made from the case's real inputs exactly as the pipeline
makes it, and the blend ``(1 - w) * output + w * stand_in`` is scored (brain SSIM on the organizers' [0, 1] images,
:func:`brasyn_infer.evaluation.metrics.ssim_brain`) for each ``w`` of a grid. Per pattern and synthesized
sequence the weight with the best mean over the cases is found (ties: the smaller weight), and the report also
gives, per case, the score at the weight chosen on the OTHER cases (leave one case out): the honest estimate of what
the blend does on unseen cases, since the same cases choose and score the in-sample weight. The weight is kept only
where that estimate beats the synthesis alone; else 0 (one case pulled it up).

The weights are the validation model's; the shipped companion (the final model, trained on every case) takes them
too (``make ship-any``), as the default's tone curve and uncertainty settings are fitted: on held-out outputs of
the validation model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import CaseError
from brasyn_infer.evaluation.metrics import Scaled, ssim_brain
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.io.cases import complete_case, scan_folder
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.runtime.manifest import PATTERNS_ANY, load_manifest, write_manifest
from brasyn_infer.synthesis.normalize import Normalizer, background_mask
from brasyn_infer.synthesis.stand_in import blend_toward, pattern_label, stand_in_volume

from .data import find_case_folders

#: the weights tried: 0 (the synthesis alone) to 1 (the stand-in alone)
GRID = tuple(round(0.1 * k, 1) for k in range(11))


@dataclass(frozen=True)
class Scores:
    """One held-out output's brain SSIM at each weight of ``grid``."""

    case_id: str
    pattern: str
    target: Modality
    grid: tuple[float, ...]
    ssim: tuple[float, ...]


def stand_in_of(normalizer: Normalizer, inputs: Mapping[Modality, np.ndarray], target: Modality,
                absent: Sequence[Modality]) -> np.ndarray:
    """The stand-in for ``target`` as the pipeline makes it (``Synthesizer.synthesize_stages``: the same input,
    background and :func:`~brasyn_infer.synthesis.stand_in.stand_in_volume`). ``inputs``: the case's available
    ``(X, Y, Z)`` volumes; ``absent``: the other missing ones."""
    x4, scales = normalizer.stack(inputs, target)
    return stand_in_volume(normalizer, x4, background_mask(x4, target, normalizer.fill, absent), target, inputs, scales)


def score_grid(output: np.ndarray, stand_in: np.ndarray, truth: np.ndarray | Scaled,
               grid: Sequence[float] = GRID) -> tuple[float, ...]:
    """Brain SSIM of ``(1 - w) * output + w * stand_in`` against ``truth`` for each ``w``."""
    truth = Scaled.of(truth)
    return tuple(ssim_brain(blend_toward(output, stand_in, w), truth) for w in grid)


def best_weight(scores: Sequence[Scores], leave_out: str | None = None) -> float:
    """The weight of the grid with the best mean SSIM over ``scores`` (one pattern and target), without case
    ``leave_out``; ties go to the smaller weight."""
    kept = [s for s in scores if s.case_id != leave_out]
    means = np.mean([s.ssim for s in kept], axis=0)
    return float(kept[0].grid[int(np.argmax(means))])


def fit(scores: Sequence[Scores]) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """The ``copy_blend`` block (weights > 0 only) and a summary row per pattern and target: the mean SSIM of the
    synthesis alone (w = 0), the stand-in alone (w = 1), the best weight in sample (``best``), and that choice
    made leaving each case out (``leave_one_out``). A weight is kept only where leaving each case out also beats
    the synthesis alone: where one case alone pulls the best weight above 0, the others do not gain from it, and
    the weight is 0 (``weight``; ``fitted``: the mean SSIM at it)."""
    block: dict[str, dict[str, float]] = {}
    rows = []
    keys = sorted({(s.pattern, s.target) for s in scores}, key=lambda k: (len(k[0]), k[0], k[1].index))
    for pattern, target in keys:
        mine = [s for s in scores if s.pattern == pattern and s.target is target]
        grid = mine[0].grid
        best = best_weight(mine)
        alone = float(np.mean([s.ssim[0] for s in mine]))
        others = [best_weight(mine, s.case_id) for s in mine] if len(mine) > 1 else []
        loco = [s.ssim[grid.index(w)] for s, w in zip(mine, others, strict=True)]
        held = float(np.mean(loco)) if loco else None
        w = best if best > 0 and (held is None or held > alone) else 0.0
        if w > 0:
            block.setdefault(pattern, {})[target.value] = w
        rows.append({"pattern": pattern, "target": target.value, "n": len(mine), "weight": w, "best": best,
                     "synthesis": alone, "stand_in": float(np.mean([s.ssim[-1] for s in mine])),
                     "fitted": float(np.mean([s.ssim[grid.index(w)] for s in mine])),
                     "best_in_sample": float(np.mean([s.ssim[grid.index(best)] for s in mine])),
                     "leave_one_out": held,
                     "leave_one_out_weights": others})
    return block, rows


def saved_patterns(volumes: Path) -> list[tuple[str, str, Modality, Path]]:
    """``(case_id, pattern, target, path)`` of every output under ``VOLUMES/<case>/<pattern>/`` (two or three
    missing); exits naming ``volumes`` when there is none."""
    found = []
    for case_dir in sorted(d for d in volumes.iterdir() if d.is_dir()):
        for pattern_dir in sorted(d for d in case_dir.iterdir() if d.is_dir() and "+" in d.name):
            for m in MODALITIES:
                path = pattern_dir / f"{case_dir.name}-{m.value}.nii.gz"
                if path.is_file():
                    found.append((case_dir.name, pattern_dir.name, m, path))
    if not found:
        raise SystemExit(f"{volumes}: no <case>/<pattern>/<case>-<modality>.nii.gz outputs "
                         "(evaluate --drop pairs,singles --save-volumes DIR)")
    return found


def cases_by_id(folders: Sequence[Path]) -> dict[str, Path]:
    """Case folders keyed by their case ID (the files' prefix, as ``--save-volumes`` names the outputs), not by the
    folder's name; a folder that is no case is left out."""
    found = {}
    for folder in folders:
        try:
            found[scan_folder(folder).case_id] = folder
        except CaseError:
            continue
    return found


def score_saved(volumes: Path, roots: list[Path], normalizer: Normalizer, grid: Sequence[float] = GRID,
                jobs: int = 1) -> list[Scores]:
    """:class:`Scores` of every saved output, each case's real volumes read once; ``jobs`` cases at a time."""
    folders = cases_by_id(find_case_folders(roots))
    by_case: dict[str, list[tuple[str, Modality, Path]]] = {}
    for case_id, pattern, target, path in saved_patterns(volumes):
        if case_id not in folders:
            raise SystemExit(f"{volumes / case_id}: no case with ID {case_id} under --cases")
        by_case.setdefault(case_id, []).append((pattern, target, path))
    work = [(case_id, folders[case_id], outputs, normalizer, tuple(grid)) for case_id, outputs in by_case.items()]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            done = list(pool.map(_score_case, work))
    else:
        done = [_score_case(item) for item in work]
    return [s for scores in done for s in scores]


def _score_case(item: tuple[str, Path, list[tuple[str, Modality, Path]], Normalizer, tuple[float, ...]]) -> list[Scores]:
    """One case's :class:`Scores` (a worker of :func:`score_saved`)."""
    case_id, folder, outputs, normalizer, grid = item
    real = {m: load_volume(p).data for m, p in complete_case(folder).modalities.items()}
    scores = []
    for pattern, target, path in outputs:
        dropped = [Modality(p) for p in pattern.split("+")]
        if pattern_label(dropped) != pattern or target not in dropped:
            raise SystemExit(f"{path}: {pattern!r} is no pattern that synthesizes {target.value}")
        inputs = {m: v for m, v in real.items() if m not in dropped}
        stand_in = stand_in_of(normalizer, inputs, target, [m for m in dropped if m is not target])
        ssim = score_grid(load_volume(path).data, stand_in, real[target], grid)
        scores.append(Scores(case_id, pattern, target, grid, ssim))
        print(f"copy blend: {case_id} {pattern} {target.value}: " + " ".join(f"{v:.3f}" for v in ssim), flush=True)
    return scores


def table(rows: Sequence[dict]) -> str:
    """The summary rows as a Markdown table."""
    lines = ["| missing | synthesized | n | synthesis (w=0) | stand-in (w=1) | best w | in sample | leave one case out "
             "| kept w | at kept w |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loco = f"{r['leave_one_out']:.4f}" if r["leave_one_out"] is not None else "-"
        lines.append(f"| {r['pattern']} | {r['target']} | {r['n']} | {r['synthesis']:.4f} | {r['stand_in']:.4f} | "
                     f"{r['best']:g} | {r['best_in_sample']:.4f} | {loco} | {r['weight']:g} | {r['fitted']:.4f} |")
    return "\n".join(lines)


def write_block(block: Mapping[str, Mapping[str, float]], manifests: Sequence[Path], like: Path | None = None) -> None:
    """Put ``block`` into each manifest (``patterns: any`` weights); a manifest path that does not exist is made
    from ``like`` (the fitted weights' manifest: the same ONNX file, beside it)."""
    for path in manifests:
        if not path.is_file():
            if like is None:
                raise SystemExit(f"{path}: no such manifest")
            base = load_manifest(like)
            if path.resolve().parent != base.path.resolve().parent:
                raise SystemExit(f"{path}: a new manifest goes beside {base.path} (it names the same ONNX file)")
            manifest = replace(base, path=path, name=path.name.removesuffix(".json"))
        else:
            manifest = load_manifest(path)
        if manifest.patterns != PATTERNS_ANY:
            raise SystemExit(f"{path}: the blend toward the stand-in is for weights with \"patterns\": \"any\"")
        write_manifest(replace(manifest, copy_blend={p: dict(w) for p, w in block.items()}))
        print(f"copy_blend written into {path}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", help="folders of complete case folders")
    p.add_argument("--volumes", type=Path, help="held-out outputs: evaluate --drop pairs,singles --save-volumes DIR")
    p.add_argument("--weights", type=Path, help="the manifest the outputs were made with (its normalization)")
    p.add_argument("--report", type=Path, help="write the scores, the fitted block and the summary here (JSON)")
    p.add_argument("--jobs", type=int, default=1, help="cases scored at a time (processes)")
    p.add_argument("--refit", type=Path, help="fit again from the scores this report kept (no scoring)")
    p.add_argument("--apply", type=Path, help="take the block from this report instead of fitting")
    p.add_argument("--write", type=Path, nargs="*", default=[],
                   help="manifests the block is written into (a new one beside --weights is made from it)")
    args = p.parse_args(argv)
    if args.apply:
        block = json.loads(args.apply.read_text())["copy_blend"]
        write_block(block, args.write)
        return
    if not (args.weights and (args.refit or (args.cases and args.volumes))):
        p.error("fitting needs --weights and --cases and --volumes, or --refit REPORT (or --apply REPORT)")
    manifest = load_manifest(args.weights)
    if args.refit:
        kept = json.loads(args.refit.read_text())
        scores = [Scores(s["case"], s["pattern"], Modality(s["target"]), tuple(kept["grid"]), tuple(s["ssim_brain"]))
                  for s in kept["scores"]]
    else:
        scores = score_saved(args.volumes, args.cases, Normalizer.from_manifest(manifest.normalization), jobs=args.jobs)
    block, rows = fit(scores)
    print(table(rows))
    if args.report:
        write_json_atomic(args.report, {
            "weights": {"name": manifest.name, "sha256": manifest.sha256}, "grid": list(scores[0].grid), "copy_blend": block,
            "summary": rows, "scores": [{"case": s.case_id, "pattern": s.pattern, "target": s.target.value,
                                         "ssim_brain": list(s.ssim)} for s in scores]})
    write_block(block, args.write, like=args.weights)


if __name__ == "__main__":
    main()
