"""``brasyn-infer import``: your own ONNX generator, checked against the contract, run once, given a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import ViewOpt, app, fail_line, setup_logging
from brasyn_infer.constants import View


@app.command("import")
def import_model(
    model: Annotated[Path, typer.Argument(help="Your generator as ONNX (see docs/model-contract.md).", dir_okay=False)],
    kind: Annotated[str, typer.Option("--kind", help="slice2d: x (B, 4, 240, 240) -> (B, 1, 240, 240); window3d: x (B, 4, X, Y, Z) -> (B, 1, X, Y, Z); segmenter: a tumor segmenter (--seg-kind, --channels, --classes).")] = "slice2d",
    normalization: Annotated[Optional[str], typer.Option("--normalization", help="How your model saw intensities: minmax (per volume to --range), zscore (per volume over the brain), percentile, or brasyn25; a segmenter: zscore (each modality over its nonzero voxels) or none. Default: minmax (generators), zscore (segmenters).")] = None,
    value_range: Annotated[tuple[float, float], typer.Option("--range", help="minmax: the range the model was trained on, e.g. -1 1 or 0 1.")] = (-1.0, 1.0),
    fill: Annotated[Optional[float], typer.Option("--fill", help="Value of the background and of the missing channel; default: -1 (brasyn25, percentile), 0 (zscore), the range's low end (minmax).")] = None,
    window: Annotated[Optional[tuple[int, int, int]], typer.Option("--window", help="window3d: the window X Y Z in voxels (default: the graph's fixed size).")] = None,
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=0.95, help="window3d: overlap of neighbouring windows.")] = 0.5,
    blend: Annotated[str, typer.Option("--blend", help="window3d: gaussian, hann or constant.")] = "gaussian",
    placement: Annotated[str, typer.Option("--placement", help="window3d: brain (windows over the brain's bounding box) or center (over --crop centered on the volume).")] = "brain",
    crop: Annotated[Optional[tuple[int, int, int]], typer.Option("--crop", help="window3d with --placement center: the crop X Y Z (e.g. 144 192 192; default: the window).")] = None,
    view: ViewOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.onnx and <name>.json.")] = Path("weights"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite weights of that name already in --out (e.g. a shipped default or segmenter).")] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="Weights name; default: the file's stem. 'default' makes it the image's default.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Provenance: where the model comes from (paper, repository, checkpoint).")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Provenance: anything else (training data, license).")] = None,
    seg_kind: Annotated[str, typer.Option("--seg-kind", help="segmenter: slice2d (axial slices, x (B, C, H, W)) or volume3d (the brain's box, x (1, C, X, Y, Z)).")] = "volume3d",
    channels: Annotated[str, typer.Option("--channels", help="segmenter: the modality of each input channel, in order (nnU-Net's BraTS order: t1n,t1c,t2w,t2f).")] = "t1n,t1c,t2w,t2f",
    classes: Annotated[str, typer.Option("--classes", help="segmenter: the class of each output channel: 0 background, 1 necrotic core, 2 edema, 3 enhancing tumor.")] = "0,1,2,3",
    output: Annotated[str, typer.Option("--output", help="segmenter: its output is logits or probabilities.")] = "logits",
    context: Annotated[int, typer.Option("--context", min=0, help="segmenter, slice2d: neighbouring slices on each side of the input (2.5D).")] = 0,
    multiple: Annotated[int, typer.Option("--multiple", min=1, help="segmenter: the input's spatial sides are padded to a multiple of this (the network's downsampling).")] = 16,
) -> None:
    """Import your own generator or segmenter: check the graph against the contract, run it once, write its manifest."""
    setup_logging(True)
    if kind == "segmenter":
        _import_segmenter(model, out, name or model.stem, seg_kind, channels, classes, output, context, multiple,
                          normalization or "zscore", {k: v for k, v in {"source": source, "note": note}.items() if v},
                          force)
        return
    normalization = normalization or "minmax"
    from brasyn_infer.authoring.importer import import_model as do_import
    from brasyn_infer.constants import MODALITIES
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.runtime.manifest import KINDS, PLACEMENTS
    from brasyn_infer.synthesis.windows import BlendMode

    if kind not in KINDS or placement not in PLACEMENTS or blend not in {m.value for m in BlendMode}:
        fail_line(f"--kind {kind} / --placement {placement} / --blend {blend}: use --kind {' or '.join(KINDS)}, "
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
                                      crop, views[0] if views else View.AXIAL, views, provenance, force)
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    detail = f"window {'x'.join(map(str, manifest.window))}, {placement}" if manifest.kind == "window3d" else \
        f"views {'+'.join(v.value for v in manifest.default_views)}"
    typer.echo(f"wrote {manifest.path} and {manifest.onnx_path} ({manifest.kind}, inputs {', '.join(manifest.inputs)}, "
               f"{detail}, normalization {normalization}); ran once on a synthetic case in {seconds:.1f} s. "
               f"Use it: brasyn-infer INPUT OUTPUT --weights {manifest.path}")


def _import_segmenter(model: Path, out: Path, name: str, seg_kind: str, channels: str, classes: str, output: str,
                      context: int, multiple: int, normalization: str, provenance: dict, force: bool) -> None:
    from brasyn_infer.authoring.segmenter_import import import_segmenter, parse_channels
    from brasyn_infer.errors import BrasynError

    try:
        class_list = [int(c) for c in classes.split(",") if c.strip()]
    except ValueError:
        fail_line(f"--classes {classes!r}: comma-separated integers 0..3, one per output channel")
        raise typer.Exit(2) from None
    try:
        manifest, seconds = import_segmenter(model, out, name, seg_kind, parse_channels(channels),
                                             {"scheme": normalization}, class_list, output, context, multiple,
                                             provenance, force)
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    typer.echo(f"wrote {manifest.path} and {manifest.onnx_path} (segmenter, {manifest.kind}, channels "
               f"{','.join(m.value for m in manifest.channels)}, normalization {normalization}); ran once on a "
               f"synthetic case in {seconds:.1f} s. Use it: brasyn-infer segment INPUT OUTPUT --segmenter {manifest.path}")
