"""Could a map built after the network rank the validation outputs' errors better than the shipped one?

    python -m training.studies.map_study --cases ../shared/data/cases ../shared/data/brats2018 \\
        --weights runs/train/val-tuned/val-blend.json --volumes runs/train/validation/volumes-blend \\
        --out runs/train/map-study [--samples 300000]

``VOLUMES`` holds the validation model's outputs and maps as ``brasyn-infer evaluate --save-volumes`` writes them
(``<case>/<case>-<modality>.nii.gz`` and ``...-uncertainty.nii.gz``). For each pair it draws ``--samples`` brain
voxels (``truth > 0``, a fixed seed) and ranks their |error| on the [0, 1] images (the errors ``unc_spearman``
ranks, :class:`brasyn_infer.evaluation.ranking.MapErrors`) by each candidate map
(:func:`~brasyn_infer.evaluation.ranking.rank_quality`):

- ``map``: the shipped map, as evaluate wrote it;
- ``scale``, ``spread`` and ``scale + K spread``: the views' mean Laplace scale ``b``, their standard deviation, and
  ``sqrt(b**2 + K var)`` for each ``--spread-weight`` (the shipped map's ``view_spread`` is ``K = 1``), from the
  views' moments recomputed with the weights (:func:`~brasyn_infer.synthesis.generate.generate_volume`);
- features of the output alone: ``gradient`` (its gradient magnitude on its [0, 1] image, after a Gaussian of 0.7
  voxels), ``local std`` (3 x 3 x 3), ``level`` (the [0, 1] value itself), ``edge`` (closeness to the inputs' brain
  edge, in voxels up to 20);
- ``expected at level``: per modality, the mean |error| of the other cases' outputs at the same [0, 1] level
  (20 bins), fitted leave-one-case-out;
- ``fit``: a least-squares fit of ``log(|error| + 0.01)`` on ``log`` of the map and the features above, fitted
  leave-one-case-out (every pair of the other cases).

Candidates fitted on other cases are scored only on the case left out: what they would do to an unseen case.
``OUT/samples/`` keeps each pair's samples (a rerun reads them instead of generating again); ``OUT/map_study.md``
has each candidate's mean Spearman and top-10% ratio, overall and per modality.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy import ndimage

from brasyn_infer.constants import MODALITIES
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.evaluation.ranking import rank_quality
from brasyn_infer.io.atomic import write_text_atomic
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.synthesis.generate import generate_volume

from ..data import SavedOutput, find_case_folders, saved_outputs

#: features of the output alone (and the shipped map) that ``fit`` combines; the log is taken of the positive ones
FEATURES = ("map", "gradient", "local std", "level", "edge")
LOGGED = {"map", "gradient", "local std"}
BINS = 20


def pair_samples(synthesizer: Synthesizer, saved: SavedOutput, samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``(n,)`` samples over the brain of one pair: ``error`` (on the [0, 1] images), the shipped ``map``, the views'
    mean scale ``b`` and variance ``var`` (normalized units), and the output's :data:`FEATURES`."""
    missing = saved.missing
    volumes = {m: v.data for m, v in read_inputs(complete_case(saved.folder).modalities).items()}
    inputs = {m: v for m, v in volumes.items() if m is not missing}
    norm = synthesizer.normalizer
    x4, _ = norm.stack(inputs, missing)
    moments = generate_volume(synthesizer.session, x4, missing, synthesizer.views, synthesizer.batch_size,
                              fill=norm.fill, tta=synthesizer.tta, with_scale=True)
    variance = np.maximum(moments[1] - moments[0] * moments[0], 0)
    output = Scaled.of(load_volume(saved.path).data)
    truth = Scaled.of(volumes[missing])
    shipped = load_volume(saved.uncertainty).data
    unit = output.unit.astype(np.float32)
    gradient = np.sqrt(sum(g * g for g in np.gradient(ndimage.gaussian_filter(unit, 0.7))))
    mean, square = ndimage.uniform_filter(unit, 3), ndimage.uniform_filter(unit * unit, 3)
    inside = np.any([v > 0 for v in inputs.values()], axis=0)
    edge = -np.minimum(ndimage.distance_transform_edt(inside), 20)
    brain = truth.raw > 0
    rng = np.random.default_rng(seed)
    pick = rng.choice(int(brain.sum()), min(samples, int(brain.sum())), replace=False)
    columns = {"error": np.abs(output.unit - truth.unit), "map": shipped, "b": moments[2], "var": variance,
               "gradient": gradient, "local std": np.sqrt(np.maximum(square - mean * mean, 0)), "level": unit,
               "edge": edge}
    return {k: v[brain][pick].astype(np.float32) for k, v in columns.items()}


