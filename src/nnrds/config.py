"""Config loading and validation against the JSON schema in ``workflow/schemas`` (shipped as package data).

:func:`validate` fills defaults from the schema and raises :class:`ConfigError` with ONE message that
names the offending key path and the expected type. The Snakefile calls it before building the DAG, so
a bad config stops the run before anything is written.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

#: the checkout the package was imported from (meaningful only for an editable install / source tree)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _schema_path() -> Path:
    """``config.schema.yaml`` of this package: the copy an installed package ships as package data
    (``nnrds/schemas``, built from ``workflow/schemas`` -- see pyproject.toml), else the checkout's
    ``workflow/schemas`` (editable install or source tree). There is one source copy: ``workflow/schemas``."""
    from importlib import resources

    shipped = Path(str(resources.files("nnrds"))) / "schemas" / "config.schema.yaml"
    if shipped.is_file():
        return shipped
    checkout = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
    if checkout.is_file():
        return checkout
    raise ConfigError(
        f"the config schema is missing: neither {shipped} (installed package data) nor {checkout} "
        "(source checkout) exists; reinstall nnrds"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


SCHEMA_PATH = _schema_path()


def _with_defaults(cls):
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _describe(err: jsonschema.ValidationError) -> str:
    where = key_path(err.absolute_path)
    got = f"{err.instance!r} ({type(err.instance).__name__})"
    v, s = err.validator, err.schema
    if v == "additionalProperties":
        allowed = sorted(s.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        base = key_path(err.absolute_path)
        keys = ", ".join(f"`{base + '.' if err.absolute_path else ''}{k}`" for k in extra)
        return f"unknown key {keys}; allowed keys here: {', '.join(allowed)}"
    if v == "type":
        return f"`{where}` must be of type {err.validator_value}, got {got}"
    if v == "required":
        return f"`{where}` is missing required key: {err.message.split(' is a required')[0]}"
    if v == "enum":
        return f"`{where}` must be one of {err.validator_value}, got {got}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minLength"):
        return f"`{where}` violates {v}={err.validator_value} (expected type {s.get('type', '?')}), got {got}"
    return f"`{where}`: {err.message} (expected type {s.get('type', '?')})"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The main schema plus one fragment per study from ``workflow/schemas/studies/*.schema.yaml``.

    A fragment holds ``properties`` (top-level config keys it owns) and optionally ``$defs``; adding a
    study never edits the main schema.
    """
    path = Path(path)
    schema = yaml.safe_load(path.read_text())
    for frag_path in sorted((path.parent / "studies").glob("*.schema.yaml")):
        frag = yaml.safe_load(frag_path.read_text()) or {}
        for section in ("properties", "$defs"):
            clash = set(frag.get(section, {})) & set(schema.get(section, {}))
            if clash:
                raise ConfigError(f"schema fragment {frag_path.name} redefines {section} {sorted(clash)}")
            schema.setdefault(section, {}).update(frag.get(section, {}))
    return schema


def schema_defaults(study: str, *keys: str) -> dict:
    """The defaults the config schema gives the properties of ``<study>.<keys...>`` (the schema fragment
    workflow/schemas/studies/<study>.schema.yaml), a fresh copy: the one source of a study's defaults, which a
    validated config already carries and which code that takes an unvalidated section falls back to."""
    return copy.deepcopy(dict(_schema_defaults(study, keys)))


@functools.cache
def _schema_defaults(study: str, keys: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    node = load_schema()["$defs"][study]
    for k in keys:
        node = node["properties"][k]
    return tuple((k, v["default"]) for k, v in node["properties"].items() if "default" in v)


def validate(config: dict, schema: dict | None = None, source: str = "config") -> dict:
    """Return a validated deep copy of ``config`` with schema defaults filled in."""
    schema = load_schema() if schema is None else schema
    cfg = copy.deepcopy(config) if config is not None else {}
    errors = sorted(
        _Validator(schema).iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        first = _describe(errors[0])
        more = f" ({len(errors) - 1} more problem(s) after fixing this one)" if len(errors) > 1 else ""
        raise ConfigError(f"invalid {source}: {first}{more}. Fix it in {source}; the schema is {_shown(SCHEMA_PATH)}.")
    _check_references(cfg, source)
    return cfg


#: where the names a study refers to are defined: study key -> config path of the pool
REFERENCE_POOLS = {"datasets": ("data", "sets"), "parameterizations": ("parameterizations",)}


def _check_references(cfg: dict, source: str) -> None:
    """Cross-references the schema cannot express: study dataset/parameterization names must exist."""
    for study, scfg in cfg.items():
        if not isinstance(scfg, dict) or scfg.get("enabled") is False or study in ("data", "parameterizations"):
            continue
        for ref_key, pool_path in REFERENCE_POOLS.items():
            refs = scfg.get(ref_key)
            pool = cfg
            for k in pool_path:
                pool = pool.get(k, {}) if isinstance(pool, dict) else {}
            if isinstance(refs, list):
                for i, name in enumerate(refs):
                    if name not in pool:
                        raise ConfigError(
                            f"invalid {source}: `{study}.{ref_key}[{i}]` names {name!r}, which is not defined "
                            f"under `{'.'.join(pool_path)}` (defined: {', '.join(sorted(pool))}). "
                            f"Define it there or remove it from the list."
                        )


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """Load a YAML config file, apply overrides, validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; pick one of config/smoke.yaml, config/config.yaml, config/paper.yaml"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    if overrides:
        raw = deep_merge(raw, overrides)
    return validate(raw, source=str(path))


def deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys) used to hand config slices to the CLI."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
