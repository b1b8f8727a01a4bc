"""The ONNX contract for generators (docs/model-contract.md): what a graph's inputs and outputs must be.

``slice2d``: ``x`` ``(B, 4, H, W)`` (H = W = 240, or dynamic), optional ``mask`` ``(B, 4)``, ``missing``
``(B,)``, ``view`` ``(B,)`` -> the output ``(B, 1, H, W)``, optionally a second one ``log_scale`` ``(B, 1, H, W)``:
the log of the Laplace scale of its error (its own uncertainty).
``window3d``: ``x`` ``(B, 4, X, Y, Z)`` (the window, or dynamic), optional ``missing`` ``(B,)`` -> one output
``(B, 1, X, Y, Z)``. All float32. The batch axis is dynamic, or fixed at 1 (then batches are of 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brasyn_infer.constants import MODALITIES, PLANE
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.manifest import LOG_SCALE, SLICE2D

#: inputs the pipeline can feed, and their rank
OPTIONAL_INPUTS = {"mask": 2, "missing": 1, "view": 1}
EXPORT_HINT = "torch.onnx.export(..., input_names=['x', ...], output_names=['y'], dynamic_axes={'x': {0: 'batch'}, 'y': {0: 'batch'}})"


class ContractError(WeightsError):
    """A graph that does not fit the contract; the message says what is off and how to fix the export."""


@dataclass(frozen=True)
class Tensor:
    """A graph input or output: its name, shape (ints, or names / None for dynamic axes) and element type."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class GraphSpec:
    """What a checked graph declares: its input names, its fixed batch (None: dynamic), its 3D window."""

    inputs: tuple[str, ...]
    fixed_batch: int | None
    window: tuple[int, int, int] | None
    outputs: tuple[str, ...] = ("y",)


