"""Dry runs: drop a modality from complete cases, synthesize it with the shipped pipeline, score it.

In bounded memory and linear time, in two phases over DATA's complete cases (either naming convention):

1. **model**: each case of this run is read once; for each dropped modality a temporary three-input case (symlinks
   named in the case's own convention: DATA is never written) is checked like any input and synthesized by the same
   :class:`~brasyn_infer.pipeline.synthesizer.Synthesizer` call as ``brasyn-infer run`` makes; each stage
   (``model``: the generator, ``model+refiner`` when a refiner runs) and the ``mean`` baseline are scored against
   the real volume. The case's linear-regression statistics (:mod:`brasyn_infer.synthesis.linear`, a few dozen
   numbers per dropped modality) are kept in ``REPORT_DIR/linear-stats/``.
2. **linear**: the statistics of DATA's other cases (read once, unless an earlier run or shard kept them), then each
   pair's leave-one-case-out fit by subtraction from the total (or a fit on ``fit_on`` cases only), its prediction
   and its scores.

Rows are appended to ``cases.csv`` as they are computed, so an interrupted run resumes. ``REPORT_DIR/run.json``
records what produced the scores (the weights' sha256 and every option that changes one); a rerun with other ones
is refused (:class:`~brasyn_infer.errors.UsageError`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Convention, Modality
from brasyn_infer.errors import BrasynError, CaseError, UsageError
from brasyn_infer.evaluation.baselines import baseline_output, predict_linear, predict_mean
from brasyn_infer.evaluation.metrics import Scaled, score
from brasyn_infer.evaluation.qc import qc_png
from brasyn_infer.evaluation.ranking import MapErrors, map_quality
from brasyn_infer.evaluation.report import append_row, read_rows, weights_label, write_reports
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.io.cases import CaseFiles, complete_case, discover, list_case_folders
from brasyn_infer.io.checks import check_case
from brasyn_infer.io.naming import modality_file, uncertainty_file
from brasyn_infer.io.nifti import Volume, load_volume, output_image, read_inputs, write_atomic
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.synthesis.linear import LinearStats, StatsTable, case_stats

MODEL = "model"
REFINED = "model+refiner"
RUN_FORMAT = "brasyn-infer.dry-run/1"
#: ``--fit-on training``: the cases the weights' manifest records as its training set
FIT_ON_TRAINING = "training"


@dataclass(frozen=True)
class DryRunCase:
    folder: Path
    files: CaseFiles | None
    error: BrasynError | None = None


@dataclass
class Hooks:
    """Progress callbacks (all optional): a phase begins (its name and the number of steps), a step is done (a
    description), an input-check warning."""

    on_phase: Callable[[str, int], None] | None = None
    on_step: Callable[[str], None] | None = None
    on_warning: Callable[[str], None] | None = None

    def phase(self, name: str, total: int) -> None:
        if self.on_phase:
            self.on_phase(name, total)

    def step(self, what: str) -> None:
        if self.on_step:
            self.on_step(what)


@dataclass
class DryRunOptions:
    """What a dry run scores: the dropped modalities, the baselines, which cases (``only``), the cases the linear
    baseline is fitted on (``fit_on``; None: leave-one-case-out over DATA; ``["training"]``: the weights' recorded
    training cases), downstream segmentation, where to keep
    the generator's outputs, and the shard."""

    drops: list[Modality] = field(default_factory=lambda: list(MODALITIES))
    baselines: list[str] = field(default_factory=lambda: ["linear", "mean"])
    only: list[str] | None = None
    fit_on: list[str] | None = None
    segment: bool = False
    save_volumes: Path | None = None
    shard: Shard | None = None


def find_complete_cases(data: Path) -> list[DryRunCase]:
    out = []
    for folder in list_case_folders(data):
        try:
            out.append(DryRunCase(folder, complete_case(folder)))
        except CaseError as error:
            out.append(DryRunCase(folder, None, error))
    return out


