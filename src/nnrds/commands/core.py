"""Core commands: config validation and provenance merging."""

from __future__ import annotations

import json
import sys

from .. import config as cfgmod


def register(sub) -> None:
    p = sub.add_parser("validate-config", help="validate a config file; print it with defaults filled in")
    p.add_argument("config", help="the config file (YAML) to validate")
    p.set_defaults(func=_validate)


def _validate(args) -> int:
    cfg = cfgmod.load(args.config)
    json.dump(cfg, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0