def read_graph(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """A graph's inputs and outputs, as ONNX Runtime (CPU) sees them."""
    from brasyn_infer.runtime.sessions import onnxruntime

    ort = onnxruntime()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime's Fail/InvalidGraph/InvalidProtobuf
        raise ContractError(f"onnxruntime cannot load this file ({str(error).splitlines()[0][:200]})", path,
                            "export a valid ONNX graph (opset 17 or newer), e.g. " + EXPORT_HINT) from None

    def spec(items) -> list[Tensor]:
        return [Tensor(i.name, tuple(d if isinstance(d, int) else None for d in i.shape), i.type) for i in items]

    return spec(session.get_inputs()), spec(session.get_outputs())


def _fixed(dim: int | str | None) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def check_graph(inputs: Sequence[Tensor], outputs: Sequence[Tensor], kind: str,
                window: tuple[int, int, int] | None = None, path: Path | None = None) -> GraphSpec:
    """Hold a graph's declared tensors against the contract of ``kind``; ContractError on the first misfit."""
    def fail(message: str, fix: str) -> ContractError:
        return ContractError(message, path, fix)

    spatial = 2 if kind == SLICE2D else 3
    layout = "(B, 4, H, W)" if kind == SLICE2D else "(B, 4, X, Y, Z)"
    by_name = {t.name: t for t in inputs}
    if "x" not in by_name:
        raise fail(f"no input named 'x' (inputs: {', '.join(by_name) or 'none'})",
                   f"name the image input 'x' {layout}: " + EXPORT_HINT)
    unknown = [n for n in by_name if n != "x" and n not in OPTIONAL_INPUTS]
    allowed = ["mask", "missing", "view"] if kind == SLICE2D else ["missing"]
    unknown += [n for n in by_name if n in OPTIONAL_INPUTS and n not in allowed]
    if unknown:
        raise fail(f"input(s) {', '.join(unknown)} are not part of the {kind} contract",
                   f"a {kind} graph may take x and {', '.join(allowed)}; compute anything else inside the graph")
    x = by_name["x"]
    if x.dtype != "tensor(float)":
        raise fail(f"x is {x.dtype}, not float32", "export the model in float32 (model.float() before export)")
    if x.rank == spatial + 1 and _fixed(x.shape[0]) == len(MODALITIES):
        raise fail(f"x has rank {x.rank} {x.shape}: no batch dimension", f"export x as {layout} with a leading batch axis: " + EXPORT_HINT)
    if x.rank != spatial + 2:
        raise fail(f"x has rank {x.rank} {x.shape}; a {kind} graph takes x {layout}",
                   f"export with the {kind} layout {layout}" + (" or import it as --kind window3d" if x.rank == 5 else
                                                                  " or import it as --kind slice2d" if x.rank == 4 else ""))
    channels = _fixed(x.shape[1])
    if channels is not None and channels != len(MODALITIES):
        raise fail(f"x has {channels} channels; the contract gives 4 (t1c, t1n, t2f, t2w, the missing one filled)",
                   "take 4 channels and ignore or use the filled one (the 'missing' input says which it is)")
    batch = _fixed(x.shape[0])
    if batch is not None and batch != 1:
        raise fail(f"x has a fixed batch of {batch}", "export with a dynamic batch axis, or a batch of 1: " + EXPORT_HINT)
    dims = tuple(_fixed(d) for d in x.shape[2:])
    if kind == SLICE2D:
        if any(d is not None and d != PLANE for d in dims):
            raise fail(f"x's plane is {'x'.join(str(d) for d in x.shape[2:])}; slices are padded to {PLANE}x{PLANE}",
                       f"export with H = W = {PLANE} (or dynamic)")
        found_window = None
    else:
        if window is None and all(d is not None for d in dims):
            window = dims  # type: ignore[assignment]
        if window is None:
            raise fail("x's spatial axes are dynamic and no window was given", "pass --window X Y Z (voxels)")
        if any(d is not None and d != w for d, w in zip(dims, window, strict=True)):
            raise fail(f"x's spatial axes {dims} differ from the window {tuple(window)}",
                       "pass the graph's own size as --window, or export with dynamic spatial axes")
        found_window = tuple(window)
    for name in by_name:
        if name == "x":
            continue
        tensor = by_name[name]
        if tensor.rank != OPTIONAL_INPUTS[name]:
            want = "(B, 4)" if name == "mask" else "(B,)"
            raise fail(f"input {name} has rank {tensor.rank}; the contract gives {want}", f"declare {name} as {want} float32")
        if tensor.dtype != "tensor(float)":
            raise fail(f"input {name} is {tensor.dtype}, not float32", f"take {name} as float32 (cast inside the graph)")
    if not outputs:
        raise fail("the graph has no output", "return the synthesized image as one output (B, 1, ...)")
    y = outputs[0]
    if y.rank != x.rank:
        raise fail(f"the output {y.name} has rank {y.rank}; x has {x.rank}", f"return (B, 1, {'H, W' if kind == SLICE2D else 'X, Y, Z'})")
    out_channels = _fixed(y.shape[1])
    if out_channels is not None and out_channels != 1:
        raise fail(f"the output {y.name} has {out_channels} channels", "return the missing modality only: (B, 1, ...), e.g. y[:, :1]")
    if y.dtype != "tensor(float)":
        raise fail(f"the output {y.name} is {y.dtype}, not float32", "return float32")
    extra = [o.name for o in outputs[1:]]
    if extra and (kind != SLICE2D or extra != [LOG_SCALE]):
        raise fail(f"output(s) {', '.join(extra)} are not part of the {kind} contract",
                   f"return the synthesis alone{', or a second output named log_scale (B, 1, H, W)' if kind == SLICE2D else ''}")
    if extra:
        scale = outputs[1]
        if scale.rank != x.rank or _fixed(scale.shape[1]) not in (None, 1) or scale.dtype != "tensor(float)":
            raise fail(f"the output log_scale is {scale.dtype} {scale.shape}; the contract gives (B, 1, H, W) float32",
                       "return the log of the error's Laplace scale per pixel as (B, 1, H, W) float32")
    return GraphSpec(tuple(t.name for t in inputs), batch, found_window, tuple(o.name for o in outputs))  # type: ignore[arg-type]

