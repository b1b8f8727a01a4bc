"""The ``brasyn-infer`` command line (typer). Heavy imports live inside the commands.

``brasyn-infer INPUT OUTPUT [options]`` runs synthesis (the ``run`` command, implied);
``info``, ``export`` and ``evaluate`` are subcommands. Exit codes: 0 all cases written, 1 some
case failed (each failure printed as one line), 2 usage error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.constants import Device, View

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="BraSyn missing-modality synthesis: `brasyn-infer INPUT OUTPUT` writes each case's missing "
    "modality as OUTPUT/<ID>-<mod>.nii.gz.",
    pretty_exceptions_enable=False,
)
log = logging.getLogger("inference")

COMMANDS = {"run", "check", "info", "export", "import", "evaluate", "bench", "summary"}


def _setup_logging(quiet: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)


def _fail_line(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


WeightsOpt = Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights NAME in weights/ (or $BRASYN_WEIGHTS_DIR), or a path to a manifest .json.")]
ViewOpt = Annotated[Optional[list[View]], typer.Option("--view", help="Slicing view; repeat to generate several views and average them (e.g. --view sagittal --view axial). Default: the manifest's views.", case_sensitive=False)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Slices per model call; default 8 on CPU, 32 on GPU.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="auto: TensorRT, CUDA, then CPU as available; cuda: CUDA without TensorRT; cpu.", case_sensitive=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; warnings and errors only.")]
RefineOpt = Annotated[Optional[bool], typer.Option("--refine/--no-refine", help="Run the 3D Refiner after the generator; default: the manifest's choice.")]
RefinerOpt = Annotated[Optional[str], typer.Option("--refiner", help="Refiner weights NAME or manifest .json instead of the one the manifest names (implies --refine).")]
Fp16Opt = Annotated[bool, typer.Option("--fp16", help="Let TensorRT build fp16 engines (GPU only; CUDA and CPU stay fp32).")]
TtaOpt = Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Flip test-time augmentation: each slice also runs flipped and the two are averaged (twice the model's work). Default: the manifest's choice (off for the default weights: it did not help, see weights/README.md).")]
PriorOpt = Annotated[bool, typer.Option("--prior/--no-prior", help="Blend the generator's output with the weights' linear prior (trust.blend in the manifest: never much worse than a linear fit). --no-prior: the generator alone.")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Process shard I of N (I from 0): the case folders sorted by name, every one whose position is I mod N. Default: from SLURM_ARRAY_TASK_ID (Slurm arrays) or JOB_COMPLETION_INDEX + BRASYN_SHARDS (Kubernetes Indexed Jobs), else all cases.")]


def _shard_or_exit(option: str | None):
    """The shard to run (None: all cases); a bad value is a usage error: one line, exit 2."""
    import os

    from brasyn_infer.orchestration.shards import ShardError, resolve_shard

    try:
        return resolve_shard(option, os.environ)
    except ShardError as error:
        _fail_line(str(error))
        raise typer.Exit(2) from None


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders.")],
    output: Annotated[Path, typer.Argument(help="Output folder: gets exactly one <ID>-<mod>.nii.gz per case.")],
    weights: WeightsOpt = None,
    view: ViewOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = Device.AUTO,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cases whose output already loads completely.")] = False,
    refine: RefineOpt = None,
    refiner: RefinerOpt = None,
    fp16: Fp16Opt = False,
    shard: ShardOpt = None,
    summary: Annotated[Optional[Path], typer.Option("--summary", metavar="FILE", help="Also write a JSON summary for orchestrators (never inside OUTPUT; a folder: summary-I-of-N.json in it): the shard, each case's status, seconds, output or error, the weights' sha256, versions. Merge shards' with `brasyn-infer summary merge`.")] = None,
    uncertainty: Annotated[Optional[Path], typer.Option("--uncertainty", metavar="DIR", help="Also write a voxel-wise uncertainty map per case as DIR/<ID>-<mod>-uncertainty.nii.gz (never inside OUTPUT): the expected |error| in the output's intensity units (a Laplace scale fitted on held-out cases; see weights/README.md).")] = None,
    tta: TtaOpt = None,
    prior: PriorOpt = True,
    quiet: QuietOpt = False,
) -> None:
    """Synthesize the missing modality of every case in INPUT into OUTPUT."""
    import time

    _setup_logging(quiet)
    from brasyn_infer.io.cases import discover
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.io.nifti import remove_stale_temps
    from brasyn_infer.runtime.manifest import write_json_atomic
    from brasyn_infer.pipeline.synthesizer import Synthesizer, check_output_dir, check_side_dir
    from brasyn_infer.orchestration.summary import check_summary_path, run_summary

    started = time.time()
    chosen = _shard_or_exit(shard)
    if summary is not None and summary.is_dir():  # one file per shard in a shared folder
        summary = summary / (f"summary-{chosen.index}-of-{chosen.count}.json" if chosen else "summary.json")
    try:
        if summary is not None:
            check_summary_path(summary, output)
        if uncertainty is not None:
            check_side_dir(uncertainty, output, input, "--uncertainty")
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(2) from None
    folders: list[str] = []

    def report(records, synth=None, error: str | None = None) -> None:
        if summary is not None:
            weights_info = None if synth is None else synth.describe()
            write_json_atomic(summary, run_summary(input_dir=input, output_dir=output, shard=chosen, all_folders=folders,
                                            records=records, weights=weights_info, started=started, error=error))

    try:
        entries = discover(input)
        folders = [e.folder.name for e in entries]
        if chosen is not None:
            typer.echo(chosen.rule(len(entries)), err=True)
            entries = chosen.select(entries, key=lambda e: e.folder.name)
        check_output_dir(output, input)
        own = None if chosen is None else [e.case.output_name() for e in entries if e.case is not None]
        if uncertainty is not None:
            check_output_dir(uncertainty, input)
        for folder in (output, uncertainty):
            if folder is None:
                continue
            mine = None if own is None else own + [e.case.uncertainty_name() for e in entries if e.case is not None]
            for stale in remove_stale_temps(folder, mine):
                log.warning("removed a partial file left by an interrupted run: %s", stale.name)
        synth = Synthesizer(weights, view, batch_size, device, fp16=fp16, refine=refine, refiner=refiner, tta=tta,
                            prior=prior, uncertainty=uncertainty is not None)
    except BrasynError as error:
        _fail_line(str(error))
        report([], error=str(error))
        raise typer.Exit(1) from None
    log.info("weights %s (%s), batch %d, providers %s", synth.label, synth.manifest.onnx, synth.batch_size,
             ",".join(synth.session.providers))
    _exit_on_sigterm()
    results = _run_with_progress(entries, synth, output, resume, quiet, uncertainty)
    failed = [r for r in results if not r.ok]
    for result in failed:
        _fail_line(f"{result.case_id}: {result.error}")
    report([_record(entry, result) for entry, result in zip(entries, results, strict=True)], synth)
    done = len(results) - len(failed)
    seconds = sum(r.seconds for r in results)
    typer.echo(f"{done} of {len(results)} cases written to {output}, {len(failed)} failed ({seconds:.1f} s)", err=True)
    raise typer.Exit(1 if failed else 0)


def _record(entry, result) -> dict:
    """One case's line of the run summary."""
    from brasyn_infer.orchestration.summary import FAILED, SKIPPED, WRITTEN, case_record

    status = FAILED if not result.ok else SKIPPED if result.skipped else WRITTEN
    return case_record(result.case_id, entry.folder.name, status, result.seconds, result.output,
                       None if result.ok else f"{result.case_id}: {result.error}")


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


