"""The container's one entrypoint: every way the organizers' systems call an image (docs/container.md).

(a) no arguments: the layout that is mounted decides. ``/input`` -> ``/output`` (BraSyn 2025 on Synapse;
    the ``brats`` package from 2025), or MedPerf's volumes (``/mlcommons/volumes/data`` ->
    ``/mlcommons/volumes/predictions``, with its parameters file and ``additional_files`` as weights);
(b) ``IMAGE INPUT OUTPUT [options]``: the normal CLI;
(c) ``IMAGE infer --data_path=DIR --output_path=DIR [--parameters_file=FILE] [--weights=DIR]``
    (MedPerf MLCube; the ``brats`` package up to 2024);
(d) ``IMAGE hotfix``: does nothing, exit 0.
Any other subcommand (``info``, ``evaluate``, ...) goes to the CLI unchanged.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brasyn_infer.constants import Device, View

DEFAULT_INPUT = Path("/input")
DEFAULT_OUTPUT = Path("/output")
#: MedPerf's model container volumes (container_config.yaml, since MedPerf dropped MLCube)
MEDPERF_VOLUMES = Path("/mlcommons/volumes")
MEDPERF_DATA = "data"
MEDPERF_PREDICTIONS = "predictions"
MEDPERF_PARAMETERS = "parameters/parameters_file.yaml"
MEDPERF_ADDITIONAL_FILES = "additional_files"


@dataclass(frozen=True)
class Parameter:
    """One key of the parameters file: the run option it sets and the values it takes."""

    option: str  #: the CLI option (``--batch-size``); for a yes/no key, its ``--x/--no-x`` pair
    kind: str  #: ``text``, ``int`` (>= 1), ``choice``, ``views`` (a view or a list of them), ``flag`` (yes only), ``switch`` (yes/no)
    choices: tuple[str, ...] = ()


#: every run option a parameters file may set (``brasyn-infer run --help``), by key
PARAMETERS: dict[str, Parameter] = {
    "weights": Parameter("--weights", "text"),
    "view": Parameter("--view", "views", tuple(v.value for v in View)),
    "batch_size": Parameter("--batch-size", "int"),
    "device": Parameter("--device", "choice", tuple(d.value for d in Device)),
    "fp16": Parameter("--fp16", "flag"),
    "resume": Parameter("--resume", "flag"),
    "refine": Parameter("--refine/--no-refine", "switch"),
    "refiner": Parameter("--refiner", "text"),
    "tta": Parameter("--tta/--no-tta", "switch"),
    "prior": Parameter("--prior/--no-prior", "switch"),
    "tone": Parameter("--tone/--no-tone", "switch"),
    "enhance": Parameter("--enhance/--no-enhance", "switch"),
    "guide": Parameter("--guide", "text"),
    "uncertainty": Parameter("--uncertainty", "text"),
    "shard": Parameter("--shard", "text"),
    "summary": Parameter("--summary", "text"),
    "quiet": Parameter("--quiet", "flag"),
}


class ParameterError(SystemExit):
    """A parameters file the run cannot honour: one line naming the key (or the file) and the fix; exit 2."""

    def __init__(self, path: Path, message: str, fix: str) -> None:
        super().__init__(2)
        self.line = f"error: {path}: {message} -- fix: {fix}"


def parameter_argv(path: Path, key: str, value: Any) -> list[str]:
    """The CLI arguments of one ``key: value`` of the parameters file ``path``; ParameterError when it cannot be."""
    spec = PARAMETERS.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, PARAMETERS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ParameterError(path, f"unknown key {key!r}", f"{hint}the keys are {', '.join(PARAMETERS)}")
    if value is None:
        return []

    def bad(expected: str) -> ParameterError:
        return ParameterError(path, f"{key}: {value!r} is not {expected}", f"write {key}: {expected}")

    if spec.kind in ("flag", "switch"):
        if not isinstance(value, bool):
            raise bad("true or false")
        if spec.kind == "flag":
            return [spec.option] if value else []
        yes, no = spec.option.split("/")
        return [yes if value else no]
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("a whole number >= 1")
        return [spec.option, str(value)]
    if spec.kind == "choice":
        if str(value).lower() not in spec.choices:
            raise bad(" or ".join(spec.choices))
        return [spec.option, str(value).lower()]
    if spec.kind == "views":
        views = value if isinstance(value, list) else [value]
        if not views or any(str(v).lower() not in spec.choices for v in views):
            raise bad(f"one of {', '.join(spec.choices)}, or a list of them")
        return [item for v in views for item in (spec.option, str(v).lower())]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value) == "":
        raise bad("a path or name")
    return [spec.option, str(value)]


def prepare_environment() -> None:
    """Make every cache writable under an arbitrary uid: HOME and caches in the temp dir if unusable."""
    tmp = Path(tempfile.gettempdir())
    home = os.environ.get("HOME")
    if not home or not os.access(home, os.W_OK):
        os.environ["HOME"] = str(tmp)
    os.environ.setdefault("BRASYN_CACHE_DIR", str(tmp / "brasyn-cache"))
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "matplotlib"))
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp / "cache"))


def read_parameters(path: Path | None) -> dict[str, Any]:
    """The MLCube ``parameters.yaml`` (flat ``key: value``); {} when absent or empty."""
    if path is None or not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
        raise ParameterError(path, f"cannot read the parameters file ({type(error).__name__})",
                             "write flat `key: value` YAML, see mlcube/workspace/parameters.yaml") from None
    if not isinstance(data, dict):
        raise ParameterError(path, "parameters must be a mapping of key: value", "see mlcube/workspace/parameters.yaml")
    return data


def weights_option(folder: Path | None) -> list[str]:
    """MLCube's ``--weights=DIR``: used when it holds a manifest, else the bundled weights."""
    if folder is None or not folder.is_dir() or not any(folder.glob("*.json")):
        return []
    return ["--weights", str(folder)]


