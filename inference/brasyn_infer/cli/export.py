"""``brasyn-infer export``: a published HFGAN checkpoint to ONNX and a manifest (needs the torch extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import app, fail_line, setup_logging
from brasyn_infer.constants import View


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A .safetensors checkpoint (published `module.` keys accepted).", exists=True, dir_okay=False)],
    config: Annotated[str, typer.Option("--config", help="A or B (dim read from the checkpoint), or a JSON config file.")] = "A",
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.onnx and <name>.json.")] = Path("weights"),
    name: Annotated[Optional[str], typer.Option("--name", help="Weights name; default: the checkpoint's stem.")] = None,
    default_view: Annotated[View, typer.Option("--default-view", case_sensitive=False)] = View.SAGITTAL,
) -> None:
    """Export a checkpoint to ONNX + manifest, checked against torch (needs the torch extra)."""
    setup_logging(False)
    try:
        from brasyn_infer.authoring.models.export import export as do_export
        from brasyn_infer.authoring.models.export import load_config
        from brasyn_infer.authoring.models.hfgan import load_checkpoint
    except ImportError as error:
        fail_line(f"export needs torch ({error}); install brasyn-infer[torch]")
        raise typer.Exit(1) from None
    from brasyn_infer.errors import BrasynError

    try:
        cfg = load_config(config, checkpoint)
        net = load_checkpoint(str(checkpoint), cfg)
        manifest = do_export(net, out, name or checkpoint.stem, default_view=default_view,
                             provenance={"checkpoint": checkpoint.name, "config": config})
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    except (RuntimeError, ValueError, StopIteration) as error:
        fail_line(f"{checkpoint}: cannot load as HFGAN config {config} ({error}) -- fix: check --config")
        raise typer.Exit(1) from None
    typer.echo(f"wrote {manifest.onnx_path} and {manifest.path} "
               f"(ONNX vs torch max abs diff {manifest.provenance['export']['parity_max_abs_diff']:.2e})")
