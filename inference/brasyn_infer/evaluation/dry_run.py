"""Dry runs: drop modalities from complete cases, synthesize them with the shipped pipeline, score them.

In bounded memory and linear time, in two phases over DATA's complete cases (either naming convention):

1. **model**: each case of this run is read once; for each pattern (the modalities dropped together,
   :mod:`.patterns`) a temporary case without them (symlinks named in the case's own convention: DATA is never
   written) is checked like any input and completed by the same calls as ``brasyn-infer run`` makes
   (:class:`~brasyn_infer.pipeline.completer.Completer`); each synthesized modality of each stage (``model``,
   ``model+refiner``) and the ``mean`` and ``copy`` baselines are scored against the real volume, and with
   ``segment`` the completed cases are segmented (:mod:`.protocol`). The case's linear-regression statistics
   (:mod:`brasyn_infer.synthesis.linear`) are kept in ``REPORT_DIR/linear-stats/``.
2. **linear**: the statistics of DATA's other cases (read once, unless an earlier run or shard kept them), then each
   pair's leave-one-case-out fit for its pattern (a sub-block of the same normal equations), its prediction and
   its scores.

Rows are appended to ``cases.csv`` as they are computed, so an interrupted run resumes (a torn last row is
redone). ``REPORT_DIR/run.json`` records what produced the scores (:mod:`.identity`); a rerun with other weights,
options, DATA cases or shard count is refused. A case that cannot be read is one ``error`` row and one error line;
the other cases are scored, and the linear fits leave it out.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Convention, Device, Modality
from brasyn_infer.errors import BrasynError, CaseError, UsageError
from brasyn_infer.evaluation.baselines import baseline_output
from brasyn_infer.evaluation.identity import claim_report_dir, run_identity
from brasyn_infer.evaluation.merge import merge_shard_reports
from brasyn_infer.evaluation.metrics import score
from brasyn_infer.evaluation.patterns import Pattern, label, ordered, parse_drop
from brasyn_infer.evaluation.report import ERROR, NOTE, append_row, read_rows, row_key, weights_label, write_reports
from brasyn_infer.evaluation.scoring import DIRECT, ENHANCED, MODEL, REAL, REFINED, score_pattern
from brasyn_infer.evaluation.stats_cache import StatsCache
from brasyn_infer.io.cases import CaseFiles, complete_case, discover, duplicate_ids, list_case_folders
from brasyn_infer.io.checks import check_case
from brasyn_infer.io.naming import modality_file, uncertainty_file
from brasyn_infer.io.nifti import Volume, read_inputs
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.pipeline.completer import Completer
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.segmentation.labels import LabelConvention
from brasyn_infer.synthesis.linear import LinearStats, case_stats, predict_subset, solve_subset

__all__ = ["DryRunOptions", "Hooks", "StatsCache", "dry_run", "merge_shard_reports", "parse_drop", "run_identity"]

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
    """What a dry run scores: the patterns dropped (a modality alone is the pattern of one), the baselines, which
    cases (``only``), the cases the linear baseline is fitted on (``fit_on``; None: leave-one-case-out over DATA;
    ``["training"]``: the weights' recorded training cases), downstream segmentation (``segment`` with
    ``segmenter``, ``direct_segmenter`` for the ``direct`` rows, ``labels`` for the expert files), where to keep the generator's outputs, the shard and
    the organizers' SSIM variant (``ssim_border``)."""

    drops: list = field(default_factory=lambda: [(m,) for m in MODALITIES])
    baselines: list[str] = field(default_factory=lambda: ["linear", "mean", "copy"])
    only: list[str] | None = None
    fit_on: list[str] | None = None
    segment: bool = False
    save_volumes: Path | None = None
    shard: Shard | None = None
    segmenter: str | None = None
    direct_segmenter: str | None = None
    labels: LabelConvention | None = None
    ssim_border: str = "full"
    device: Device = Device.AUTO

    def __post_init__(self) -> None:
        self.drops = [ordered([d]) if isinstance(d, Modality) else ordered(d) for d in self.drops]


def find_complete_cases(data: Path) -> list[DryRunCase]:
    """DATA's case folders, complete or with the error that makes them unusable; two folders with one case ID are
    both errors (their rows and volumes would share names)."""
    out = []
    for folder in list_case_folders(data):
        try:
            out.append(DryRunCase(folder, complete_case(folder)))
        except CaseError as error:
            out.append(DryRunCase(folder, None, error))
    errors = duplicate_ids([(c.folder, c.files.case_id) for c in out if c.files is not None],
                           "their scores would be mixed", "rename one case's files, or evaluate them separately")
    return [DryRunCase(c.folder, None, errors[c.folder]) if c.folder in errors else c for c in out]


