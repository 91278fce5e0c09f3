"""Command line used by the workflow rules: ``nnrds <command> ...`` (also ``python -m nnrds``).

Rules stay thin: each calls one command here with explicit inputs, outputs and the JSON config slice
the job needs. Each study module registers its commands in :data:`COMMAND_MODULES`.

Logging is configured here, once: the ``nnrds`` loggers log at INFO (``NNRDS_LOG_LEVEL`` overrides) to
stderr, which every rule sends to its log file; other libraries log warnings only. A
:class:`~nnrds.guards.NonFiniteError` (diverged training or sampling) becomes one message and exit status 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from .config import ConfigError
from .guards import NonFiniteError

#: exit status of a job stopped by a non-finite number
EXIT_NONFINITE = 3

#: modules that expose ``register(subparsers)``; each adds its own sub-commands
COMMAND_MODULES = [
    "nnrds.commands.core",
    "nnrds.commands.wp_gap",
    "nnrds.commands.noisy_rnn",
    "nnrds.commands.stiffness",
    "nnrds.commands.data",
    "nnrds.commands.uq_elm",
    "nnrds.commands.materials",
    "nnrds.commands.continuous_depth",
    "nnrds.commands.pinn_failure",
    "nnrds.commands.stable_arch",
    "nnrds.commands.claims",
    "nnrds.commands.estimate",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnrds", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text[:80]!r}") from None


def configure_logging() -> None:
    """INFO from ``nnrds.*`` (or ``$NNRDS_LOG_LEVEL``) to stderr, warnings from everything else.

    Adds its handler only when the root logger has none (so a host application or pytest keeps its own)."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger("nnrds").setLevel(os.environ.get("NNRDS_LOG_LEVEL", "INFO").upper())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return int(args.func(args) or 0)
    except NonFiniteError as e:
        print(f"nnrds {args.command}: error: {e}", file=sys.stderr)
        return EXIT_NONFINITE
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"nnrds {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
