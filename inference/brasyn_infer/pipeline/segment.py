"""``brasyn-infer segment`` as a library call: each case of INPUT (or of one shard) segmented into
``OUTPUT/<ID>-seg.nii.gz`` (``<ID>_seg.nii.gz`` for BraTS 2018-2021 names), labels in the inputs' convention.

A case with all four modalities goes to the full segmenter. A case that lacks some goes by one of two **routes**:

- ``direct``: the missing-sequence segmenter (``weights/segmenter-any``, a manifest with ``availability``) reads the
  sequences that are there;
- ``complete``: the missing ones are synthesized first (:class:`~brasyn_infer.pipeline.completer.Completer`, the
  generator the options name; the synthesized volumes are not written), then the full segmenter runs.

``route="auto"`` takes, per pattern of missing sequences, the route recorded in the missing-sequence segmenter's
manifest (``routes``: chosen by held-out Dice, with the scores it was chosen on), ``direct`` where it records none;
without a missing-sequence segmenter, ``complete``. A case with no modality at all is refused.

Each output's NIfTI header (``descrip``) records what made it: the route, the segmenters' and the generator's
sha256 and the label convention. ``resume`` skips an output only when that record matches this run; one made
otherwise is redone. A bad case is a failed result; the others still run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.errors import BrasynError, CaseError, UsageError
from brasyn_infer.io.atomic import remove_stale_temps
from brasyn_infer.io.cases import CaseFiles, duplicate_ids, list_case_folders, scan_folder
from brasyn_infer.io.naming import seg_file
from brasyn_infer.io.nifti import output_image, read_inputs, write_atomic
from brasyn_infer.orchestration.shards import Shard
from brasyn_infer.pipeline.run import check_output_dir
from brasyn_infer.runtime.manifest import companion_sha256
from brasyn_infer.runtime.segmenter import Segmenter, missing_sequence_segmenter
from brasyn_infer.runtime.segmenter_manifest import (
    ROUTE_COMPLETE,
    ROUTE_DIRECT,
    ROUTE_FULL,
    Route,
    routes_key,
)
from brasyn_infer.segmentation.labels import LabelConvention, convention_for_files, labels_from_classes

log = logging.getLogger(__name__)

#: the prefix of an output's ``descrip``: what made it follows (:func:`record`)
RECORD_PREFIX = "brasyn-infer segment "



@dataclass(frozen=True)
class SegmentOptions:
    segmenter: str | Path | None = None  #: the full segmenter: a NAME or manifest (None: the embedded one)
    #: the missing-sequence segmenter (None: the embedded ``segmenter-any`` where it is installed)
    direct_segmenter: str | Path | None = None
    route: Route = Route.AUTO
    weights: str | Path | None = None  #: the generator of the ``complete`` route (None: the default)
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
    route: str = ROUTE_FULL  #: ``full`` (all four), ``direct`` or ``complete``
    absent: tuple[Modality, ...] = ()  #: the modalities the case lacks

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


class Segmenters:
    """The models a segment job may need, each opened on first use: the full segmenter, the missing-sequence one
    and the generator (through a Completer)."""

    def __init__(self, options: SegmentOptions) -> None:
        self.options = options
        self.full = Segmenter(options.segmenter, options.device)
        self._direct: Segmenter | None = self.full if self.full.direct else None
        self._direct_checked = self._direct is not None
        self._completer = None
        self._records: dict[tuple[str, LabelConvention], str] = {}

    @property
    def direct(self) -> Segmenter | None:
        """The missing-sequence segmenter: ``--direct-segmenter``, the full one if it is such, or the embedded
        ``segmenter-any`` where installed (None without one, unless it was named: then WeightsError)."""
        if not self._direct_checked:
            self._direct_checked = True
            self._direct = missing_sequence_segmenter(self.options.direct_segmenter, self.options.device)
        return self._direct

    @property
    def completer(self):
        if self._completer is None:
            from brasyn_infer.pipeline.completer import Completer
            from brasyn_infer.pipeline.synthesizer import Synthesizer

            self._completer = Completer(Synthesizer(self.options.weights, device=self.options.device))
        return self._completer

    def route(self, absent: tuple[Modality, ...]) -> str:
        """The route of a case lacking ``absent`` (``full`` when it lacks nothing, unless the missing-sequence
        segmenter's manifest records ``direct`` for complete cases)."""
        forced = self.options.route
        if self.full.direct:
            return ROUTE_DIRECT
        if not absent:
            chosen = self.direct.manifest.routes.get(routes_key(absent), {}) if forced is Route.AUTO and self.direct \
                else {}
            return ROUTE_DIRECT if chosen.get("route") == ROUTE_DIRECT else ROUTE_FULL
        if forced is not Route.AUTO:
            return forced.value
        if self.direct is None:
            return ROUTE_COMPLETE
        return self.direct.manifest.routes.get(routes_key(absent), {}).get("route", ROUTE_DIRECT)

    def record(self, route: str, convention: LabelConvention) -> str:
        """The ``descrip`` of an output made by ``route`` with labels in ``convention``: a hash of every model
        that made it (80 characters at most). The same for every case of the job: computed once per route and
        convention (the companion's manifest is read once, not per case)."""
        if (route, convention) in self._records:
            return self._records[(route, convention)]
        made_by: dict[str, object] = {"route": route, "labels": convention.value}
        if route in (ROUTE_FULL, ROUTE_COMPLETE):
            made_by["segmenter"] = self.full.manifest.sha256
        if route == ROUTE_DIRECT:
            made_by["segmenter"] = self.direct.manifest.sha256 if self.direct else None
        if route == ROUTE_COMPLETE:
            primary = self.completer.primary.manifest
            made_by["generator"] = [primary.sha256, primary.companion, json.dumps(primary.copy_blend, sort_keys=True)]
            if primary.companion:  # its graph completes several missing (and companion_targets): a change redoes
                made_by["companion"] = [list(primary.companion_targets), companion_sha256(primary)]
        digest = hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:16]
        self._records[(route, convention)] = f"{RECORD_PREFIX}{route} {convention.value} {digest}"
        return self._records[(route, convention)]