def run_identity(synth: Synthesizer, options: DryRunOptions) -> dict:
    """Everything that changes a score: the weights (the graph, and the manifest's blocks that act on its output),
    views, TTA, the prior blend, the tone, the refiner, the map, the linear baseline's fitting cases. (Batch size, device and threads change nothing but float rounding.)"""
    refiner = synth.refiner.manifest if synth.refiner else None
    manifest = synth.manifest
    blocks = json.dumps({"normalization": manifest.normalization, "trust": manifest.trust,
                         "uncertainty": manifest.uncertainty, "outputs": list(manifest.outputs),
                         **({"tone": manifest.tone} if manifest.tone else {})}, sort_keys=True)
    return {"format": RUN_FORMAT,
            "weights": {"name": manifest.name, "sha256": manifest.sha256,
                        "manifest": hashlib.sha256(blocks.encode()).hexdigest()[:16]},
            "normalization": synth.manifest.normalization.get("scheme"),
            "views": [v.value for v in synth.views], "tta": synth.tta, "prior": synth.prior,
            **({"tone": bool(synth.tone.curves)} if manifest.tone else {}),
            "refiner": {"name": refiner.name, "sha256": refiner.sha256} if refiner else None,
            "uncertainty": bool(synth.uncertainty),
            "fit_on": sorted(options.fit_on) if options.fit_on is not None else None}


def claim_report_dir(report_dir: Path, identity: dict) -> None:
    """Record ``identity`` in ``REPORT_DIR/run.json``, or refuse a folder that holds another run's scores."""
    path = report_dir / "run.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        if old != identity:
            changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            detail = "; ".join(f"{k}: {_show(old.get(k))} there, {_show(identity.get(k))} now" for k in changed)
            raise UsageError(f"holds the scores of another run ({detail})", report_dir,
                             "pass another REPORT_DIR, or the same weights and options to resume")
        return
    if (report_dir / "cases.csv").is_file() or any(report_dir.glob("cases.shard-*.csv")):
        raise UsageError("holds scores without a run.json (from an older brasyn-infer): their run is unknown",
                         report_dir, "pass another REPORT_DIR")
    write_json_atomic(path, identity)