def check_save_volumes(save: Path | None, data: Path, report_dir: Path) -> None:
    """``--save-volumes`` must not be DATA or inside it (evaluate never writes into DATA)."""
    if save is None:
        return
    target, inputs = save.resolve(), data.resolve()
    if target == inputs or inputs in target.parents or target in inputs.parents:
        raise UsageError("--save-volumes is DATA, inside it or above it: evaluate never writes into DATA", save,
                         "choose a folder outside DATA (e.g. beside REPORT_DIR)")


@dataclass
class Run:
    """One dry run's state: the rows and their keys, the CSV, the synthesizer and the optional protocol."""

    synth: Synthesizer
    completer: Completer
    options: DryRunOptions
    report_dir: Path
    csv_path: Path
    rows: list[dict]
    protocol: object | None = None
    done: set = field(default_factory=set)

    def append(self, new_rows: list[dict]) -> None:
        for row in new_rows:
            key = row_key(row)
            if key not in self.done:
                append_row(self.csv_path, row)
                self.rows.append(row)
                self.done.add(key)

    def methods(self, pattern: Pattern, modality: Modality | None = None) -> list[str]:
        """The rows a synthesized modality of ``pattern`` gets (``modality`` None: any of them)."""
        enhanced = self.synth.enhancer is not None and Modality.T1C in pattern and modality in (None, Modality.T1C)
        return [MODEL, *([REFINED] if self.synth.refiner else []), *([ENHANCED] if enhanced else []),
                *[b for b in ("mean", "copy") if b in self.options.baselines],
                *([REAL] if self.protocol is not None else []),
                *([DIRECT] if self.protocol is not None and self.protocol.direct is not None else [])]

    def todo(self, case_id: str, pattern: Pattern) -> bool:
        return any((case_id, label(pattern), m.value, k) not in self.done
                   for m in pattern for k in self.methods(pattern, m))

    def error_row(self, case_id: str, error: BaseException, pattern: str = "", method: str = ERROR) -> None:
        self.append([{"case": case_id, "pattern": pattern, "modality": "", "method": method, "error": str(error)}])

    def note(self, case_id: str, text: str) -> None:
        """A row that explains empty figures (not an error: the case is scored)."""
        self.append([{"case": case_id, "pattern": "", "modality": "", "method": NOTE, "error": text}])


def dry_run(data: Path, report_dir: Path, synth: Synthesizer, options: DryRunOptions,
            hooks: Hooks | None = None) -> tuple[list[dict], list[BrasynError]]:
    """Run the dry run into ``report_dir``; returns all rows (resumed ones included) and the cases' errors."""
    hooks = hooks or Hooks()
    if options.fit_on == [FIT_ON_TRAINING]:
        options.fit_on = list(synth.manifest.training.get("data", {}).get("train", []))
        if not options.fit_on:
            raise UsageError("--fit-on training: the weights' manifest records no training cases", synth.manifest.path,
                             "pass the case IDs: --fit-on ID,ID,...")
    check_save_volumes(options.save_volumes, data, report_dir)
    found = find_complete_cases(data)
    folders = [c.folder.name for c in found]
    cases = [c.files for c in found if c.files is not None]
    known = {c.case_id for c in cases}
    for name, ids in (("--only", options.only), ("--fit-on", options.fit_on)):
        unknown = sorted(set(ids or ()) - known)
        if unknown:
            raise UsageError(f"{name} names cases that are not complete cases of DATA: {', '.join(unknown)}", data,
                             "use the case IDs of complete cases in DATA")
    protocol = None
    if options.segment:
        from brasyn_infer.evaluation.protocol import Protocol

        protocol = Protocol(options.segmenter, options.device, options.labels, options.direct_segmenter)
    report_dir.mkdir(parents=True, exist_ok=True)
    claim_report_dir(report_dir, run_identity(synth, options, folders, protocol.describe() if protocol else None))
    shard = options.shard
    csv_path = report_dir / (f"cases.shard-{shard.index}-of-{shard.count}.csv" if shard else "cases.csv")
    run = Run(synth, Completer(synth), options, report_dir, csv_path, read_rows(csv_path), protocol)
    run.done = {row_key(r) for r in run.rows}
    mine = set(shard.select(folders)) if shard else set(folders)
    errors = [c.error for c in found if c.error is not None and c.folder.name in mine]
    scored = [c for c in cases if c.folder.name in mine and (not options.only or c.case_id in options.only)]
    targets = [m for m in MODALITIES if any(m in p for p in options.drops)]
    linear = "linear" in options.baselines
    stats = StatsCache(report_dir / "linear-stats")
    unreadable: set[str] = set()
    hooks.phase("model", len(scored) * len(options.drops))
    with tempfile.TemporaryDirectory(prefix="brasyn-dryrun-") as tmp:
        for files in scored:
            todo = [p for p in options.drops if run.todo(files.case_id, p)]
            need_stats = linear and not stats.load(files.case_id, targets)
            try:
                loaded = read_inputs(files.modalities) if todo or need_stats or hooks.on_warning else {}
                if hooks.on_warning:
                    for warning in check_case(loaded):
                        hooks.on_warning(warning)
                if need_stats:
                    stats.store(files.case_id, _case_stats(synth, loaded, targets))
                # read once per case, checked against its grid and labels: the tumor mask and the protocol's reference
                seg = _seg(files, loaded[MODALITIES[0]], options) if todo else None
                tumor = _tumor(files, options, seg)
                if seg is not None and tumor is None:
                    run.note(files.case_id, "the segmentation is empty (no tumor): the tumor figures are left empty")
                if todo and protocol is not None:
                    protocol.begin(files, {m: v.data for m, v in loaded.items()}, loaded[MODALITIES[0]].image, seg=seg)
            except Exception as error:  # noqa: BLE001 - an unreadable case is one error row, the run goes on
                failure = _as_error(error, files)
                errors.append(failure)
                unreadable.add(files.case_id)
                run.error_row(files.case_id, failure)
                for pattern in options.drops:
                    hooks.step(f"{files.case_id} -{label(pattern)}")
                continue
            for pattern in options.drops:
                if pattern in todo:
                    try:
                        run.append(_score_pattern(run, files, loaded, pattern, Path(tmp), tumor))
                    except BrasynError as error:
                        errors.append(error)
                        run.error_row(files.case_id, error, label(pattern))
                hooks.step(f"{files.case_id} -{label(pattern)}")
            del loaded
        if linear:
            _linear_phase(run, cases, scored, stats, targets, unreadable, errors, hooks)
    if shard:
        write_json_atomic_sidecar(report_dir, shard, synth, csv_path, scored, folders, errors)
    else:
        write_reports(run.rows, report_dir, weights_label(synth), options.ssim_border)
    return run.rows, errors


