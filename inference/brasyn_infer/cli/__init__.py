"""The ``brasyn-infer`` command line (typer), one module per command.

``brasyn-infer INPUT OUTPUT [options]`` runs synthesis (the ``run`` command, implied); ``segment``, ``check``,
``info``, ``export``, ``import``, ``evaluate`` and ``summary merge`` are subcommands. Exit codes: 0 success, 1 some case
or step failed (each failure printed as one line), 2 usage error.
"""

from __future__ import annotations

import sys

from brasyn_infer.cli import check, evaluate, export, import_model, info, run, segment, summary  # noqa: F401 - registers them
from brasyn_infer.cli.app import app, fail_line


def command_names() -> set[str]:
    """The subcommands the application has (``run`` implied when the first argument is none of them)."""
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups if g.name}


def main() -> None:
    """Console entry point: ``brasyn-infer INPUT OUTPUT`` means ``brasyn-infer run INPUT OUTPUT``.

    An unexpected error (a bug, not a bad input) is one line and exit 1, never a traceback;
    ``BRASYN_DEBUG=1`` shows the traceback."""
    import os

    argv = sys.argv[1:]
    if argv and argv[0] not in command_names() and not argv[0].startswith("-"):
        argv = ["run", *argv]
    try:
        app(args=argv, prog_name="brasyn-infer")
    except KeyboardInterrupt:
        fail_line("interrupted")
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("BRASYN_DEBUG"):
            raise
        fail_line(f"unexpected {type(error).__name__}: {error} -- fix: rerun with BRASYN_DEBUG=1 for the "
                   "traceback and report it")
        sys.exit(1)


if __name__ == "__main__":
    main()
