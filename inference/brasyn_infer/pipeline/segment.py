"""``brasyn-infer segment`` as a library call: each case of INPUT (or of one shard) segmented into
``OUTPUT/<ID>-seg.nii.gz`` (``<ID>_seg.nii.gz`` for BraTS 2018-2021 names), labels in the inputs' convention.

A case must hold all four modalities, unless ``complete`` is set: then the missing ones are synthesized first
(:class:`~brasyn_infer.pipeline.completer.Completer`, the weights the options name) and segmentation runs on the
completed case; the synthesized volumes are not written. A bad case is a failed result; the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.errors import BrasynError, CaseError
from brasyn_infer.io.atomic import remove_stale_temps
from brasyn_infer.io.cases import CaseFiles, duplicate_ids, list_case_folders, scan_folder
from brasyn_infer.io.naming import seg_file
from brasyn_infer.io.nifti import output_image, read_inputs, write_atomic
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.pipeline.run import check_output_dir, output_is_complete
from brasyn_infer.runtime.segmenter import Segmenter
from brasyn_infer.segmentation.labels import LabelConvention, convention_for_files, labels_from_classes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentOptions:
    segmenter: str | Path | None = None  #: a segmenter NAME or manifest (None: the embedded one)
    complete: bool = False  #: synthesize missing modalities first
    weights: str | Path | None = None  #: the generator for ``complete`` (None: the default)
    labels: LabelConvention | None = None  #: the output's label convention (None: from the file names)
    device: Device = Device.AUTO
    resume: bool = False
    shard: Shard | None = None


@dataclass(frozen=True)
class SegmentResult:
    case_id: str
    output: Path | None
    error: BrasynError | None
    seconds: float
    skipped: bool = False
    completed: tuple[Modality, ...] = ()  #: modalities synthesized before segmenting

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SegmentHooks:
    on_cases: Callable[[int], None] | None = None
    on_case_done: Callable[[SegmentResult], None] | None = None
    on_rule: Callable[[str], None] | None = None


@dataclass
class SegmentReport:
    results: list[SegmentResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SegmentResult]:
        return [r for r in self.results if not r.ok]


def scan_cases(input_dir: Path) -> list[tuple[Path, CaseFiles | CaseError]]:
    """Each case folder of INPUT with its files, or the error that makes it unusable; two folders with one case ID
    are both errors (their outputs would share a name)."""
    found: list[tuple[Path, CaseFiles | CaseError]] = []
    for folder in list_case_folders(input_dir):
        try:
            found.append((folder, scan_folder(folder)))
        except CaseError as error:
            found.append((folder, error))
    errors = duplicate_ids([(folder, item.case_id) for folder, item in found if isinstance(item, CaseFiles)])
    return [(folder, errors.get(folder, item)) for folder, item in found]


def segment_job(input_dir: Path, output_dir: Path, options: SegmentOptions,
                hooks: SegmentHooks | None = None) -> SegmentReport:
    """Segment INPUT's cases (this shard's) into OUTPUT; see the module's docstring."""
    hooks = hooks or SegmentHooks()
    entries = scan_cases(input_dir)
    if options.shard is not None:
        if hooks.on_rule:
            hooks.on_rule(options.shard.rule(len(entries)))
        entries = options.shard.select(entries, key=lambda e: e[0].name)
    check_output_dir(output_dir, input_dir)
    names = [seg_file(item.case_id, item.convention, item.separator) for _, item in entries if isinstance(item, CaseFiles)]
    for stale in remove_stale_temps(output_dir, names):
        log.warning("removed a partial file left by an interrupted run: %s", stale.name)
    segmenter = Segmenter(options.segmenter, options.device)
    completer = None
    if hooks.on_cases:
        hooks.on_cases(len(entries))
    report = SegmentReport()
    for folder, item in entries:
        started = time.perf_counter()
        if isinstance(item, CaseError):
            result = SegmentResult(folder.name, None, item, 0.0)
        else:
            target = output_dir / seg_file(item.case_id, item.convention, item.separator)
            try:
                if options.resume and output_is_complete(target, _shape(item)):
                    result = SegmentResult(item.case_id, target, None, 0.0, skipped=True)
                else:
                    if item.absent and completer is None and options.complete:
                        from brasyn_infer.pipeline.completer import Completer
                        from brasyn_infer.pipeline.synthesizer import Synthesizer

                        completer = Completer(Synthesizer(options.weights, device=options.device))
                    done = _segment_case(item, target, segmenter, completer, options)
                    result = SegmentResult(item.case_id, target, None, time.perf_counter() - started,
                                           completed=done)
            except BrasynError as error:
                result = SegmentResult(item.case_id, None, error, time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 - one case's failure never ends the run
                log.debug("%s failed", item.case_id, exc_info=error)
                result = SegmentResult(item.case_id, None, CaseError(
                    f"segmentation failed unexpectedly ({type(error).__name__}: {error})", folder,
                    "rerun this case alone; if it fails again, report it with this message"),
                    time.perf_counter() - started)
        report.results.append(result)
        if hooks.on_case_done:
            hooks.on_case_done(result)
    return report


def _shape(files: CaseFiles) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(nib.load(str(next(iter(files.modalities.values())))).shape[:3])
    except Exception:  # noqa: BLE001 - an unreadable input fails later with a clear error
        return ()


def _segment_case(files: CaseFiles, target: Path, segmenter: Segmenter, completer, options: SegmentOptions
                  ) -> tuple[Modality, ...]:
    """Read, complete if asked, segment, write; returns the modalities synthesized."""
    absent = tuple(files.absent)
    if absent and not options.complete:
        raise CaseError(f"{', '.join(m.value for m in absent)} missing: segmentation needs all four modalities",
                        files.folder, "add --complete to synthesize them first, or provide them")
    loaded = read_inputs(files.modalities)
    volumes: dict[Modality, np.ndarray] = {m: v.data for m, v in loaded.items()}
    if absent:
        completed = completer.complete(volumes, absent, folder=files.folder)
        for modality, stages in completed.items():
            volumes[modality] = stages.get("refined", stages["generator"])
        log.info("%s: %s synthesized with %s before segmenting", files.case_id,
                 ", ".join(m.value for m in absent), completer.for_pattern(absent).manifest.name)
    classes = segmenter.segment({m: volumes[m] for m in MODALITIES})
    convention = options.labels or convention_for_files(files.convention)
    like = next(iter(loaded.values())).image
    write_atomic(output_image(labels_from_classes(classes, convention), like, np.uint8), target)
    return absent
