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
    ToneOpt,
    TtaOpt,
    ViewOpt,
    WeightsOpt,
    app,
    fail_line,
    one_line_errors,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device


@app.command()
def evaluate(
    data: Annotated[Path, typer.Argument(help="A folder of complete (4-modality) case folders, or one such case (either naming convention).")],
    report_dir: Annotated[Path, typer.Argument(help="Where cases.csv, summary.json, report.md, run.json, linear-stats/ and QC PNGs go; a rerun into it resumes (same weights and options) or is refused.")],
    drop: Annotated[str, typer.Option("--drop", help="Modalities to drop in turn: a comma list of t1c,t1n,t2f,t2w, or all.")] = "all",
    baseline: Annotated[str, typer.Option("--baseline", help="Baselines to report beside the model: linear, mean, a comma list, or none.")] = "linear,mean",
    weights: WeightsOpt = None,
    view: ViewOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = Device.AUTO,
    only: Annotated[Optional[str], typer.Option("--only", help="Score only these case IDs (comma list); the linear baseline still fits on the other cases of DATA.")] = None,
    fit_on: Annotated[Optional[str], typer.Option("--fit-on", help="Fit the linear baseline on these case IDs only (comma list), e.g. the cases the model was trained on; 'training': those the weights' manifest records. Default: every other case of DATA (leave-one-case-out).")] = None,
    refine: RefineOpt = None,
    refiner: RefinerOpt = None,
    segment: Annotated[bool, typer.Option("--segment", help="Also score downstream segmentation (Dice/HD95) with the brats package's BraTS 2023 segmenters; needs Docker and a GPU, skipped otherwise.")] = False,
    save_volumes: Annotated[Optional[Path], typer.Option("--save-volumes", help="Also write each generator output as DIR/<case>/<case>-<mod>.nii.gz, and its uncertainty map (when scored) as <case>-<mod>-uncertainty.nii.gz beside it (e.g. held-out outputs: the refiner's training inputs, the tone correction's fit).")] = None,
    shard: ShardOpt = None,
    uncertainty: Annotated[Optional[bool], typer.Option("--uncertainty/--no-uncertainty", help="Score the uncertainty map (Spearman and top-10% error ratio against the real errors; a QC column). Default: when the weights make a map.")] = None,
    tta: TtaOpt = None,
    prior: PriorOpt = True,
    tone: ToneOpt = True,
    quiet: QuietOpt = False,
) -> None:
    """Dry run: drop each modality from complete cases, synthesize it as `run` does, score it against the real one
    and the baselines.

    With a refiner running, both the generator's output (`model`) and the refined one (`model+refiner`) are scored."""
    setup_logging(quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brasyn_infer.errors import UsageError
    from brasyn_infer.evaluation.baselines import BASELINES
    from brasyn_infer.evaluation.downstream import segmentation_unavailable
    from brasyn_infer.evaluation.dry_run import DryRunOptions, Hooks, dry_run, parse_drop
    from brasyn_infer.evaluation.report import markdown_table, summarize
    from brasyn_infer.io.cases import list_case_folders
    from brasyn_infer.pipeline.run import check_output_dir
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    chosen = shard_or_exit(shard)
    with one_line_errors():
        names = [] if baseline.strip().lower() == "none" else [b.strip().lower() for b in baseline.split(",") if b.strip()]
        unknown = [b for b in names if b not in BASELINES]
        if unknown:
            raise UsageError(f"unknown baseline {', '.join(unknown)}", fix="use linear, mean, or none")
        options = DryRunOptions(drops=parse_drop(drop), baselines=names, only=_ids(only), fit_on=_ids(fit_on),
                                segment=segment, save_volumes=save_volumes, shard=chosen)
        check_output_dir(report_dir, data)
        synth = Synthesizer(weights, view, batch_size, device, refine=refine, refiner=refiner, tta=tta, prior=prior,
                            uncertainty=uncertainty, tone=tone)
        if chosen is not None:
            typer.echo(chosen.rule(len(list_case_folders(data))), err=True)
    if segment and (reason := segmentation_unavailable()):
        typer.echo(f"downstream segmentation skipped: {reason}", err=True)
        options.segment = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("dry run", total=None)
        phase = {"name": ""}

        def on_phase(name: str, total: int) -> None:
            phase["name"] = name
            progress.reset(task, total=total, description=name)

        hooks = Hooks(on_phase=on_phase,
                      on_step=lambda what: progress.update(task, advance=1, description=f"{phase['name']}: {what}"),
                      on_warning=lambda w: progress.console.print(f"warning: {w}", markup=False, highlight=False,
                                                                  soft_wrap=True))
        with one_line_errors():
            rows, errors = dry_run(data, report_dir, synth, options, hooks)
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


def _ids(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None