def _run_with_progress(entries, synth, output: Path, resume: bool, quiet: bool, uncertainty: Path | None = None):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brasyn_infer.pipeline.synthesizer import run as run_pipeline

    entries = list(entries)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet, transient=False) as progress:
        cases_task = progress.add_task("cases", total=len(entries))
        slices_task = progress.add_task("slices", total=1, visible=False)

        def start(case, n_slices: int) -> None:
            progress.reset(slices_task, total=n_slices, description=f"{case.case_id} ({case.missing.value})", visible=True)

        def batch(n: int) -> None:
            progress.advance(slices_task, n)

        def done(result) -> None:
            progress.advance(cases_task)
            if result.ok:
                log.info("%s: wrote %s (%.1f s)", result.case_id, result.output.name, result.seconds)
            else:
                log.error("%s: failed", result.case_id)

        def warn(message: str) -> None:
            progress.console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

        return run_pipeline(entries, synth, output, resume, start, batch, done, warn, uncertainty)


@app.command()
def check(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders (three or four modalities).")],
) -> None:
    """Check the inputs before spending compute: BraTS grid and spacing, skull stripping, raw intensities,
    co-registration. One line per warning; exit 0 when clean, 1 otherwise."""
    from brasyn_infer.io.cases import list_case_folders, scan_folder
    from brasyn_infer.io.checks import check_case
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.io.nifti import read_inputs

    try:
        folders = list_case_folders(input)
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None
    flagged = 0
    for folder in folders:
        try:
            files = scan_folder(folder)
            warnings = check_case(read_inputs(files.modalities))
        except BrasynError as error:
            _fail_line(str(error))
            flagged += 1
            continue
        for warning in warnings:
            typer.echo(f"warning: {warning}")
        flagged += bool(warnings)
    typer.echo(f"{len(folders)} cases checked: {len(folders) - flagged} clean, {flagged} with warnings or errors", err=True)
    raise typer.Exit(1 if flagged else 0)


