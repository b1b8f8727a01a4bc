"""The container's one entrypoint: every way the organizers' systems call an image (spec section 3).

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
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_INPUT = Path("/input")
DEFAULT_OUTPUT = Path("/output")
#: MedPerf's model container volumes (container_config.yaml, since MedPerf dropped MLCube)
MEDPERF_VOLUMES = Path("/mlcommons/volumes")
MEDPERF_DATA = "data"
MEDPERF_PREDICTIONS = "predictions"
MEDPERF_PARAMETERS = "parameters/parameters_file.yaml"
MEDPERF_ADDITIONAL_FILES = "additional_files"
#: parameters.yaml keys -> CLI options
PARAMETERS = {"view": "--view", "batch_size": "--batch-size", "device": "--device", "weights": "--weights",
              "shard": "--shard", "summary": "--summary"}
#: parameters.yaml booleans -> CLI flags
FLAGS = {"quiet": "--quiet", "fp16": "--fp16"}


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
        raise SystemExit(f"error: {path}: cannot read the parameters file ({type(error).__name__}) -- fix: "
                         "write flat `key: value` YAML, see mlcube/workspace/parameters.yaml") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path}: parameters must be a mapping of key: value -- fix: see mlcube/workspace/parameters.yaml")
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
    """CLI arguments for a run of ``data`` into ``output`` with a parameters file and a weights folder."""
    argv = ["run", str(data), str(output)]
    params = read_parameters(parameters_file)
    weights = weights_option(weights_dir)
    for key, value in params.items():
        if key == "refine":
            if value is not None:
                argv.append("--refine" if value else "--no-refine")
            continue
        if key == "weights" and weights:
            continue
        if key == "view" and isinstance(value, list):  # several views: generated and averaged
            for view in value:
                argv += ["--view", str(view)]
        elif key in PARAMETERS and value is not None:
            argv += [PARAMETERS[key], str(value)]
        elif key in FLAGS and value:
            argv.append(FLAGS[key])
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
    args = translate(list(sys.argv[1:] if argv is None else argv))
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