def level_table(pairs: Mapping[tuple[str, str], Mapping[str, np.ndarray]]) -> np.ndarray:
    """Mean |error| per [0, 1] level bin (:data:`BINS`) over ``pairs``."""
    total, count = np.zeros(BINS), np.zeros(BINS)
    for s in pairs.values():
        b = np.clip((s["level"] * BINS).astype(int), 0, BINS - 1)
        total += np.bincount(b, s["error"], BINS)
        count += np.bincount(b, minlength=BINS)
    return total / np.maximum(count, 1)


def design(s: Mapping[str, np.ndarray]) -> np.ndarray:
    cols = [np.log(s[f] + 1e-3) if f in LOGGED else s[f] for f in FEATURES]
    return np.stack([*cols, np.ones_like(cols[0])], axis=1).astype(np.float64)


def candidates(key: tuple[str, str], data: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
               weights: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Every candidate map for the pair ``key`` (case, modality); the fitted ones from the other cases only."""
    s = data[key]
    out = {"map": s["map"], "scale": s["b"], "spread": np.sqrt(s["var"])}
    out.update({f"scale + {k:g} spread": np.sqrt(s["b"] ** 2 + k * s["var"]) for k in weights})
    out.update({f: s[f] for f in FEATURES[1:]})
    same = {k: v for k, v in data.items() if k[1] == key[1] and k[0] != key[0]}
    table = level_table(same)
    out["expected at level"] = table[np.clip((s["level"] * BINS).astype(int), 0, BINS - 1)]
    others = [v for k, v in data.items() if k[0] != key[0]]
    a = np.concatenate([design(v)[::5] for v in others])
    y = np.concatenate([np.log(v["error"][::5] + 0.01) for v in others])
    out["fit"] = design(s) @ np.linalg.lstsq(a, y, rcond=None)[0]
    return out


def report(rows: list[dict]) -> str:
    names = [k for k in rows[0] if k not in ("case", "modality")]
    metrics = ("unc_spearman", "unc_top10")
    present = [m.value for m in MODALITIES if any(r["modality"] == m.value for r in rows)]
    text = io.StringIO()
    text.write("| candidate | Spearman | top-10% ratio | " + " | ".join(f"{m} Spearman" for m in present) + " |\n")
    text.write("|---|---|---|" + "---|" * len(present) + "\n")
    for name in names:
        mean = [np.mean([r[name][k] for r in rows]) for k in metrics]
        per = [np.mean([r[name]["unc_spearman"] for r in rows if r["modality"] == m]) for m in present]
        text.write(f"| {name} | {mean[0]:.3f} | {mean[1]:.2f} | " + " | ".join(f"{v:.3f}" for v in per) + " |\n")
    return text.getvalue() + f"\n{len(rows)} pairs; fitted candidates scored leave-one-case-out.\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--weights", type=Path, required=True, help="the validation model's manifest, as evaluated")
    p.add_argument("--volumes", type=Path, required=True, help="its outputs and maps: evaluate --save-volumes DIR")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--samples", type=int, default=300_000, help="brain voxels drawn per pair")
    p.add_argument("--spread-weight", type=float, nargs="+", default=[0.25, 1, 4, 16])
    args = p.parse_args(argv)
    outputs = saved_outputs(args.volumes, {f.name: f for f in find_case_folders(args.cases)})
    (args.out / "samples").mkdir(parents=True, exist_ok=True)
    synthesizer: Synthesizer | None = None
    data: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for saved in outputs:
        key = (saved.case_id, saved.missing.value)
        cache = args.out / "samples" / f"{saved.case_id}-{saved.missing.value}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                data[key] = {k: z[k] for k in z.files}
            continue
        synthesizer = synthesizer or Synthesizer(args.weights, uncertainty=True)
        data[key] = pair_samples(synthesizer, saved, args.samples)
        np.savez_compressed(cache, **{k.replace(" ", "_"): v for k, v in data[key].items()})
        print(f"sampled {saved.case_id} {saved.missing.value}", flush=True)
    data = {k: {n.replace("_", " "): v for n, v in s.items()} for k, s in data.items()}
    rows = []
    for key in sorted(data):
        row: dict = {"case": key[0], "modality": key[1]}
        for name, values in candidates(key, data, tuple(args.spread_weight)).items():
            row[name] = rank_quality(values, data[key]["error"])
        rows.append(row)
    text = report(rows)
    write_text_atomic(args.out / "map_study.md", text)
    print(text)


if __name__ == "__main__":
    main()
