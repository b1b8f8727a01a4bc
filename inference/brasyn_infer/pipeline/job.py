"""``brasyn-infer run`` as a library call: INPUT's cases (or one shard of them) into OUTPUT, with the checks of
the folders, the clean-up of what an interrupted run of the same cases left, and the run summary.

:func:`run_job` is what the CLI's ``run`` command calls; the CLI only parses options and shows progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brasyn_infer.constants import Device, View
from brasyn_infer.errors import BrasynError, UsageError
from brasyn_infer.io.atomic import remove_stale_temps, write_json_atomic
from brasyn_infer.io.cases import CaseEntry, discover
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.orchestration.summary import FAILED, SKIPPED, WRITTEN, case_record, check_summary_path, run_summary
from brasyn_infer.pipeline.run import CaseResult, check_output_dir, check_side_dir, run
from brasyn_infer.pipeline.synthesizer import Synthesizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Everything ``brasyn-infer run`` takes besides INPUT and OUTPUT (None: the weights' manifest decides)."""

    weights: str | Path | None = None
    views: Sequence[View] | None = None
    batch_size: int | None = None
    device: Device = Device.AUTO
    fp16: bool = False
    resume: bool = False
    refine: bool | None = None
    refiner: str | None = None
    tta: bool | None = None
    prior: bool = True
    tone: bool = True
    enhance: bool | None = None
    guide: str | None = None
    shard: Shard | None = None
    summary: Path | None = None
    uncertainty: Path | None = None


@dataclass
class Hooks:
    """Progress callbacks (all optional): the shard rule, the cases found, each case's start (with its work
    total), batches done, each case's result, input-check warnings, and the synthesizer once it is loaded."""

    on_rule: Callable[[str], None] | None = None
    on_cases: Callable[[int], None] | None = None
    on_case_start: Callable[..., None] | None = None
    on_batch: Callable[[int], None] | None = None
    on_case_done: Callable[[CaseResult], None] | None = None
    on_warning: Callable[[str], None] | None = None
    on_ready: Callable[[Synthesizer], None] | None = None


@dataclass
class JobReport:
    """What a run did: one result per case of this shard, in INPUT's order."""

    entries: list[CaseEntry] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]


def summary_file(summary: Path, shard: Shard | None) -> Path:
    """``--summary`` names a file, or a folder shared by shards: ``summary-I-of-N.json`` in it."""
    if summary.is_dir():
        return summary / (f"summary-{shard.index}-of-{shard.count}.json" if shard else "summary.json")
    return summary


def run_job(input_dir: Path, output_dir: Path, options: RunOptions, hooks: Hooks | None = None) -> JobReport:
    """Synthesize the missing modality of INPUT's cases (this shard's) into OUTPUT; returns what happened.

    Raises :class:`~brasyn_infer.errors.UsageError` for options that cannot work (before anything is written)
    and :class:`~brasyn_infer.errors.BrasynError` when INPUT, OUTPUT or the weights cannot be used (the summary,
    when asked for, records it). A case that fails is a failed result; the others still run."""
    hooks = hooks or Hooks()
    started = time.time()
    shard = options.shard
    summary = summary_file(options.summary, shard) if options.summary is not None else None
    try:
        if summary is not None:
            check_summary_path(summary, output_dir)
        if options.uncertainty is not None:
            check_side_dir(options.uncertainty, output_dir, input_dir, "--uncertainty")
    except BrasynError as error:
        raise UsageError(str(error)) from None
    report = JobReport()
    folders: list[str] = []
    synth: Synthesizer | None = None

    def write_summary(error: str | None = None) -> None:
        if summary is None:
            return
        records = [_record(e, r) for e, r in zip(report.entries, report.results, strict=True)]
        write_json_atomic(summary, run_summary(
            input_dir=input_dir, output_dir=output_dir, shard=shard, all_folders=folders, records=records,
            weights=None if synth is None else synth.describe(), started=started, error=error))

    try:
        entries = discover(input_dir)
        folders = [e.folder.name for e in entries]
        if shard is not None:
            if hooks.on_rule:
                hooks.on_rule(shard.rule(len(entries)))
            entries = shard.select(entries, key=lambda e: e.folder.name)
        report.entries = entries
        check_output_dir(output_dir, input_dir)
        cases = [e.case for e in entries if e.case is not None]
        own = {output_dir: [name for c in cases for name in c.output_names()]}
        if options.uncertainty is not None:
            check_output_dir(options.uncertainty, input_dir)
            own[options.uncertainty] = [name for c in cases for name in c.uncertainty_names()]
        for folder, names in own.items():
            for stale in remove_stale_temps(folder, names):
                log.warning("removed a partial file left by an interrupted run: %s", stale.name)
        synth = Synthesizer(options.weights, options.views, options.batch_size, options.device, fp16=options.fp16,
                            refine=options.refine, refiner=options.refiner, tta=options.tta, prior=options.prior,
                            uncertainty=options.uncertainty is not None, tone=options.tone,
                            enhance=options.enhance, guide=options.guide)
    except BrasynError as error:
        report.results = []
        report.entries = []
        write_summary(str(error))
        raise
    if hooks.on_ready:
        hooks.on_ready(synth)
    if hooks.on_cases:
        hooks.on_cases(len(entries))
    report.results = run(entries, synth, output_dir, options.resume, hooks.on_case_start, hooks.on_batch,
                         hooks.on_case_done, hooks.on_warning, options.uncertainty)
    write_summary()
    return report


def _record(entry: CaseEntry, result: CaseResult) -> dict:
    """One case's line of the run summary."""
    status = FAILED if not result.ok else SKIPPED if result.skipped else WRITTEN
    return case_record(result.case_id, entry.folder.name, status, result.seconds, result.output,
                       None if result.ok else f"{result.case_id}: {result.error}")