@app.command()
def info(weights: WeightsOpt = None) -> None:
    """Show the weights, ONNX Runtime providers and versions."""
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.runtime.manifest import load_manifest, sha256_of
    from brasyn_infer.runtime.sessions import available_providers
    from brasyn_infer.runtime.sessions import onnxruntime as load_onnxruntime
    from brasyn_infer.orchestration.summary import versions

    try:
        onnxruntime = load_onnxruntime()
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None

    found = versions()
    typer.echo(f"brasyn-infer {found['brasyn-infer']}")
    typer.echo(f"python {found['python']}, numpy {found['numpy']}, nibabel {found['nibabel']}, "
               f"onnxruntime {found['onnxruntime']}")
    typer.echo(f"providers: {', '.join(onnxruntime.get_available_providers())} "
               f"(usable here: {', '.join(available_providers())})")
    try:
        manifest = load_manifest(weights)
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None
    ok = sha256_of(manifest.onnx_path) == manifest.sha256
    typer.echo(f"weights: {manifest.name} ({manifest.path})")
    typer.echo(f"  onnx: {manifest.onnx} sha256 {manifest.sha256[:16]}... {'verified' if ok else 'MISMATCH'}")
    typer.echo(f"  architecture: {manifest.architecture} {manifest.config}")
    typer.echo(f"  kind: {manifest.kind}" + (f", windows {manifest.windows}" if manifest.windows else "")
               + (f", inputs {', '.join(manifest.inputs)}" if manifest.inputs else ""))
    typer.echo(f"  normalization: {manifest.normalization.get('scheme')}, "
               f"views: {'+'.join(v.value for v in manifest.default_views)}")
    if manifest.refiner:
        typer.echo(f"  refiner: {manifest.refiner['weights']} ({'on' if manifest.refiner.get('enabled') else 'off'} by default)")
    trust = manifest.trust
    if trust:
        blend = trust.get("blend") or {}
        typer.echo("  trust: linear prior blend " + (", ".join(f"{m} alpha {a}" for m, a in blend.items()) or "off")
                   + "; uncertainty model " + (", ".join(trust.get("features", [])) if trust.get("uncertainty") else "none")
                   + f"; tta {'on' if trust.get('tta') else 'off'} by default")
    for key, value in manifest.provenance.items():
        typer.echo(f"  provenance.{key}: {value}")
    if not ok:
        raise typer.Exit(1)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A .safetensors checkpoint (published `module.` keys accepted).", exists=True, dir_okay=False)],
    config: Annotated[str, typer.Option("--config", help="A or B (dim read from the checkpoint), or a JSON config file.")] = "A",
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.onnx and <name>.json.")] = Path("weights"),
    name: Annotated[Optional[str], typer.Option("--name", help="Weights name; default: the checkpoint's stem.")] = None,
    default_view: Annotated[View, typer.Option("--default-view", case_sensitive=False)] = View.SAGITTAL,
) -> None:
    """Export a checkpoint to ONNX + manifest, checked against torch (needs the torch extra)."""
    _setup_logging(False)
    try:
        from brasyn_infer.authoring.models.export import export as do_export
        from brasyn_infer.authoring.models.export import load_config
        from brasyn_infer.authoring.models.hfgan import load_checkpoint
    except ImportError as error:
        _fail_line(f"export needs torch ({error}); install brasyn-infer[torch]")
        raise typer.Exit(1) from None
    from brasyn_infer.errors import BrasynError

    try:
        cfg = load_config(config, checkpoint)
        net = load_checkpoint(str(checkpoint), cfg)
        manifest = do_export(net, out, name or checkpoint.stem, default_view=default_view,
                             provenance={"checkpoint": checkpoint.name, "config": config})
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None
    except (RuntimeError, ValueError, StopIteration) as error:
        _fail_line(f"{checkpoint}: cannot load as HFGAN config {config} ({error}) -- fix: check --config")
        raise typer.Exit(1) from None
    typer.echo(f"wrote {manifest.onnx_path} and {manifest.path} "
               f"(ONNX vs torch max abs diff {manifest.provenance['export']['parity_max_abs_diff']:.2e})")


