"""The ``rag`` command line. Entry point: :func:`main` (``rag = rag.cli:main``).

The top of the layers: it assembles the command from the core commands (:mod:`rag.commands`) and the commands each
installed layer contributes through the ``rag.commands`` entry points (``eval.cli:register``, ``ui.cli:register``;
simonw/llm's ``register_commands`` is the model). It imports neither ``eval`` nor ``ui``.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points

import typer
from pydantic import ValidationError

from rag import commands
from rag.errors import RagError

PLUGIN_GROUP = "rag.commands"

app = typer.Typer(help="Answer questions from your documents, with citations.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
commands.register(app)


def _load_plugins() -> list[str]:
    """Register the commands of every ``rag.commands`` entry point (once); returns their names."""
    names = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        ep.load()(app)
        names.append(ep.name)
    return names


PLUGINS = _load_plugins()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures print ``error:``/``hint:`` on stderr and exit 1."""
    logging.basicConfig(level=os.environ.get("RAG_LOG_LEVEL", "WARNING").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = app(args=argv, prog_name="rag", standalone_mode=False)
        if isinstance(rc, int) and rc:  # typer.Exit(code) comes back as the return value here
            return rc
    except RagError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return 1
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            typer.echo(f"error: invalid setting {field} (env RAG_{field.upper()}): {err['msg']}", err=True)
        return 1
    except typer.Abort:
        return 130
    except Exception as exc:
        # usage errors and exits of the click that typer bundles: shown as click shows them
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # type: ignore[attr-defined]  # click's UsageError/Exit (typer bundles click), checked above
            return int(exc.exit_code)  # type: ignore[attr-defined]  # the same click exception
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