def write_json_atomic_sidecar(report_dir: Path, shard: Shard, synth: Synthesizer, csv_path: Path,
                              scored: list[CaseFiles], folders: list[str], errors: list[BrasynError]) -> None:
    from brasyn_infer.io.atomic import write_json_atomic

    write_json_atomic(report_dir / f"shard-{shard.index}-of-{shard.count}.json",
                      {"shard": {"index": shard.index, "count": shard.count}, "label": weights_label(synth),
                       "csv": csv_path.name, "cases": sorted(c.case_id for c in scored),
                       "folders": sorted(folders), "errors": [str(e) for e in errors]})


def _as_error(error: Exception, files: CaseFiles) -> BrasynError:
    if isinstance(error, BrasynError):
        return error
    return CaseError(f"cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})",
                     files.folder, "restore or re-export the case's files; the other cases were scored")


def _case_stats(synth: Synthesizer, loaded: Mapping[Modality, Volume], targets: list[Modality]) -> dict[Modality, LinearStats]:
    """One complete case's statistics in the model's normalized space, for each target modality."""
    x4, _ = synth.normalizer.stack({m: v.data for m, v in loaded.items()}, None)
    return {m: case_stats(x4, m, synth.normalizer.fill) for m in targets}


def _seg(files: CaseFiles, like: Volume, options: DryRunOptions) -> np.ndarray | None:
    """The labels of the case's segmentation file (int64), or None without one; CaseError naming the file when it
    is not on ``like``'s grid, holds values that are not whole numbers, or labels its convention does not define."""
    from brasyn_infer.evaluation.protocol import label_convention
    from brasyn_infer.io.nifti import load_labels
    from brasyn_infer.segmentation.labels import check_labels

    if files.seg is None:
        return None
    return check_labels(load_labels(files.seg, like).data, label_convention(files, options.labels), files.seg)


def _tumor(files: CaseFiles, options: DryRunOptions, seg: np.ndarray | None) -> np.ndarray | None:
    """The whole tumor of the case's labels ``seg`` in their convention (a 2024 resection cavity is not tumor);
    None without a segmentation or when it holds no tumor (the tumor figures are then empty)."""
    from brasyn_infer.evaluation.protocol import label_convention
    from brasyn_infer.segmentation.labels import tumor_mask

    if seg is None:
        return None
    mask = tumor_mask(seg, label_convention(files, options.labels), files.seg)
    return mask if mask.any() else None