@app.command("import")
def import_model(
    model: Annotated[Path, typer.Argument(help="Your generator as ONNX (see docs/model-contract.md).", dir_okay=False)],
    kind: Annotated[str, typer.Option("--kind", help="slice2d: x (B, 4, 240, 240) -> (B, 1, 240, 240); window3d: x (B, 4, X, Y, Z) -> (B, 1, X, Y, Z).")] = "slice2d",
    normalization: Annotated[str, typer.Option("--normalization", help="How your model saw intensities: minmax (per volume to --range), zscore (per volume over the brain), percentile, or brasyn25.")] = "minmax",
    value_range: Annotated[tuple[float, float], typer.Option("--range", help="minmax: the range the model was trained on, e.g. -1 1 or 0 1.")] = (-1.0, 1.0),
    fill: Annotated[Optional[float], typer.Option("--fill", help="Value of the background and of the missing channel; default: -1 (brasyn25, percentile), 0 (zscore), the range's low end (minmax).")] = None,
    window: Annotated[Optional[tuple[int, int, int]], typer.Option("--window", help="window3d: the window X Y Z in voxels (default: the graph's fixed size).")] = None,
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=0.95, help="window3d: overlap of neighbouring windows.")] = 0.5,
    blend: Annotated[str, typer.Option("--blend", help="window3d: gaussian, hann or constant.")] = "gaussian",
    placement: Annotated[str, typer.Option("--placement", help="window3d: brain (windows over the brain's bounding box) or center (over --crop centered on the volume).")] = "brain",
    crop: Annotated[Optional[tuple[int, int, int]], typer.Option("--crop", help="window3d with --placement center: the crop X Y Z (e.g. 144 192 192; default: the window).")] = None,
    view: ViewOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.onnx and <name>.json.")] = Path("weights"),
    name: Annotated[Optional[str], typer.Option("--name", help="Weights name; default: the file's stem. 'default' makes it the image's default.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Provenance: where the model comes from (paper, repository, checkpoint).")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Provenance: anything else (training data, license).")] = None,
) -> None:
    """Import your own generator: check the graph against the contract, run it once, write its manifest."""
    _setup_logging(True)
    from brasyn_infer.constants import MODALITIES
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.authoring.importer import import_model as do_import
    from brasyn_infer.runtime.manifest import KINDS, PLACEMENTS
    from brasyn_infer.synthesis.windows import BlendMode

    if kind not in KINDS or placement not in PLACEMENTS or blend not in {m.value for m in BlendMode}:
        _fail_line(f"--kind {kind} / --placement {placement} / --blend {blend}: use --kind {' or '.join(KINDS)}, "
                   f"--placement {' or '.join(PLACEMENTS)}, --blend {', '.join(m.value for m in BlendMode)}")
        raise typer.Exit(2)
    block: dict = {"scheme": normalization}
    if normalization == "minmax":
        block["range"] = list(value_range)
    if normalization == "percentile":
        block.update({"percentile": 99.5, "reference_scale": {m.value: 1000.0 for m in MODALITIES}})
    if fill is not None:
        block["fill"] = fill
    provenance = {k: v for k, v in {"source": source, "note": note}.items() if v}
    views = tuple(dict.fromkeys(view or []))
    try:
        manifest, seconds = do_import(model, kind, out, name or model.stem, block, window, overlap, blend, placement,
                                      crop, views[0] if views else View.AXIAL, views, provenance)
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None
    detail = f"window {'x'.join(map(str, manifest.window))}, {placement}" if manifest.kind == "window3d" else \
        f"views {'+'.join(v.value for v in manifest.default_views)}"
    typer.echo(f"wrote {manifest.path} and {manifest.onnx_path} ({manifest.kind}, inputs {', '.join(manifest.inputs)}, "
               f"{detail}, normalization {normalization}); ran once on a synthetic case in {seconds:.1f} s. "
               f"Use it: brasyn-infer INPUT OUTPUT --weights {manifest.path}")


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
    _setup_logging(quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brasyn_infer.io.cases import list_case_folders
    from brasyn_infer.evaluation.downstream import segmentation_unavailable
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.evaluation.dry_run import BASELINES, dry_run, parse_drop
    from brasyn_infer.pipeline.synthesizer import Synthesizer, check_output_dir
    from brasyn_infer.evaluation.report import markdown_table, summarize

    chosen = _shard_or_exit(shard)
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
        _fail_line(str(error))
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
            _fail_line(str(error))
            raise typer.Exit(1) from None
    for error in errors:
        _fail_line(str(error))
    if rows:
        typer.echo(markdown_table(summarize(rows), ["ssim", "ssim_brain", "ssim_tumor", "psnr", "mae"]))
    if chosen is not None:
        typer.echo(f"shard {chosen.label}: {len(rows)} rows in {report_dir}; when every shard is done, "
                   f"`brasyn-infer summary merge {report_dir}` writes summary.json and report.md", err=True)
    else:
        typer.echo(f"report: {report_dir / 'report.md'} ({len(rows)} rows, {len(errors)} cases skipped)", err=True)
    raise typer.Exit(1 if errors or not rows else 0)


summary_app = typer.Typer(help="Run summaries of shards: merge them.", no_args_is_help=True)
app.add_typer(summary_app, name="summary")


@summary_app.command("merge")
def summary_merge(
    paths: Annotated[list[Path], typer.Argument(help="The shards' `run --summary` JSON files; or one `evaluate --shard` REPORT_DIR.", exists=True)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the merged run summary here (JSON).")] = None,
) -> None:
    """Merge shards: every case once, with the cases no shard reported and those that failed.

    Exit 0 when every case of INPUT was written (or was already complete), 1 otherwise. Given an
    `evaluate --shard` REPORT_DIR, writes its summary.json and report.md from all shards' rows."""
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.evaluation.dry_run import merge_shard_reports
    from brasyn_infer.runtime.manifest import write_json_atomic
    from brasyn_infer.evaluation.report import markdown_table
    from brasyn_infer.orchestration.summary import merge_summaries

    try:
        if len(paths) == 1 and paths[0].is_dir():
            summary, problems = merge_shard_reports(paths[0])
            typer.echo(markdown_table(summary, ["ssim", "ssim_brain", "ssim_tumor", "psnr", "mae"]))
            for problem in problems:
                _fail_line(problem)
            typer.echo(f"report: {paths[0] / 'report.md'}", err=True)
            raise typer.Exit(1 if problems else 0)
        merged = merge_summaries(paths)
    except BrasynError as error:
        _fail_line(str(error))
        raise typer.Exit(1) from None
    counts = merged.summary["counts"]
    shards = merged.summary["shards"]
    if out is not None:
        write_json_atomic(out, merged.summary)
    for problem in merged.problems:
        _fail_line(problem)
    for record in merged.failed:
        _fail_line(f"failed: {record['error']}")
    for name in merged.missing:
        _fail_line(f"missing: {name} (no shard reported it)")
    typer.echo(f"{len(merged.summary['all_cases'])} cases in {shards['count']} shards "
               f"({len(shards['reported'])} reported{', missing shards ' + ','.join(map(str, shards['missing'])) if shards['missing'] else ''}): "
               f"{counts['written']} written, {counts['skipped']} already complete, {counts['failed']} failed, "
               f"{counts['missing']} missing" + (f"; merged summary: {out}" if out else ""))
    raise typer.Exit(0 if merged.ok else 1)


def main() -> None:
    """Console entry point: ``brasyn-infer INPUT OUTPUT`` means ``brasyn-infer run INPUT OUTPUT``.

    An unexpected error (a bug, not a bad input) is one line and exit 1, never a traceback;
    ``BRASYN_DEBUG=1`` shows the traceback."""
    import os

    argv = sys.argv[1:]
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["run", *argv]
    try:
        app(args=argv, prog_name="brasyn-infer")
    except KeyboardInterrupt:
        _fail_line("interrupted")
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("BRASYN_DEBUG"):
            raise
        _fail_line(f"unexpected {type(error).__name__}: {error} -- fix: rerun with BRASYN_DEBUG=1 for the "
                   "traceback and report it")
        sys.exit(1)


if __name__ == "__main__":
    main()