def made_by(path: Path) -> str | None:
    """The record in an existing output's header (None: unreadable, not ours, or cut short)."""
    try:
        image = nib.load(str(path))
        np.asarray(image.dataobj)  # a file cut short fails here
        text = bytes(image.header["descrip"]).decode("ascii", "replace").rstrip("\x00").strip()
    except Exception:  # noqa: BLE001 - any unreadable file is simply redone
        return None
    return text if text.startswith(RECORD_PREFIX) else None


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
    models = Segmenters(options)
    if options.route is Route.DIRECT and models.direct is None:
        raise UsageError("--route direct: no missing-sequence segmenter is installed", options.direct_segmenter,
                         "name one with --direct-segmenter, or use --route complete")
    if hooks.on_cases:
        hooks.on_cases(len(entries))
    report = SegmentReport()
    for folder, item in entries:
        started = time.perf_counter()
        if isinstance(item, CaseError):
            result = SegmentResult(folder.name, None, item, 0.0)
        else:
            target = output_dir / seg_file(item.case_id, item.convention, item.separator)
            absent = tuple(item.absent)
            try:
                route = models.route(absent)
                convention = options.labels or convention_for_files(item.convention)
                record = models.record(route, convention)
                if options.resume and made_by(target) == record:
                    result = SegmentResult(item.case_id, target, None, 0.0, skipped=True, route=route, absent=absent)
                else:
                    if options.resume and target.exists():
                        log.info("%s: %s was made otherwise (another route, model or --labels): redone",
                                 item.case_id, target.name)
                    done = _segment_case(item, target, models, route, convention, record)
                    result = SegmentResult(item.case_id, target, None, time.perf_counter() - started,
                                           completed=done, route=route, absent=absent)
            except BrasynError as error:
                result = SegmentResult(item.case_id, None, error, time.perf_counter() - started, absent=absent)
            except Exception as error:  # noqa: BLE001 - one case's failure never ends the run
                log.debug("%s failed", item.case_id, exc_info=error)
                result = SegmentResult(item.case_id, None, CaseError(
                    f"segmentation failed unexpectedly ({type(error).__name__}: {error})", folder,
                    "rerun this case alone; if it fails again, report it with this message"),
                    time.perf_counter() - started, absent=absent)
        report.results.append(result)
        if hooks.on_case_done:
            hooks.on_case_done(result)
    return report


def _segment_case(files: CaseFiles, target: Path, models: Segmenters, route: str, convention: LabelConvention,
                  record: str) -> tuple[Modality, ...]:
    """Read, complete or not as ``route`` says, segment, write with ``record`` in the header; returns the
    modalities synthesized."""
    absent = tuple(files.absent)  # never all four: scan_folder refuses a folder without a modality
    loaded = read_inputs(files.modalities)
    volumes: dict[Modality, np.ndarray] = {m: v.data for m, v in loaded.items()}
    synthesized: tuple[Modality, ...] = ()
    if route == ROUTE_DIRECT:
        classes = models.direct.segment(volumes)
        log.info("%s: route direct (%s on %s)", files.case_id, models.direct.manifest.name,
                 "+".join(m.value for m in MODALITIES if m in volumes))
    else:
        if absent:
            from brasyn_infer.pipeline.synthesizer import final_stage

            completer = models.completer
            completed = completer.complete(volumes, absent, folder=files.folder)
            for modality, stages in completed.items():
                volumes[modality] = final_stage(stages)
            synthesized = absent
            log.info("%s: route complete (%s synthesized with %s, then %s)", files.case_id,
                     ", ".join(m.value for m in absent), completer.for_pattern(absent).manifest.name,
                     models.full.manifest.name)
        classes = models.full.segment({m: volumes[m] for m in MODALITIES})
    like = next(iter(loaded.values())).image
    image = output_image(labels_from_classes(classes, convention), like, np.uint8)
    image.header["descrip"] = record.encode("ascii")[:79]
    write_atomic(image, target)
    return synthesized
