"""Dry runs: drop a modality from complete cases, synthesize it with the normal pipeline, score it.

For each complete case in DATA and each dropped modality, a temporary three-input case (symlinks:
DATA is never written) is checked like any input case and synthesized by the same
:class:`~brasyn_infer.pipeline.synthesizer.Synthesizer`; each stage's output (``model``: the generator;
``model+refiner`` when a refiner runs) is scored against the real volume with
:mod:`brasyn_infer.evaluation.metrics`, next to the baselines of :mod:`brasyn_infer.evaluation.baselines`.
Rows are appended to ``cases.csv`` as they are computed, so an interrupted run resumes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import BrasynError, CaseError
from brasyn_infer.evaluation.baselines import brain_voxels, fit_linear, predict_linear, predict_mean
from brasyn_infer.evaluation.metrics import score
from brasyn_infer.evaluation.qc import qc_png
from brasyn_infer.evaluation.ranking import rank_quality
from brasyn_infer.evaluation.report import append_row, read_rows, weights_label, write_reports
from brasyn_infer.io.cases import CaseFiles, complete_case, discover, list_case_folders
from brasyn_infer.io.checks import check_case
from brasyn_infer.io.nifti import Volume, load_volume, output_image, read_inputs, write_atomic
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import write_json_atomic
from brasyn_infer.synthesis.normalize import background_mask

MODEL = "model"
REFINED = "model+refiner"
BASELINES = ("linear", "mean")


@dataclass(frozen=True)
class DryRunCase:
    folder: Path
    files: CaseFiles | None
    error: BrasynError | None = None


def find_complete_cases(data: Path) -> list[DryRunCase]:
    out = []
    for folder in list_case_folders(data):
        try:
            out.append(DryRunCase(folder, complete_case(folder)))
        except CaseError as error:
            out.append(DryRunCase(folder, None, error))
    return out


def _voxel_samples(synth: Synthesizer, cases: list[CaseFiles], drops: list[Modality],
                   on_case: Callable[[str], None] | None) -> dict[str, dict[Modality, tuple[np.ndarray, np.ndarray]]]:
    """Per case and dropped modality, a sample of (available channels, target) brain voxels."""
    rng = np.random.default_rng(0)
    samples: dict[str, dict[Modality, tuple[np.ndarray, np.ndarray]]] = {}
    for files in cases:
        volumes = {m: v.data for m, v in read_inputs(files.modalities).items()}
        x4, _ = synth.normalizer.stack(volumes, None)
        samples[files.case_id] = {m: brain_voxels(x4, m, rng, synth.normalizer.fill) for m in drops}
        if on_case:
            on_case(files.case_id)
    return samples


def _fit_loco(samples, case_id: str, missing: Modality) -> np.ndarray | None:
    """Linear coefficients from every case but ``case_id`` (None when there is no other case)."""
    others = [samples[c][missing] for c in samples if c != case_id]
    return fit_linear(others) if others else None


def dry_run(
    data: Path,
    report_dir: Path,
    synth: Synthesizer,
    drops: list[Modality],
    baselines: list[str],
    on_status: Callable[[str], None] | None = None,
    on_pair_done: Callable[[str, Modality], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    only: list[str] | None = None,
    segment: bool = False,
    save_volumes: Path | None = None,
    shard: Shard | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[BrasynError]]:
    """Run the dry run into ``report_dir``; returns all rows (resumed ones included) and case errors.

    ``only`` restricts which case IDs are scored (a held-out fold); the linear baseline still fits
    on every other complete case of DATA. ``segment`` adds downstream Dice/HD95 of the model's
    synthesis (see :mod:`brasyn_infer.evaluation.downstream`; the caller checks that it can run). ``save_volumes``:
    also write each generator output (before any refiner) as ``<save_volumes>/<case>/<case>-<mod>.nii.gz``
    with the real modality's geometry; a pair already scored is not redone, its volume not rewritten.
    ``shard``: score only this shard's case folders (see :mod:`brasyn_infer.orchestration.shards`), into
    ``cases.shard-I-of-N.csv`` and ``shard-I-of-N.json``; :func:`merge_shard_reports` makes the
    report of all shards. ``on_warning`` gets the input checks' warnings of each scored case.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    csv_path = report_dir / (f"cases.shard-{shard.index}-of-{shard.count}.csv" if shard else "cases.csv")
    rows = read_rows(csv_path)
    done = {(r["case"], r["modality"], r["method"]) for r in rows}
    methods = [MODEL, *([REFINED] if synth.refiner else []), *baselines]
    found = find_complete_cases(data)
    folders = [c.folder.name for c in found]
    mine = set(shard.select(folders)) if shard else set(folders)
    errors = [c.error for c in found if c.error is not None and c.folder.name in mine]
    cases = [c.files for c in found if c.error is None]
    if not cases:
        return rows, errors
    if on_total:
        on_total(len(cases) * len(drops))
    samples = _voxel_samples(synth, cases, drops, on_status) if "linear" in baselines else {}
    if only:
        unknown = set(only) - {c.case_id for c in cases}
        if unknown:
            raise BrasynError(f"--only names cases not in DATA: {', '.join(sorted(unknown))}", data,
                              "use the case IDs of complete cases in DATA")
        cases = [c for c in cases if c.case_id in only]
    cases = [c for c in cases if c.folder.name in mine]  # baselines above fit on all of DATA
    if on_total:
        on_total(len(cases) * len(drops))

    with tempfile.TemporaryDirectory(prefix="brasyn-dryrun-") as tmp:
        for files in cases:
            todo = [m for m in drops if not all((files.case_id, m.value, method) in done for method in methods)]
            # one read per case, shared by its checks and all its dropped modalities
            loaded = read_inputs(files.modalities) if todo or on_warning is not None else {}
            if on_warning is not None:
                for warning in check_case(loaded):
                    on_warning(warning)
            for missing in drops:
                if missing not in todo:
                    if on_pair_done:
                        on_pair_done(files.case_id, missing)
                    continue
                new_rows = _evaluate_pair(files, loaded, missing, synth, baselines, samples, Path(tmp), report_dir,
                                          segment, save_volumes)
                for row in new_rows:
                    if (row["case"], row["modality"], row["method"]) not in done:
                        append_row(csv_path, row)
                        rows.append(row)
                if on_pair_done:
                    on_pair_done(files.case_id, missing)
    if shard:
        write_json_atomic(report_dir / f"shard-{shard.index}-of-{shard.count}.json",
                          {"shard": {"index": shard.index, "count": shard.count}, "label": weights_label(synth),
                           "csv": csv_path.name, "cases": sorted(c.case_id for c in cases),
                           "folders": sorted(folders), "errors": [str(e) for e in errors]})
    else:
        write_reports(rows, report_dir, weights_label(synth))
    return rows, errors


