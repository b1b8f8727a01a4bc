"""``brasyn-infer run INPUT OUTPUT`` (the implied command): parse, call :func:`~brasyn_infer.pipeline.job.run_job`,
show progress, print one line per failed case."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import (
    BatchOpt,
    DeviceOpt,
    EnhanceOpt,
    Fp16Opt,
    GuideOpt,
    PriorOpt,
    QuietOpt,
    RefineOpt,
    RefinerOpt,
    ShardOpt,
    ToneOpt,
    TtaOpt,
    ViewOpt,
    WeightsOpt,
    app,
    case_fail_line,
    log,
    one_line_errors,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders.")],
    output: Annotated[Path, typer.Argument(help="Output folder: gets exactly one prediction per case, named like the inputs (<ID>-<mod>.nii.gz, or <ID>_<mod>.nii.gz for BraTS 2018-2021 names).")],
    weights: WeightsOpt = None,
    view: ViewOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = Device.AUTO,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cases whose output already loads completely (what made it is not checked: use a fresh OUTPUT for other weights or stages).")] = False,
    refine: RefineOpt = None,
    refiner: RefinerOpt = None,
    fp16: Fp16Opt = False,
    shard: ShardOpt = None,
    summary: Annotated[Optional[Path], typer.Option("--summary", metavar="FILE", help="Also write a JSON summary for orchestrators (never inside OUTPUT; a folder: summary-I-of-N.json in it): the shard, each case's status, seconds, output or error, the weights' sha256, versions. Merge shards' with `brasyn-infer summary merge`.")] = None,
    uncertainty: Annotated[Optional[Path], typer.Option("--uncertainty", metavar="DIR", help="Also write a voxel-wise uncertainty map per case as DIR/<ID>-<mod>-uncertainty.nii.gz (never inside OUTPUT), in the output's intensity units: the weights' own uncertainty output where their graph has one (the default's), else a fitted model from the manifest, else the spread of the fused views (uncalibrated).")] = None,
    tta: TtaOpt = None,
    prior: PriorOpt = True,
    tone: ToneOpt = True,
    enhance: EnhanceOpt = None,
    guide: GuideOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Synthesize the missing modality of every case in INPUT into OUTPUT."""
    setup_logging(quiet)
    from brasyn_infer.pipeline.job import RunOptions, run_job

    options = RunOptions(weights=weights, views=view, batch_size=batch_size, device=device, fp16=fp16, resume=resume,
                         refine=refine, refiner=refiner, tta=tta, prior=prior, tone=tone, enhance=enhance, guide=guide,
                         shard=shard_or_exit(shard), summary=summary, uncertainty=uncertainty)
    _exit_on_sigterm()
    with one_line_errors(), _progress(quiet) as hooks:
        report = run_job(input, output, options, hooks)
    for result in report.failed:
        case_fail_line(result.case_id, result.error)
    seconds = sum(r.seconds for r in report.results)
    typer.echo(f"{len(report.results) - len(report.failed)} of {len(report.results)} cases written to {output}, "
               f"{len(report.failed)} failed ({seconds:.1f} s)", err=True)
    raise typer.Exit(1 if report.failed else 0)


def _exit_on_sigterm() -> None:
    """SIGTERM (docker stop, a scheduler's kill) unwinds like Ctrl-C: the write in flight completes
    or its temp file is removed, so OUTPUT never holds a partial prediction."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)


class _progress:
    """Rich progress bars (cases, and the slices or windows of the case at hand) as :class:`Hooks`."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from brasyn_infer.pipeline.job import Hooks

        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=Console(stderr=True), disable=self.quiet, transient=False)
        bars = self.bars.__enter__()
        cases = bars.add_task("cases", total=None, visible=False)
        work = bars.add_task("slices", total=1, visible=False)

        def ready(synth) -> None:
            log.info("weights %s (%s), batch %d, providers %s", synth.label, synth.manifest.onnx, synth.batch_size,
                     ",".join(synth.session.providers))

        def done(result) -> None:
            bars.advance(cases)
            if result.ok:  # a failed case is one line: the `error:` line printed once the run ends (docs/usage.md)
                log.info("%s: wrote %s (%.1f s)%s", result.case_id, ", ".join(p.name for p in result.outputs or
                                                                              (result.output,)), result.seconds,
                         " (already complete: skipped)" if result.skipped else "")

        return Hooks(
            on_rule=lambda rule: typer.echo(rule, err=True),
            on_cases=lambda n: bars.update(cases, total=n, visible=True),
            on_case_start=lambda case, n: bars.reset(work, total=n, visible=True,
                                                     description=f"{case.case_id} ({'+'.join(m.value for m in case.absent)})"),
            on_batch=lambda n: bars.advance(work, n),
            on_case_done=done,
            on_warning=lambda message: bars.console.print(f"warning: {message}", markup=False, highlight=False,
                                                          soft_wrap=True),
            on_ready=ready,
        )

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)
