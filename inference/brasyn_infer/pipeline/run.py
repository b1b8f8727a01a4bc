"""The run over many cases: find -> read (a thread ahead) -> synthesize -> write (a thread behind).

Reading the next case (and its input checks) runs in a thread behind a bounded queue and writing runs in
another, so that the model (the expensive part) is never waiting for gzip. Each case either yields its
output file or a :class:`~brasyn_infer.errors.BrasynError`; one bad case never stops the run.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from brasyn_infer.constants import Modality
from brasyn_infer.errors import BrasynError, CaseError, OutputError
from brasyn_infer.io.cases import Case, CaseEntry
from brasyn_infer.io.checks import check_case
from brasyn_infer.io.nifti import Volume, load_volume, output_image, read_inputs, write_atomic
from brasyn_infer.pipeline.completer import Completer
from brasyn_infer.pipeline.synthesizer import Synthesizer, final_stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    output: Path | None  #: the (first) prediction written
    error: BrasynError | None
    seconds: float
    #: already complete under ``--resume``: not redone
    skipped: bool = False
    #: every prediction of the case (one per absent modality); () means ``(output,)``
    outputs: tuple[Path, ...] = ()

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
    synthesizer: Synthesizer | Completer,
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
    with ``uncertainty=True``): each case's uncertainty map goes there as ``<ID>-<mod>-uncertainty.nii.gz``. A case
    that lacks two or three modalities gets one prediction each (:class:`~brasyn_infer.pipeline.completer.Completer`)."""
    completer = synthesizer if isinstance(synthesizer, Completer) else Completer(synthesizer)
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
            finish(CaseResult(entry.case_id, output_dir / entry.case.output_name(), None, 0.0, skipped=True,
                              outputs=_outputs(entry.case, output_dir)))
        else:
            todo.append(entry.case)

    pending: list[tuple[Case, float, Future]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brasyn-writer") as writer:
        def drain(block: bool) -> None:
            while pending and (block or pending[0][2].done()):
                case, started, future = pending.pop(0)
                try:
                    future.result()
                    finish(CaseResult(case.case_id, output_dir / case.output_name(), None, time.perf_counter() - started,
                                      outputs=_outputs(case, output_dir)))
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
            volumes = {m: v.data for m, v in loaded.items()}
            try:
                if on_case_start:
                    on_case_start(case, completer.work_total(volumes, case.absent, case.folder))
                completed = completer.complete(volumes, case.absent, on_batch, case.folder)
            except Exception as error:  # noqa: BLE001 - one case's failure never ends the run
                finish(CaseResult(case.case_id, None, _as_case_error(error, case, "synthesis"),
                                  time.perf_counter() - started))
                continue
            drain(block=len(pending) >= 1)  # at most one write in flight: bounded memory
            like = next(iter(loaded.values())).image
            images, maps = [], []
            for target, name, map_name in zip(case.absent, case.output_names(), case.uncertainty_names(), strict=True):
                stages = completed[target]
                images.append((output_image(final_stage(stages), like), output_dir / name))
                if uncertainty_dir is not None and "uncertainty" in stages:
                    maps.append((output_image(stages["uncertainty"], like), uncertainty_dir / map_name))
            images = maps + images  # the maps first: the outputs mark completion
            del completed, stages
            pending.append((case, started, writer.submit(_write_all, images)))
        drain(block=True)
    return [results[case_id] for case_id in order]


def _write_all(images: list) -> None:
    for image, target in images:
        write_atomic(image, target)


def _outputs(case: Case, output_dir: Path) -> tuple[Path, ...]:
    return tuple(output_dir / name for name in case.output_names())


def _complete(case: Case, output_dir: Path, uncertainty_dir: Path | None) -> bool:
    """``--resume``: every output of the case (and its uncertainty maps, when asked for) load completely."""
    shape = _input_shape(case)
    return all(output_is_complete(output_dir / name, shape) for name in case.output_names()) and (
        uncertainty_dir is None or all(output_is_complete(uncertainty_dir / name, shape)
                                       for name in case.uncertainty_names()))


def _input_shape(case: Case) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(nib.load(str(next(iter(case.inputs.values())))).shape[:3])
    except Exception:  # noqa: BLE001 - an unreadable input fails later with a clear error
        return ()


def check_output_dir(output_dir: Path, input_dir: Path) -> None:
    """OUTPUT must not be INPUT, inside it or above it (its files would land among the inputs' folders, and the
    next run would read them as a case), and must be writable; created if absent. Checked before anything is
    written."""
    out, inp = output_dir.resolve(), input_dir.resolve()
    if out == inp or inp in out.parents or out in inp.parents:
        raise OutputError("output folder is the input folder, inside it or above it", output_dir,
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
