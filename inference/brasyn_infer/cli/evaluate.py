"""``brasyn-infer evaluate``: dry runs on complete cases, scored against the real modality and the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import (
    BatchOpt,
    DeviceOpt,
    PriorOpt,
    QuietOpt,
    RefineOpt,
    RefinerOpt,
    ShardOpt,
    TtaOpt,
    ViewOpt,
    WeightsOpt,
    app,
    fail_line,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device


@app.command()
def evaluate(
    data: Annotated[Path, typer.Argument(help="A folder of complete (4-modality) case folders, or one such case.")],
    report_dir: Annotated[Path, typer.Argument(help="Where cases.csv, summary.json, report.md and QC PNGs go.")],
    drop: Annotated[str, typer.Option("--drop", help="Modalities to drop in turn: a comma list of t1c,t1n,t2f,t2w, or all.")] = "all",
    baseline: Annotated[str, typer.Option("--baseline", help="Baselines to report beside the model: linear, mean, a comma list, or none.")] = "linear,mean",
    weights: WeightsOpt = None,
    view: ViewOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = Device.AUTO,
    only: Annotated[Optional[str], typer.Option("--only", help="Score only these case IDs (comma list); baselines still fit on all of DATA.")] = None,
    refine: RefineOpt = None,
    refiner: RefinerOpt = None,
    segment: Annotated[bool, typer.Option("--segment", help="Also score downstream segmentation (Dice/HD95) with the brats package's BraTS 2023 segmenters; needs Docker and a GPU, skipped otherwise.")] = False,
    save_volumes: Annotated[Optional[Path], typer.Option("--save-volumes", help="Also write each generator output as DIR/<case>/<case>-<mod>.nii.gz (e.g. a held-out fold's outputs, the refiner's training inputs).")] = None,
    shard: ShardOpt = None,
    uncertainty: Annotated[Optional[bool], typer.Option("--uncertainty/--no-uncertainty", help="Score the uncertainty map (Spearman and top-10% error ratio against the real errors; a QC column). Default: when the weights make a map.")] = None,
    tta: TtaOpt = None,
    prior: PriorOpt = True,
    quiet: QuietOpt = False,
) -> None:
    """Dry run: drop each modality from complete cases, synthesize it, score it against the real one.

    With a refiner running, both the generator's output (`model`) and the refined one (`model+refiner`) are scored."""
    setup_logging(quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brasyn_infer.errors import BrasynError
    from brasyn_infer.evaluation.downstream import segmentation_unavailable
    from brasyn_infer.evaluation.dry_run import BASELINES, dry_run, parse_drop
    from brasyn_infer.evaluation.report import markdown_table, summarize
    from brasyn_infer.io.cases import list_case_folders
    from brasyn_infer.pipeline.run import check_output_dir
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    chosen = shard_or_exit(shard)
    try:
        drops = parse_drop(drop)
        names = [] if baseline.strip().lower() == "none" else [b.strip().lower() for b in baseline.split(",") if b.strip()]
        unknown = [b for b in names if b not in BASELINES]
        if unknown:
            raise BrasynError(f"unknown baseline {', '.join(unknown)}", fix="use linear, mean, or none")
        check_output_dir(report_dir, data)
        synth = Synthesizer(weights, view, batch_size, device, refine=refine, refiner=refiner, tta=tta, prior=prior,
                            uncertainty=uncertainty)
        if chosen is not None:
            typer.echo(chosen.rule(len(list_case_folders(data))), err=True)
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    if segment and (reason := segmentation_unavailable()):
        typer.echo(f"downstream segmentation skipped: {reason}", err=True)
        segment = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("dry runs", total=None)

        def status(case_id: str) -> None:
            progress.update(task, description=f"baseline samples: {case_id}")

        def pair_done(case_id: str, missing) -> None:
            progress.update(task, advance=1, description=f"done {case_id} -{missing.value}")

        def total(n: int) -> None:
            progress.update(task, total=n, description="dry runs")

        try:
            rows, errors = dry_run(data, report_dir, synth, drops, names, status, pair_done, total,
                                   only=[c.strip() for c in only.split(",")] if only else None, segment=segment,
                                   save_volumes=save_volumes, shard=chosen,
                                   on_warning=lambda w: progress.console.print(f"warning: {w}", markup=False,
                                                                               highlight=False, soft_wrap=True))
        except BrasynError as error:
            fail_line(str(error))
            raise typer.Exit(1) from None
    for error in errors:
        fail_line(str(error))
    if rows:
        typer.echo(markdown_table(summarize(rows), ["ssim", "ssim_brain", "ssim_tumor", "psnr", "mae"]))
    if chosen is not None:
        typer.echo(f"shard {chosen.label}: {len(rows)} rows in {report_dir}; when every shard is done, "
                   f"`brasyn-infer summary merge {report_dir}` writes summary.json and report.md", err=True)
    else:
        typer.echo(f"report: {report_dir / 'report.md'} ({len(rows)} rows, {len(errors)} cases skipped)", err=True)
    raise typer.Exit(1 if errors or not rows else 0)
