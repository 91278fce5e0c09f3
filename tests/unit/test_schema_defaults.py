"""A study's defaults have one source, the config schema: ``config.schema_defaults`` reads them, and the studies'
default tables are what it returns (a changed schema default changes what the study uses)."""

import math

import pytest

from nnrds import config


def test_schema_defaults_read_the_fragment():
    d = config.schema_defaults("wp_gap", "claims")
    assert d == {"alpha": 0.05, "margin_rho": 0.1, "margin_gap": 0.05, "margin_landscape": 0.2}
    assert config.schema_defaults("stable_arch", "claims")["margin_growth"] == pytest.approx(math.log10(2.0))
    assert config.schema_defaults("stable_arch", "bases", "claims") == {"margin_rho": 0.1, "margin_log10": 0.0414}


def test_schema_defaults_are_a_fresh_copy():
    a = config.schema_defaults("wp_gap", "landscape")
    a["nets"]["mlp"]["depth"] = 99
    assert config.schema_defaults("wp_gap", "landscape")["nets"]["mlp"]["depth"] == 4


def test_an_unknown_section_is_an_error():
    with pytest.raises(KeyError):
        config.schema_defaults("wp_gap", "no_such_key")


def test_studies_take_their_defaults_from_the_schema():
    from nnrds.studies import continuous_depth, pinn_failure, stable_arch, wp_gap

    for mod, path in [
        (wp_gap, ("wp_gap", "claims")),
        (continuous_depth, ("continuous_depth", "claims")),
        (pinn_failure, ("pinn_failure", "claims")),
        (stable_arch, ("stable_arch", "claims")),
    ]:
        assert mod.CLAIM_DEFAULTS == config.schema_defaults(*path), mod.__name__
    assert wp_gap.LANDSCAPE_DEFAULTS == config.schema_defaults("wp_gap", "landscape")
    # a validated config carries the same defaults for the keys it leaves out (smoke sets no wp_gap.claims key)
    cfg = config.load("config/smoke.yaml")
    assert cfg["wp_gap"]["claims"] == wp_gap.CLAIM_DEFAULTS