def mlcube_argv(args: list[str]) -> list[str]:
    """Translate ``infer --data_path=... --output_path=...`` into CLI arguments."""
    parser = argparse.ArgumentParser(prog="infer", add_help=True)
    parser.add_argument("--data_path", "--data-path", type=Path, required=True)
    parser.add_argument("--output_path", "--output-path", type=Path, required=True)
    parser.add_argument("--parameters_file", "--parameters-file", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--shard", default=None)
    parser.add_argument("--summary", default=None)
    ns, _unknown = parser.parse_known_args(args)
    argv = run_argv(ns.data_path, ns.output_path, ns.parameters_file, ns.weights)
    return argv + [item for key in ("shard", "summary") if getattr(ns, key) for item in (f"--{key}", getattr(ns, key))]


def run_argv(data: Path, output: Path, parameters_file: Path | None, weights_dir: Path | None) -> list[str]:
    """CLI arguments for a run of ``data`` into ``output`` with a parameters file and a weights folder (a weights
    folder holding a manifest wins over the file's ``weights``)."""
    argv = ["run", str(data), str(output)]
    params = read_parameters(parameters_file)
    weights = weights_option(weights_dir)
    for key, value in params.items():
        args = parameter_argv(parameters_file, str(key), value)  # type: ignore[arg-type]
        if key == "weights" and weights:
            continue
        argv += args
    return argv + weights


def mounted_layout() -> list[str]:
    """CLI arguments for a call with no arguments, from what is mounted: MedPerf's volumes, else /input."""
    data = MEDPERF_VOLUMES / MEDPERF_DATA
    if data.is_dir() and not DEFAULT_INPUT.is_dir():
        return run_argv(data, MEDPERF_VOLUMES / MEDPERF_PREDICTIONS, MEDPERF_VOLUMES / MEDPERF_PARAMETERS,
                        MEDPERF_VOLUMES / MEDPERF_ADDITIONAL_FILES)
    return ["run", str(DEFAULT_INPUT), str(DEFAULT_OUTPUT)]


def translate(args: list[str]) -> list[str] | None:
    """CLI arguments for an entrypoint call; None for ``hotfix`` (nothing to do)."""
    if not args:
        return mounted_layout()
    if args[0] == "hotfix":
        return None
    if args[0] == "infer":
        return mlcube_argv(args[1:])
    return args


def main(argv: list[str] | None = None) -> int:
    prepare_environment()
    try:
        args = translate(list(sys.argv[1:] if argv is None else argv))
    except ParameterError as error:
        print(error.line, file=sys.stderr)
        return 2
    if args is None:
        return 0
    from brasyn_infer.cli import main as cli_main

    sys.argv = ["brasyn-infer", *args]
    try:
        cli_main()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