def merge_shard_reports(report_dir: Path) -> tuple[dict, list[str]]:
    """``summary.json`` and ``report.md`` of every shard's rows in ``report_dir``; returns the summary
    and the problems (shards that did not report, cases without rows, case errors)."""
    import json

    sidecars = sorted(report_dir.glob("shard-*-of-*.json"))
    if not sidecars:
        raise BrasynError("no shard reports (shard-I-of-N.json) in this folder", report_dir,
                          "pass the REPORT_DIR that `evaluate --shard` wrote into")
    shards = [json.loads(p.read_text()) for p in sidecars]
    count = max(s["shard"]["count"] for s in shards)
    seen = {s["shard"]["index"] for s in shards}
    problems = [f"shard {i}/{count} did not report (no shard-{i}-of-{count}.json)" for i in range(count) if i not in seen]
    problems += [f"shard {s['shard']['index']}/{s['shard']['count']}: {e}" for s in shards for e in s["errors"]]
    rows = [row for s in shards for row in read_rows(report_dir / s["csv"])]
    scored = {r["case"] for r in rows}
    problems += [f"{case}: no scores (did its shard finish?)" for s in shards for case in s["cases"] if case not in scored]
    summary = write_reports(rows, report_dir, shards[0]["label"])
    return summary, problems


def _reference_segmentation(files: CaseFiles, tmp: Path) -> np.ndarray:
    """The case's own ``-seg`` file, else the segmenter's output on its four real modalities (cached)."""
    from brasyn_infer.evaluation.downstream import segment

    if files.seg is not None:
        return load_volume(files.seg).data
    cached = tmp / f"{files.case_id}-reference-seg.nii.gz"
    if not cached.is_file():
        segment(files.modalities, cached)
    return load_volume(cached).data


