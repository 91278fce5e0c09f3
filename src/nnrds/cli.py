"""Command line used by the workflow rules: ``nnrds <command> ...`` (also ``python -m nnrds``).

Rules stay thin: each calls one command here with explicit inputs, outputs and the JSON config slice
the job needs. Each study module registers its commands in :data:`COMMAND_MODULES`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from .config import ConfigError

#: modules that expose ``register(subparsers)``; each adds its own sub-commands
COMMAND_MODULES = [
    "nnrds.commands.core",
    "nnrds.commands.wp_gap",
    "nnrds.commands.noisy_rnn",
    "nnrds.commands.stiffness",
    "nnrds.commands.data",
    "nnrds.commands.uq",
    "nnrds.commands.materials",
    "nnrds.commands.claims",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"nnrds {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
