"""``brasyn-infer info``: the weights (sha256 verified), ONNX Runtime's providers, versions."""

from __future__ import annotations

import typer

from brasyn_infer.cli.app import WeightsOpt, app, fail_line


@app.command()
def info(weights: WeightsOpt = None) -> None:
    """Show the weights, ONNX Runtime providers and versions."""
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.orchestration.summary import versions
    from brasyn_infer.runtime.manifest import load_manifest, sha256_of
    from brasyn_infer.runtime.sessions import available_providers
    from brasyn_infer.runtime.sessions import onnxruntime as load_onnxruntime
    from brasyn_infer.synthesis.enhance import Enhancement

    try:
        onnxruntime = load_onnxruntime()
    except BrasynError as error:
        fail_line(str(error))
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
        fail_line(str(error))
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
    enhancement = Enhancement.from_manifest(manifest.enhance, manifest.path)
    if enhancement:
        e = enhancement
        typer.echo(f"  enhance: t1c where {e.guide} calls the tumor, to enhancement contrast {e.ratio}"
                   + (f" and necrosis {e.necrosis}" if e.necrosis is not None else "")
                   + f", feathered {e.feather} voxels ({'on' if e.enabled else 'off'} by default; --enhance)")
    trust = manifest.trust
    if manifest.has_log_scale:  # the graph makes its own map (the default's)
        blended = ", ".join(sorted(trust.get("blend") or {}))
        calibrated = (", scaled by settings fitted on held-out cases" + (
            f" (for {blended}, fitted on the output before the blend with the prior)" if blended else "")
            if manifest.uncertainty else "")
        umap = f"the graph's own log_scale output{calibrated}"
    elif trust.get("uncertainty"):
        umap = "fitted from " + ", ".join(trust.get("features", []))
    else:
        umap = "the fused views' spread (uncalibrated)" if len(manifest.default_views) > 1 else "none"
    blend = trust.get("blend") or {}
    typer.echo("  trust: linear prior blend " + (", ".join(f"{m} alpha {a}" for m, a in blend.items()) or "off")
               + f"; uncertainty map: {umap}; tta {'on' if trust.get('tta') else 'off'} by default")
    typer.echo(f"  completes: {manifest.supported}")
    if manifest.copy_blend:
        typer.echo("  blend toward the stand-in (several missing): " + "; ".join(
            f"{pattern} missing: " + ", ".join(f"{m} {w:g}" for m, w in weights.items())
            for pattern, weights in manifest.copy_blend.items() if weights))
    for key, value in manifest.provenance.items():
        typer.echo(f"  provenance.{key}: {value}")
    if not ok:
        raise typer.Exit(1)
