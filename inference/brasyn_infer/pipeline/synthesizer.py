"""The pipeline, top to bottom: find cases -> read -> normalize -> generate -> de-normalize -> write.

Reading the next case runs in a thread behind a bounded queue and writing runs in another, so
that the model (the expensive part) is never waiting for gzip. Each case either yields its output
file or a :class:`~brasyn_infer.errors.BrasynError`; one bad case never stops the run.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brasyn_infer.io.cases import Case, CaseEntry
from brasyn_infer.io.checks import check_case
from brasyn_infer.constants import Device, Modality, View
from brasyn_infer.errors import BrasynError, CaseError, OutputError, WeightsError
from brasyn_infer.synthesis.generate import generate_views, generate_volume, generate_windows, slice_count, window_total
from brasyn_infer.io.nifti import Volume, load_volume, output_image, read_inputs, write_atomic
from brasyn_infer.runtime.manifest import WINDOW3D, Manifest, load_manifest, verify
from brasyn_infer.synthesis.normalize import Normalizer, background_mask
from brasyn_infer.synthesis.refine import Refiner, window_count
from brasyn_infer.runtime.sessions import GeneratorSession, trt_shapes
from brasyn_infer.synthesis.trust import Trust, blend, features, laplace_scale, linear_prior
from brasyn_infer.synthesis.windows import BlendMode

log = logging.getLogger(__name__)


class Synthesizer:
    """Weights + runtime knobs: turns three input volumes into the missing one (in scanner units).

    Built in two steps like nnU-Net's predictor: the constructor takes the knobs, the weights are
    loaded (and their sha256 verified) once.
    """

    def __init__(self, weights: str | Path | None = None, views: View | Sequence[View] | None = None,
                 batch_size: int | None = None, device: Device = Device.AUTO, threads: int | None = None,
                 fp16: bool = False, refine: bool | None = None, refiner: str | Path | None = None,
                 tta: bool | None = None, prior: bool = True, uncertainty: bool | None = False) -> None:
        """``refine``: run the 3D Refiner after the generator (None: the manifest's default);
        ``refiner``: the refiner's NAME or manifest path instead of the one the manifest names (implies refine);
        ``tta``: flip test-time augmentation (None: the manifest's ``trust.tta``, else off); ``prior``: blend
        with the manifest's linear prior where it has one (``trust.blend``); ``uncertainty``: also produce the
        voxel-wise uncertainty map (stage ``"uncertainty"``; None: when the weights make one possible)."""
        self.manifest: Manifest = load_manifest(weights)
        verify(self.manifest)
        self.normalizer = Normalizer.from_manifest(self.manifest.normalization)
        self.trust = Trust.from_manifest(self.manifest.trust)
        self.tta = bool(self.manifest.trust.get("tta", False)) if tta is None else tta
        self.prior = prior
        if isinstance(views, View):
            views = (views,)
        self.three_d = self.manifest.kind == WINDOW3D
        if self.three_d and views:
            log.warning("--view does not apply to a 3D (window3d) generator: ignored")
        #: views generated and averaged (one view: plain slice-wise synthesis); () for a 3D generator
        self.views: tuple[View, ...] = () if self.three_d else (tuple(dict.fromkeys(views)) if views else self.manifest.default_views)
        self.session = GeneratorSession(self.manifest.onnx_path, device, batch_size or (1 if self.three_d else None),
                                        threads, fp16=fp16, shapes=trt_shapes(self.manifest))
        self.batch_size = min(self.session.batch_size, int(self.manifest.config.get("max_batch", self.session.batch_size)))
        block = self.manifest.refiner
        if refine is None:
            refine = refiner is not None or bool(block.get("enabled", False))
        spec = refiner or block.get("weights")
        if refine and not spec:
            raise WeightsError("these weights name no refiner", self.manifest.path,
                               "run without --refine, or pass --refiner NAME|PATH")
        self.refiner: Refiner | None = Refiner(spec, self.manifest.path.parent, device, threads) if refine else None
        #: volumes an uncalibrated map takes the spread of: each view, and each view's two passes with --tta
        spread_members = len(self.views) * (1 + self.tta)
        if uncertainty is None:
            uncertainty = bool(self.trust.uncertainty) or spread_members >= 2
        self.uncertainty = uncertainty
        if self.tta and self.three_d:
            raise WeightsError("--tta applies to 2D (slice2d) generators only", self.manifest.path, "run without --tta")
        if uncertainty and not self.trust.uncertainty and spread_members < 2:
            raise WeightsError("these weights have no fitted uncertainty model (trust.uncertainty), and one view "
                               "without --tta gives no spread to measure", self.manifest.path,
                               "add views (--view sagittal --view axial ...) or --tta, or fit one with training/fit_trust.py")
        if uncertainty and self.trust.uncertainty and set(self.views) != set(self.manifest.default_views):
            log.warning("the uncertainty model was fitted with the views %s; with %s it is not calibrated",
                        "+".join(v.value for v in self.manifest.default_views), self.view_label)
        self.last_seconds: dict[str, float] = {}

    @property
    def view_label(self) -> str:
        """``sagittal``, or ``sagittal+axial+coronal`` when views are fused; ``3d windows of XxYxZ``."""
        if self.three_d:
            return "3d windows of " + "x".join(map(str, self.manifest.window))
        return "+".join(v.value for v in self.views)

    def work_total(self, volumes: Mapping[Modality, np.ndarray]) -> int:
        """Slices (2D) or windows (3D) one case takes: the progress bar's total."""
        shape = next(iter(volumes.values())).shape
        if not self.three_d:
            return slice_count(shape, self.views)
        background = np.sum([v <= 0 for v in volumes.values()], axis=0) >= 2
        plan = self.manifest.window_plan
        return window_total(shape, background, self.manifest.window, plan["overlap"], plan["placement"], plan["crop"])

    def generate(self, x4: np.ndarray, missing: Modality, background: np.ndarray,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """The generator on the normalized ``(4, X, Y, Z)`` input -> ``(X, Y, Z)`` normalized."""
        fill = self.normalizer.fill
        if not self.three_d:
            return generate_volume(self.session, x4, missing, self.views, self.batch_size, on_batch, fill=fill,
                                   tta=self.tta)
        plan = self.manifest.window_plan
        return generate_windows(lambda x, m: self.session(x, missing=m), x4, missing, background, self.manifest.window,
                                plan["overlap"], BlendMode(plan["blend"]), plan["placement"], plan["crop"],
                                self.batch_size, fill, on_batch)

    @property
    def label(self) -> str:
        """What runs, for logs and reports: weights, views, refiner."""
        refiner = f", refiner {self.refiner.manifest.name}" if self.refiner else ""
        return f"{self.manifest.name}, {self.view_label}{refiner}"

    def describe(self) -> dict[str, object]:
        """What runs, for run summaries: weights and refiner with their sha256, views."""
        refiner = self.refiner.manifest if self.refiner else None
        return {"name": self.manifest.name, "onnx": self.manifest.onnx, "sha256": self.manifest.sha256,
                "views": [v.value for v in self.views],
                "refiner": {"name": refiner.name, "sha256": refiner.sha256} if refiner else None}

    def synthesize_stages(self, volumes: Mapping[Modality, np.ndarray], missing: Modality,
                          on_batch: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Like :meth:`synthesize`, keeping each stage: ``{"generator": ..., "refined": ...}``
        (``refined`` only with a refiner); each stage's seconds go to ``self.last_seconds``."""
        started = time.perf_counter()
        norm, trust = self.normalizer, self.trust
        x4, scales = norm.stack(volumes, missing)
        background = background_mask(x4, missing, norm.fill)
        members: list[np.ndarray] = []
        if self.uncertainty and not self.three_d and (not trust.calibrated(missing) or "views" in trust.features):
            # the members' spread is needed: keep each view (and, for an uncalibrated map, each TTA pass)
            members = generate_views(self.session, x4, missing, self.views, self.batch_size, on_batch, norm.fill,
                                     tta=self.tta, split_tta=not trust.calibrated(missing))
            y = np.mean(members, axis=0) if len(members) > 1 else members[0]
        else:
            y = self.generate(x4, missing, background, on_batch)
        prior = None
        if missing in trust.linear and ((self.prior and missing in trust.blend) or self.uncertainty):
            prior = linear_prior(x4, missing, trust.linear[missing])
        del x4
        generated = y
        if prior is not None and self.prior and missing in trust.blend:
            y = blend(y, prior, trust.blend[missing])
        stages = {}
        if self.uncertainty:
            stages["uncertainty"] = self._uncertainty(members or [generated], y, prior, background, missing, scales)
        stages["generator"] = norm.restore(y, background, missing, scales)
        self.last_seconds = {"generator": time.perf_counter() - started}
        if self.refiner is not None:
            started = time.perf_counter()
            log.info("refining %s (%s windows of %s)", missing.value,
                     window_count(background, self.refiner.manifest.window,
                                  self.refiner.manifest.overlap), "x".join(map(str, self.refiner.manifest.window)))
            stages["refined"] = self.refiner(volumes, stages["generator"], background, missing)
            self.last_seconds["refined"] = time.perf_counter() - started
        return stages

    def _uncertainty(self, members: list[np.ndarray], output: np.ndarray, prior: np.ndarray | None,
                     background: np.ndarray, missing: Modality, scales: Mapping[Modality, object]) -> np.ndarray:
        """The uncertainty map in the output's units, ``(X, Y, Z)`` float32, background 0: the fitted Laplace
        scale (``trust.uncertainty``), else the members' standard deviation (uncalibrated)."""
        trust = self.trust
        if trust.calibrated(missing):
            feats = features(members, output, prior, background, self.normalizer.fill, trust.features, trust.smooth)
            scale = laplace_scale(feats, trust.uncertainty[missing])
        elif len(members) > 1:
            scale = np.std(np.stack(members), axis=0).astype(np.float32)
        else:
            raise WeightsError(f"no uncertainty model for {missing.value} and a single volume to measure spread on",
                               self.manifest.path, "add views (--view ...) or fit one with training/fit_trust.py")
        scale *= np.float32(self.normalizer.slope(missing, scales))
        scale[background] = 0
        return scale

    def synthesize(self, volumes: Mapping[Modality, np.ndarray], missing: Modality,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """``volumes``: the three available ``(X, Y, Z)`` arrays -> the missing one, ``(X, Y, Z)`` float32, background 0."""
        stages = self.synthesize_stages(volumes, missing, on_batch)
        return stages.get("refined", stages["generator"])


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    output: Path | None
    error: BrasynError | None
    seconds: float
    #: already complete under ``--resume``: not redone
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def output_is_complete(path: Path, shape: tuple[int, ...]) -> bool:
    """``--resume``: does ``path`` load completely with the expected shape?"""
    try:
        return load_volume(path).data.shape == tuple(shape)
    except Exception:  # noqa: BLE001 - any unreadable file is simply redone
        return False


def _as_case_error(error: Exception, case: Case, stage: str) -> BrasynError:
    if isinstance(error, BrasynError):
        return error
    log.debug("%s failed", case.case_id, exc_info=error)
    return CaseError(f"{stage} failed unexpectedly ({type(error).__name__}: {error})", case.folder,
                     "rerun this case alone; if it fails again, report it with this message")


#: a read case: its volumes and its input checks' warnings
Loaded = tuple[dict[Modality, Volume], list[str]]


def _read(case: Case) -> Loaded:
    volumes = read_inputs(case.inputs)
    try:
        warnings = check_case(volumes)
    except Exception as error:  # noqa: BLE001 - the checks never fail a case that can be synthesized
        warnings = [f"{case.folder}: the input checks could not run ({type(error).__name__}: {error})"]
    return volumes, warnings


def _prefetch(cases: list[Case], depth: int = 1) -> Iterator[tuple[Case, Loaded | BrasynError]]:
    """Yield ``(case, (volumes, warnings) or error)`` in order, reading and checking up to ``depth`` cases
    ahead in a thread (the input checks overlap the model's work too)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        for case in cases:
            if stop.is_set():
                return
            try:
                item: Loaded | BrasynError = _read(case)
            except BrasynError as error:
                item = error
            except Exception as error:  # noqa: BLE001 - report, do not kill the reader
                item = CaseError(f"unexpected error while reading ({error!r})", case.folder, "report this bug")
            while not stop.is_set():
                try:
                    slots.put((case, item), timeout=0.2)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=reader, name="brasyn-reader", daemon=True)
    thread.start()
    try:
        for _ in cases:
            while True:
                try:
                    yield slots.get(timeout=0.5)
                    break
                except queue.Empty:
                    if not thread.is_alive() and slots.empty():
                        raise RuntimeError("reader thread died") from None
    finally:
        stop.set()


def run(
    entries: Iterable[CaseEntry],
    synthesizer: Synthesizer,
    output_dir: Path,
    resume: bool = False,
    on_case_start: Callable[[Case, int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_case_done: Callable[[CaseResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    uncertainty_dir: Path | None = None,
) -> list[CaseResult]:
    """Process every entry into ``output_dir``; returns one result per entry, in input order.

    Each case's inputs are checked (:func:`brasyn_infer.io.checks.check_case`) as it starts; the warnings go to
    ``on_warning`` (default: the log) and never stop the case. ``uncertainty_dir`` (with a synthesizer built
    with ``uncertainty=True``): each case's uncertainty map goes there as ``<ID>-<mod>-uncertainty.nii.gz``."""
    warn = on_warning or log.warning
    results: dict[str, CaseResult] = {}
    order: list[str] = []
    todo: list[Case] = []

    def finish(result: CaseResult) -> None:
        results[result.case_id] = result
        if on_case_done:
            on_case_done(result)

    for entry in entries:
        order.append(entry.case_id)
        if entry.case is None:
            finish(CaseResult(entry.case_id, None, entry.error, 0.0))
        elif resume and _complete(entry.case, output_dir, uncertainty_dir):
            log.info("%s: output exists and is complete, skipped (--resume)", entry.case_id)
            finish(CaseResult(entry.case_id, output_dir / entry.case.output_name(), None, 0.0, skipped=True))
        else:
            todo.append(entry.case)

    pending: list[tuple[Case, float, Future]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brasyn-writer") as writer:
        def drain(block: bool) -> None:
            while pending and (block or pending[0][2].done()):
                case, started, future = pending.pop(0)
                try:
                    future.result()
                    finish(CaseResult(case.case_id, output_dir / case.output_name(), None, time.perf_counter() - started))
                except Exception as error:  # noqa: BLE001 - one case's failure never ends the run
                    finish(CaseResult(case.case_id, None, _as_case_error(error, case, "writing"),
                                      time.perf_counter() - started))

        for case, item in _prefetch(todo):
            started = time.perf_counter()
            if isinstance(item, BrasynError):
                finish(CaseResult(case.case_id, None, item, 0.0))
                continue
            loaded, warnings = item
            for warning in warnings:
                warn(warning)
            if on_case_start:
                on_case_start(case, synthesizer.work_total({m: v.data for m, v in loaded.items()}))
            try:
                stages = synthesizer.synthesize_stages({m: v.data for m, v in loaded.items()}, case.missing, on_batch)
            except Exception as error:  # noqa: BLE001 - one case's failure never ends the run
                finish(CaseResult(case.case_id, None, _as_case_error(error, case, "synthesis"),
                                  time.perf_counter() - started))
                continue
            drain(block=len(pending) >= 1)  # at most one write in flight: bounded memory
            like = next(iter(loaded.values())).image
            images = [(output_image(stages.get("refined", stages["generator"]), like), output_dir / case.output_name())]
            if uncertainty_dir is not None and "uncertainty" in stages:  # written first: the output marks completion
                images.insert(0, (output_image(stages["uncertainty"], like), uncertainty_dir / case.uncertainty_name()))
            del stages
            pending.append((case, started, writer.submit(_write_all, images)))
        drain(block=True)
    return [results[case_id] for case_id in order]


def _write_all(images: list) -> None:
    for image, target in images:
        write_atomic(image, target)


def _complete(case: Case, output_dir: Path, uncertainty_dir: Path | None) -> bool:
    """``--resume``: the case's output (and its uncertainty map, when asked for) load completely."""
    shape = _input_shape(case)
    return output_is_complete(output_dir / case.output_name(), shape) and (
        uncertainty_dir is None or output_is_complete(uncertainty_dir / case.uncertainty_name(), shape))


def _input_shape(case: Case) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(nib.load(str(next(iter(case.inputs.values())))).shape[:3])
    except Exception:  # noqa: BLE001 - an unreadable input fails later with a clear error
        return ()


def check_output_dir(output_dir: Path, input_dir: Path) -> None:
    """OUTPUT must not be INPUT or inside it, and must be writable; created if absent."""
    out, inp = output_dir.resolve(), input_dir.resolve()
    if out == inp or inp in out.parents:
        raise OutputError("output folder is the input folder or inside it", output_dir,
                          "choose an output folder outside the input (the organizers load every file in it)")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # a probe of its own (shards writing one OUTPUT at once must not remove each other's)
        handle, probe = tempfile.mkstemp(prefix=".brasyn-write-test-", dir=output_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"output folder is not writable ({error.strerror or error})", output_dir,
                          "choose a writable folder, or fix its permissions") from error


def check_side_dir(folder: Path, output_dir: Path, input_dir: Path, option: str) -> None:
    """A folder for side outputs (``--uncertainty``): never OUTPUT or inside it (the organizers load every file
    there), never INPUT or inside it."""
    side = folder.resolve()
    for other, what in ((output_dir.resolve(), "the output folder"), (input_dir.resolve(), "the input folder")):
        if side == other or other in side.parents:
            raise OutputError(f"{option} folder is {what} or inside it", folder,
                              f"choose a folder outside {what} (e.g. a sibling of OUTPUT)")