def _linear_phase(run: Run, cases: list[CaseFiles], scored: list[CaseFiles], stats: StatsCache,
                  targets: list[Modality], unreadable: set[str], errors: list[BrasynError], hooks: Hooks) -> None:
    """The linear baseline: every case's statistics (those not kept yet are read; an unreadable case is left out of
    the fits), then each scored pair."""
    options, synth = run.options, run.synth
    fitting = [c for c in cases if (options.fit_on is None or c.case_id in options.fit_on) and c.case_id not in unreadable]
    missing_stats = [c for c in fitting if not stats.load(c.case_id, targets)]
    hooks.phase("linear-baseline statistics", len(missing_stats))
    for files in missing_stats:
        try:
            stats.store(files.case_id, _case_stats(synth, read_inputs(files.modalities), targets))
        except Exception as error:  # noqa: BLE001 - left out of the fits, said in the report
            failure = _as_error(error, files)
            if files.case_id not in unreadable:
                errors.append(failure)
                unreadable.add(files.case_id)
            run.error_row(files.case_id, CaseError(f"left out of the linear fits: {failure}"), method=ERROR)
        hooks.step(files.case_id)
    fit_on = {c.case_id for c in fitting if c.case_id not in unreadable}
    if options.fit_on is None:
        fit_on |= {c.case_id for c in scored}  # loco: every readable case but the one scored
    hooks.phase("linear baseline", len(scored) * len(options.drops))
    for files in scored:
        if files.case_id in unreadable:
            continue
        todo = [p for p in options.drops if any((files.case_id, label(p), m.value, "linear") not in run.done for m in p)]
        loaded = read_inputs(files.modalities) if todo else {}
        seg = _seg(files, loaded[MODALITIES[0]], options) if todo else None
        tumor = _tumor(files, options, seg)
        if todo and run.protocol is not None:
            run.protocol.begin(files, {m: v.data for m, v in loaded.items()}, loaded[MODALITIES[0]].image, real=False,
                               seg=seg)
        for pattern in todo:
            run.append(_score_linear(run, files, loaded, pattern, stats, fit_on - {files.case_id}, tumor))
            hooks.step(f"{files.case_id} -{label(pattern)}")
        del loaded


def _score_linear(run: Run, files: CaseFiles, loaded: Mapping[Modality, Volume], pattern: Pattern,
                  stats: StatsCache, fit_on: set[str], tumor: np.ndarray | None) -> list[dict]:
    """The pattern's leave-one-case-out linear fits (or on ``fit_on``), one row per synthesized modality."""
    inputs = {m: v.data for m, v in loaded.items() if m not in pattern}
    available = list(inputs)
    outputs, rows = {}, []
    for target in pattern:
        base = {"case": files.case_id, "pattern": label(pattern), "modality": target.value, "method": "linear"}
        total = stats.table.loco_stats(files.case_id, target, fit_on)
        if total is None:
            rows.append({**base, "method": ERROR, "error": f"linear {target.value}: no other case to fit on"})
            continue
        started = time.perf_counter()
        coef = solve_subset(total, target, available)
        outputs[target] = baseline_output(run.synth.normalizer, inputs, target,
                                          partial(_predict_subset, target=target, available=available, coef=coef))
        rows.append({**base, **score(outputs[target], loaded[target].data, tumor=tumor,
                                     border=run.options.ssim_border), "seconds": time.perf_counter() - started})
    if run.protocol is not None and len(outputs) == len(pattern):
        _, downstream = run.protocol.score({**inputs, **outputs})
        rows = [{**r, **downstream} if r["method"] == "linear" else r for r in rows]
    return rows


def _predict_subset(x4: np.ndarray, target: Modality, available: list[Modality], coef: np.ndarray) -> np.ndarray:
    return predict_subset(x4, target, available, coef)


def _score_pattern(run: Run, files: CaseFiles, loaded: Mapping[Modality, Volume], pattern: Pattern,
                   tmp: Path, tumor: np.ndarray | None) -> list[dict]:
    """Complete one case with ``pattern`` dropped and score each synthesized modality: the model's stages, the mean
    and copy baselines and, with the protocol, the segmentations of the completed cases."""
    case_dir = tmp / "in" / files.case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    for old in case_dir.iterdir():
        old.unlink()
    for mod, path in files.modalities.items():
        if mod not in pattern:
            (case_dir / modality_file(files.case_id, mod, files.convention)).symlink_to(path.resolve())
    entries = discover(case_dir)  # the product's own checks of the reduced case
    if entries[0].error is not None:
        raise entries[0].error
    return score_pattern(run, files, loaded, pattern, tumor, _save_path)


def _save_path(root: Path, case_id: str, pattern: Pattern, target: Modality, map_file: bool = False) -> Path:
    """Where ``--save-volumes`` keeps an output: ``ROOT/<case>/<case>-<mod>.nii.gz`` with one missing (what the
    training scripts read), ``ROOT/<case>/<pattern>/<case>-<mod>.nii.gz`` otherwise; the map beside it."""
    folder = root / case_id if len(pattern) == 1 else root / case_id / label(pattern)
    name = uncertainty_file(case_id, target, Convention.BRASYN) if map_file else modality_file(case_id, target, Convention.BRASYN)
    return folder / name