def _downstream(files: CaseFiles, missing: Modality, synthesized_path: Path, tmp: Path) -> dict[str, float]:
    from brasyn_infer.evaluation.downstream import score_segmentation, segment

    inputs = {**files.modalities, missing: synthesized_path}
    predicted = segment(inputs, tmp / f"{files.case_id}-{missing.value}-seg.nii.gz")
    return score_segmentation(load_volume(predicted).data, _reference_segmentation(files, tmp))


def _evaluate_pair(files: CaseFiles, loaded: Mapping[Modality, Volume], missing: Modality, synth: Synthesizer,
                   baselines: list[str], samples, tmp: Path, report_dir: Path, segment: bool = False,
                   save_volumes: Path | None = None) -> list[dict]:
    """Score one case with ``missing`` dropped; ``loaded``: its four volumes, read once per case."""
    case_dir = tmp / "in" / files.case_id
    out_dir = tmp / "out"
    case_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(exist_ok=True)
    for old in case_dir.iterdir():
        old.unlink()
    for mod, path in files.modalities.items():
        if mod is not missing:
            (case_dir / f"{files.case_id}-{mod.value}.nii.gz").symlink_to(path.resolve())
    entries = discover(case_dir)  # the product's own checks of the three-input case
    if entries[0].error is not None:
        raise entries[0].error
    volumes = {m: v.data for m, v in loaded.items()}
    inputs = {m: v for m, v in volumes.items() if m is not missing}
    stages = synth.synthesize_stages(inputs, missing)
    seconds = dict(synth.last_seconds)
    if save_volumes is not None:
        target = save_volumes / files.case_id / f"{files.case_id}-{missing.value}.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output_image(stages["generator"], loaded[missing].image), target)
    truth = volumes[missing]
    seg = load_volume(files.seg).data if files.seg is not None else None
    base = {"case": files.case_id, "modality": missing.value}
    rows = []
    quality = {}
    if "uncertainty" in stages:  # how the map ranks the generator stage's real errors, over the brain
        brain = truth > 0
        quality = rank_quality(stages["uncertainty"][brain], np.abs(stages["generator"][brain] - truth[brain]))
    for method, stage, elapsed in ((MODEL, "generator", seconds["generator"]),
                                   (REFINED, "refined", seconds["generator"] + seconds.get("refined", 0.0))):
        if stage not in stages:
            continue
        downstream = {}
        if segment:  # the segmenter reads files: write this stage's output as the product would
            path = out_dir / f"{files.case_id}-{missing.value}.nii.gz"
            write_atomic(output_image(stages[stage], loaded[missing].image), path)
            downstream = _downstream(files, missing, path, tmp)
            path.unlink()
        rows.append({**base, "method": method, **score(stages[stage], truth, seg), **downstream,
                     **(quality if stage == "generator" else {}), "seconds": elapsed})
    synthesized = stages.get("refined", stages["generator"])

    x4, scales = synth.normalizer.stack(inputs, missing)
    background = background_mask(x4, missing, synth.normalizer.fill)
    predictions = {}
    for name in baselines:
        t0 = time.perf_counter()
        if name == "linear":
            coef = _fit_loco(samples, files.case_id, missing)
            if coef is None:
                continue
            y = predict_linear(x4, missing, coef)
        else:
            y = predict_mean(x4, missing)
        predictions[name] = synth.normalizer.restore(y, background, missing, scales)
        rows.append({**base, "method": name, **score(predictions[name], truth, seg),
                     "seconds": time.perf_counter() - t0})
    qc_png(report_dir / f"{files.case_id}-{missing.value}.png", inputs, synthesized, truth, seg,
           title=f"{files.case_id}: {missing.value} synthesized ({synth.label})", uncertainty=stages.get("uncertainty"))
    return rows


def parse_drop(text: str) -> list[Modality]:
    if text.strip().lower() == "all":
        return list(MODALITIES)
    try:
        return [Modality(t.strip().lower()) for t in text.split(",") if t.strip()]
    except ValueError as error:
        raise BrasynError(f"--drop {text!r}: {error}", fix="use a comma list of t1c,t1n,t2f,t2w or all") from error