def _show(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        return f"{value.get('name')} ({str(value['sha256'])[:12]})"
    return json.dumps(value)


class StatsCache:
    """The linear statistics of each case, one JSON file per case in ``REPORT_DIR/linear-stats/`` (written
    atomically, so that shards and reruns share them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.table = StatsTable()

    def path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.json"

    def load(self, case_id: str, drops: list[Modality]) -> bool:
        """Load a case's statistics if kept (for every modality of ``drops``); whether they were."""
        if all(self.table.has(case_id, m) for m in drops):
            return True
        try:
            data = json.loads(self.path(case_id).read_text())
        except (OSError, ValueError):
            return False
        if not all(m.value in data for m in drops):
            return False
        for m in drops:
            self.table.add(case_id, m, LinearStats.from_json(data[m.value]))
        return True

    def store(self, case_id: str, stats: Mapping[Modality, LinearStats]) -> None:
        for m, s in stats.items():
            self.table.add(case_id, m, s)
        write_json_atomic(self.path(case_id), {m.value: s.to_json() for m, s in self.table.cases[case_id].items()})


def dry_run(data: Path, report_dir: Path, synth: Synthesizer, options: DryRunOptions,
            hooks: Hooks | None = None) -> tuple[list[dict], list[BrasynError]]:
    """Run the dry run into ``report_dir``; returns all rows (resumed ones included) and the cases' errors."""
    hooks = hooks or Hooks()
    if options.fit_on == [FIT_ON_TRAINING]:
        options.fit_on = list(synth.manifest.training.get("data", {}).get("train", []))
        if not options.fit_on:
            raise UsageError("--fit-on training: the weights' manifest records no training cases", synth.manifest.path,
                             "pass the case IDs: --fit-on ID,ID,...")
    report_dir.mkdir(parents=True, exist_ok=True)
    claim_report_dir(report_dir, run_identity(synth, options))
    shard = options.shard
    csv_path = report_dir / (f"cases.shard-{shard.index}-of-{shard.count}.csv" if shard else "cases.csv")
    rows = read_rows(csv_path)
    done = {(r["case"], r["modality"], r["method"]) for r in rows}
    found = find_complete_cases(data)
    folders = [c.folder.name for c in found]
    mine = set(shard.select(folders)) if shard else set(folders)
    errors = [c.error for c in found if c.error is not None and c.folder.name in mine]
    cases = [c.files for c in found if c.files is not None]
    known = {c.case_id for c in cases}
    for name, ids in (("--only", options.only), ("--fit-on", options.fit_on)):
        unknown = sorted(set(ids or ()) - known)
        if unknown:
            raise UsageError(f"{name} names cases that are not complete cases of DATA: {', '.join(unknown)}", data,
                             "use the case IDs of complete cases in DATA")
    scored = [c for c in cases if c.folder.name in mine and (not options.only or c.case_id in options.only)]
    linear = "linear" in options.baselines
    stats = StatsCache(report_dir / "linear-stats")

    def append(new_rows: list[dict]) -> None:
        for row in new_rows:
            if (row["case"], row["modality"], row["method"]) not in done:
                append_row(csv_path, row)
                rows.append(row)
                done.add((row["case"], row["modality"], row["method"]))

    methods = [MODEL, *([REFINED] if synth.refiner else []), *(["mean"] if "mean" in options.baselines else [])]
    hooks.phase("model", len(scored) * len(options.drops))
    with tempfile.TemporaryDirectory(prefix="brasyn-dryrun-") as tmp:
        for files in scored:
            todo = [m for m in options.drops if not all((files.case_id, m.value, k) in done for k in methods)]
            need_stats = linear and not stats.load(files.case_id, options.drops)
            loaded = read_inputs(files.modalities) if todo or need_stats or hooks.on_warning else {}
            if hooks.on_warning:
                for warning in check_case(loaded):
                    hooks.on_warning(warning)
            if need_stats:
                stats.store(files.case_id, _case_stats(synth, loaded, options.drops))
            for missing in options.drops:
                if missing in todo:
                    append(_score_model(files, loaded, missing, synth, options, Path(tmp), report_dir))
                hooks.step(f"{files.case_id} -{missing.value}")
            del loaded
        if linear:
            _linear_phase(cases, scored, synth, options, stats, done, append, hooks)
    if shard:
        write_json_atomic(report_dir / f"shard-{shard.index}-of-{shard.count}.json",
                          {"shard": {"index": shard.index, "count": shard.count}, "label": weights_label(synth),
                           "csv": csv_path.name, "cases": sorted(c.case_id for c in scored),
                           "folders": sorted(folders), "errors": [str(e) for e in errors]})
    else:
        write_reports(rows, report_dir, weights_label(synth))
    return rows, errors


def _case_stats(synth: Synthesizer, loaded: Mapping[Modality, Volume], drops: list[Modality]) -> dict[Modality, LinearStats]:
    """One complete case's statistics in the model's normalized space, for each dropped modality."""
    x4, _ = synth.normalizer.stack({m: v.data for m, v in loaded.items()}, None)
    return {m: case_stats(x4, m, synth.normalizer.fill) for m in drops}


def _linear_phase(cases: list[CaseFiles], scored: list[CaseFiles], synth: Synthesizer, options: DryRunOptions,
                  stats: StatsCache, done: set, append: Callable[[list[dict]], None], hooks: Hooks) -> None:
    """The linear baseline: every case's statistics (those not kept yet are read), then each scored pair."""
    fitting = [c for c in cases if options.fit_on is None or c.case_id in options.fit_on]
    missing_stats = [c for c in fitting if not stats.load(c.case_id, options.drops)]
    hooks.phase("linear-baseline statistics", len(missing_stats))
    for files in missing_stats:
        stats.store(files.case_id, _case_stats(synth, read_inputs(files.modalities), options.drops))
        hooks.step(files.case_id)
    fit_on = set(options.fit_on) if options.fit_on is not None else None
    hooks.phase("linear baseline", len(scored) * len(options.drops))
    for files in scored:
        todo = [m for m in options.drops if (files.case_id, m.value, "linear") not in done]
        loaded = read_inputs(files.modalities) if todo else {}
        seg = load_volume(files.seg).data if files.seg is not None and todo else None
        for missing in options.drops:
            if missing in todo:
                coef = stats.table.loco(files.case_id, missing, fit_on)
                if coef is not None:
                    started = time.perf_counter()
                    inputs = {m: v.data for m, v in loaded.items() if m is not missing}
                    y = baseline_output(synth.normalizer, inputs, missing, partial(predict_linear, missing=missing,
                                                                                  coef=coef))
                    append([{"case": files.case_id, "modality": missing.value, "method": "linear",
                             **score(y, loaded[missing].data, seg), "seconds": time.perf_counter() - started}])
            hooks.step(f"{files.case_id} -{missing.value}")
        del loaded


def merge_shard_reports(report_dir: Path) -> tuple[dict, list[str]]:
    """``summary.json`` and ``report.md`` of every shard's rows in ``report_dir``; returns the summary
    and the problems (shards that did not report, cases without rows, case errors)."""
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
    """The case's own segmentation, else the segmenter's output on its four real modalities (cached)."""
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


def _score_model(files: CaseFiles, loaded: Mapping[Modality, Volume], missing: Modality, synth: Synthesizer,
                 options: DryRunOptions, tmp: Path, report_dir: Path) -> list[dict]:
    """Synthesize one case with ``missing`` dropped and score the model's stages and the mean baseline;
    ``loaded``: its four volumes, read once per case."""
    case_dir = tmp / "in" / files.case_id
    out_dir = tmp / "out"
    case_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(exist_ok=True)
    for old in case_dir.iterdir():
        old.unlink()
    for mod, path in files.modalities.items():
        if mod is not missing:
            (case_dir / modality_file(files.case_id, mod, files.convention)).symlink_to(path.resolve())
    entries = discover(case_dir)  # the product's own checks of the three-input case
    if entries[0].error is not None:
        raise entries[0].error
    inputs = {m: v.data for m, v in loaded.items() if m is not missing}
    stages = synth.synthesize_stages(inputs, missing)  # what `brasyn-infer run` calls for this case
    seconds = dict(synth.last_seconds)
    like = loaded[missing].image
    if options.save_volumes is not None:
        target = options.save_volumes / files.case_id / modality_file(files.case_id, missing, Convention.BRASYN)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output_image(stages["generator"], like), target)
        if "uncertainty" in stages:  # the map beside it, as `run --uncertainty` names it
            write_atomic(output_image(stages["uncertainty"], like),
                         target.with_name(uncertainty_file(files.case_id, missing, Convention.BRASYN)))
    # each volume is brought to its [0, 1] scale once, for every score, the map's errors and the picture
    truth = Scaled.of(loaded[missing].data)
    scaled = {stage: Scaled.of(stages[stage]) for stage in ("generator", "refined") if stage in stages}
    seg = load_volume(files.seg).data if files.seg is not None else None
    base = {"case": files.case_id, "modality": missing.value}
    rows = []
    quality = {}
    if "uncertainty" in stages:  # how the map ranks the generator stage's real errors, over the brain
        quality = map_quality(stages["uncertainty"], MapErrors.of(scaled["generator"], truth))
    for method, stage, elapsed in ((MODEL, "generator", seconds["generator"]),
                                   (REFINED, "refined", seconds["generator"] + seconds.get("refined", 0.0))):
        if stage not in stages:
            continue
        downstream = {}
        if options.segment:  # the segmenter reads files: write this stage's output as the product would
            path = out_dir / f"{files.case_id}-{missing.value}.nii.gz"
            write_atomic(output_image(stages[stage], like), path)
            downstream = _downstream(files, missing, path, tmp)
            path.unlink()
        rows.append({**base, "method": method, **score(scaled[stage], truth, seg), **downstream,
                     **(quality if stage == "generator" else {}), "seconds": elapsed})
    if "mean" in options.baselines:
        started = time.perf_counter()
        y = baseline_output(synth.normalizer, inputs, missing, partial(predict_mean, missing=missing))
        rows.append({**base, "method": "mean", **score(y, truth, seg), "seconds": time.perf_counter() - started})
    qc_png(report_dir / f"{files.case_id}-{missing.value}.png", inputs, scaled.get("refined", scaled["generator"]),
           truth, seg, title=f"{files.case_id}: {missing.value} synthesized ({synth.label})",
           uncertainty=stages.get("uncertainty"))
    return rows


def parse_drop(text: str) -> list[Modality]:
    if text.strip().lower() == "all":
        return list(MODALITIES)
    try:
        return [Modality(t.strip().lower()) for t in text.split(",") if t.strip()]
    except ValueError as error:
        raise UsageError(f"--drop {text!r}: {error}", fix="use a comma list of t1c,t1n,t2f,t2w or all") from error
