import os
from pathlib import Path

import pytest

from nnrds import config

MIRROR = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not (MIRROR / "SHA256SUMS").is_file():
        if os.environ.get("CI", "").lower() == "true":  # CI has the mirror: a missing one must not pass as skips
            pytest.fail(f"CI=true but the dataset mirror {MIRROR} is missing (no SHA256SUMS)")
        pytest.skip(f"dataset mirror {MIRROR} not present")
    return MIRROR


def raw_cfg(**over) -> dict:
    """``data`` section with overrides (and an empty ``sets``), validated (defaults filled) against its own part of
    the schema, so other studies' required keys do not matter here."""
    full = config.load_schema()
    schema = {
        "type": "object",
        "additionalProperties": False,
        "$defs": full["$defs"],
        "properties": {"data": full["properties"]["data"]},
    }
    return config.validate({"data": {"sets": {}, **over}}, schema=schema)["data"]
