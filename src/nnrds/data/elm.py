"""A simplified ELM-style daily carbon-cycle model, vectorized over an ensemble of parameter sets.

Written from the published equations (own code), in the spirit of the "simplified ELM" of land-model UQ
work (Ricciuto et al. 2018, JAMES 10:297):

* **GPP**: the Aggregated Canopy Model (ACM; Williams et al. 1997, Ecol. Appl. 7:882) with the DALEC
  coefficients; its nitrogen-use-efficiency coefficient is the perturbed ``nue`` and foliar N per leaf area
  is ``1 / (slatop * leafcn)``. LAI = leaf C x ``slatop``; no leaves => no GPP.
* **phenology** (seasonal deciduous, ELM-like): onset when growing-degree-days (soil temperature above
  0 degC, summed from 1 January) reach ``gdd_crit`` in the first half of the year; stored leaf / fine-root C
  moves to display over ``ndays_on`` days. Offset when day length falls below ``crit_dayl`` (s) after the
  summer solstice; displayed leaves and fine roots fall over ``ndays_off`` days. While leaves are
  displayed, leaves and fine roots also turn over with longevity ``leaf_long`` (years).
* **respiration**: maintenance respiration from tissue N (leaf, fine root, live stem, live coarse root)
  ``br_mr * q10_mr ** ((T - 20) / 10)``; growth respiration ``rg_frac`` of new tissue. Maintenance
  respiration exceeding GPP is charged to a storage pool that may go negative (a debt repaid from up to
  ``xsmr_repay`` of later GPP - MR), as ELM's xsmr pool, so carbon is conserved exactly.
* **allocation**: new tissue C per unit leaf C: 1 leaf, ``froot_leaf`` fine root, ``stem_leaf`` stem,
  ``stem_leaf * croot_stem`` coarse root; a fraction ``fcur`` of leaf / fine-root growth is displayed at
  once (only while leaves are on), the rest goes to storage for next year's onset; ``flivewd`` of wood
  growth is live wood, which turns over to dead wood; dead wood dies into coarse woody debris.
* **litter and soil**: the CLM-CN decomposition cascade (Thornton & Rosenbloom 2005): three litter pools,
  coarse woody debris, four soil organic matter pools, first-order decay with a Q10 (``q10_hr``,
  reference 25 degC) soil-temperature scalar and a fixed moisture scalar; each transfer respires a fixed
  fraction (heterotrophic respiration). Decay within a day is integrated exactly (``1 - exp(-k)``), so
  the daily step is stable and keeps pools non-negative.
* **spin-up**: cycles of the forcing, with semi-analytic jumps (the periodic steady state of the linear
  wood / litter / soil subsystem given the last cycle's inputs, solved exactly) followed by ordinary
  cycles, so slow soil pools reach quasi-equilibrium in a handful of cycles.

Units: carbon gC m-2, fluxes gC m-2 d-1 inside the model and gC m-2 yr-1 in the QoIs, LAI m2 m-2.
Everything is numpy with the ensemble as the last axis; members are simulated in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DAYS = 365

#: the 15 perturbed parameters: name -> (default, unit, description)
PERTURBED: dict[str, tuple[float, str, str]] = {
    "gdd_crit": (400.0, "degC d", "growing-degree-days (soil T > 0 degC since 1 Jan) that trigger leaf onset"),
    "crit_dayl": (39300.0, "s", "day length below which leaf offset starts (after the summer solstice)"),
    "ndays_on": (30.0, "d", "days over which stored C moves to leaves at onset"),
    "ndays_off": (15.0, "d", "days of leaf and fine-root litterfall at offset"),
    "nue": (5.0, "-", "ACM nitrogen-use-efficiency coefficient (a1)"),
    "slatop": (0.03, "m2 gC-1", "specific leaf area"),
    "leafcn": (25.0, "gC gN-1", "leaf C:N"),
    "frootcn": (42.0, "gC gN-1", "fine-root C:N"),
    "froot_leaf": (1.0, "-", "new fine-root C per new leaf C"),
    "stem_leaf": (2.2, "-", "new stem C per new leaf C"),
    "br_mr": (2.525e-6, "gC gN-1 s-1", "base maintenance respiration rate at 20 degC"),
    "q10_mr": (1.5, "-", "Q10 of maintenance respiration"),
    "rg_frac": (0.3, "-", "growth respiration per unit new tissue C"),
    "leaf_long": (1.5, "yr", "leaf and fine-root longevity while displayed"),
    "q10_hr": (1.5, "-", "Q10 of decomposition (heterotrophic respiration)"),
}

#: the ranges the issue states; all others are default x [0.5, 1.5]; Q10 < 1 is unphysical, so [1, 2.5]
STATED_RANGES = {
    "gdd_crit": [100.0, 700.0],
    "crit_dayl": [36000.0, 43000.0],
    "q10_mr": [1.0, 2.5],
    "q10_hr": [1.0, 2.5],
}


def default_ranges() -> dict[str, list[float]]:
    return {k: STATED_RANGES.get(k, [0.5 * v[0], 1.5 * v[0]]) for k, v in PERTURBED.items()}


#: fixed model constants (overridable through config ``data.elm.fixed``)
FIXED: dict[str, float] = {
    "croot_stem": 0.3,  # new coarse-root C per new stem C
    "flivewd": 0.1,  # live fraction of new wood
    "xsmr_repay": 0.5,  # at most this fraction of daily GPP - MR repays the storage debt
    "fcur": 0.5,  # fraction of leaf / fine-root growth displayed at once (leaves on)
    "livewdcn": 50.0,  # live-wood C:N (maintenance respiration)
    "lwtop": 0.7,  # live -> dead wood turnover, 1/yr
    "wood_mort": 0.02,  # dead-wood mortality to coarse woody debris, 1/yr
    "k_frag": 1.0e-4,  # CWD fragmentation, 1/d at 25 degC
    "k_l1": 1.204,
    "k_l2": 0.0726,
    "k_l3": 0.0141,  # litter decay, 1/d at 25 degC
    "k_s1": 0.0726,
    "k_s2": 0.0141,
    "k_s3": 0.00141,
    "k_s4": 1.0e-4,  # soil decay, 1/d at 25 degC
    "rf_l1": 0.39,
    "rf_l2": 0.55,
    "rf_l3": 0.29,  # respired fractions of each transfer
    "rf_s1": 0.28,
    "rf_s2": 0.46,
    "rf_s3": 0.55,  # (soil 4 respires all)
    "lit_lab": 0.25,
    "lit_cel": 0.5,  # leaf / root litter -> lit1, lit2 (rest lit3)
    "cwd_cel": 0.76,  # CWD -> lit2 (rest lit3)
    "w_scalar": 0.5,  # fixed soil-moisture scalar of decomposition
    "tsoil_tau": 10.0,  # days: soil T is air T smoothed with this time constant
    "psid": -2.0,  # ACM leaf-soil water potential difference, MPa
    "rtot": 1.0,  # ACM total hydraulic resistance
}

#: ACM coefficients a2..a10 (DALEC; a1 is ``nue``)
ACM = {
    "a2": 0.0142,
    "a3": 217.9,
    "a4": 0.980,
    "a5": 0.155,
    "a6": 2.653,
    "a7": 4.309,
    "a8": 0.060,
    "a9": 1.062,
    "a10": 0.0006,
}

#: the 10 static quantities of interest: name -> (unit, description)
QOIS: dict[str, tuple[str, str]] = {
    "gpp": ("gC m-2 yr-1", "mean annual gross primary production"),
    "npp": ("gC m-2 yr-1", "mean annual net primary production (GPP - MR - GR)"),
    "nee": ("gC m-2 yr-1", "mean annual net ecosystem exchange (MR + GR + HR - GPP; > 0 is a source)"),
    "hr": ("gC m-2 yr-1", "mean annual heterotrophic respiration"),
    "mr": ("gC m-2 yr-1", "mean annual maintenance respiration"),
    "lai_max": ("m2 m-2", "mean over years of the annual maximum LAI"),
    "leafc": ("gC m-2", "mean displayed leaf C"),
    "frootc": ("gC m-2", "mean displayed fine-root C"),
    "totvegc": ("gC m-2", "mean total vegetation C (displayed, stored, wood, storage debt)"),
    "totsomc": ("gC m-2", "mean total soil organic C (the four SOM pools; litter and CWD excluded)"),
}

VEG = ["leafc", "leafc_stor", "frootc", "frootc_stor", "livestemc", "deadstemc", "livecrootc", "deadcrootc", "xsmrc"]
LINEAR = [
    "livestemc",
    "deadstemc",
    "livecrootc",
    "deadcrootc",
    "cwdc",
    "lit1c",
    "lit2c",
    "lit3c",
    "som1c",
    "som2c",
    "som3c",
    "som4c",
]
POOLS = VEG + ["cwdc", "lit1c", "lit2c", "lit3c", "som1c", "som2c", "som3c", "som4c"]
SOM = ["som1c", "som2c", "som3c", "som4c"]
INIT = {
    "leafc": 0.0,
    "leafc_stor": 100.0,
    "frootc": 0.0,
    "frootc_stor": 100.0,
    "livestemc": 100.0,
    "deadstemc": 1000.0,
    "livecrootc": 30.0,
    "deadcrootc": 300.0,
    "xsmrc": 0.0,
    "cwdc": 100.0,
    "lit1c": 10.0,
    "lit2c": 50.0,
    "lit3c": 20.0,
    "som1c": 20.0,
    "som2c": 100.0,
    "som3c": 500.0,
    "som4c": 2000.0,
}


# ----------------------------------------------------------------------------------------------- forcing
@dataclass
class Forcing:
    """Daily forcing of ``n_days = 365 * years`` days (no leap days)."""

    tmin: np.ndarray  # degC
    tmax: np.ndarray  # degC
    rad: np.ndarray  # MJ m-2 d-1 shortwave
    co2: np.ndarray  # ppm
    dayl: np.ndarray  # s
    doy: np.ndarray  # 0..364
    tsoil: np.ndarray  # degC (air T smoothed; cyclic)
    lat: float

    @property
    def n_days(self) -> int:
        return len(self.tmin)

    @property
    def tair(self) -> np.ndarray:
        return 0.5 * (self.tmin + self.tmax)


def _declination(doy: np.ndarray) -> np.ndarray:
    return np.deg2rad(-23.44) * np.cos(2 * np.pi * (doy + 10) / DAYS)


def day_length(lat_deg: float, doy: np.ndarray) -> np.ndarray:
    """Day length in seconds from latitude and day of year (0 = 1 January)."""
    x = -np.tan(np.deg2rad(lat_deg)) * np.tan(_declination(doy))
    return 86400.0 * np.arccos(np.clip(x, -1.0, 1.0)) / np.pi


def clear_sky_radiation(lat_deg: float, doy: np.ndarray) -> np.ndarray:
    """FAO-56 clear-sky shortwave (0.75 x extraterrestrial), MJ m-2 d-1."""
    phi, dec = np.deg2rad(lat_deg), _declination(doy)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(dec), -1.0, 1.0))
    dr = 1 + 0.033 * np.cos(2 * np.pi * (doy + 1) / DAYS)
    ra = 24 * 60 / np.pi * 0.0820 * dr * (ws * np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.sin(ws))
    return 0.75 * ra


def _soil_temperature(tair: np.ndarray, tau: float) -> np.ndarray:
    """Air temperature smoothed with time constant ``tau`` days, periodic over the forcing."""
    out = np.empty_like(tair)
    ts = tair.mean()
    for _ in range(2):  # second pass starts from the end of the first: cyclic
        for i, t in enumerate(tair):
            ts += (t - ts) / tau
            out[i] = ts
    return out


def synthetic_forcing(cfg: dict, seed: int, tsoil_tau: float = FIXED["tsoil_tau"]) -> Forcing:
    """Seeded synthetic climatology of a temperate deciduous site: seasonal sinusoids plus AR(1) noise."""
    years, lat = cfg["years"], cfg["latitude"]
    rng = np.random.default_rng(seed)
    n = DAYS * years
    doy = np.arange(n) % DAYS
    seas = np.cos(2 * np.pi * (doy - cfg["t_peak_doy"]) / DAYS)
    noise = np.empty(n)
    e = rng.standard_normal(n) * cfg["t_noise"] * np.sqrt(1 - 0.7**2)
    noise[0] = e[0] / np.sqrt(1 - 0.7**2)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + e[i]
    tmean = cfg["t_mean"] + cfg["t_amplitude"] * seas + noise
    trange = np.clip(cfg["t_range"] + 2.0 * seas + 2.0 * rng.standard_normal(n), 2.0, None)
    cloud = np.clip(0.75 + 0.2 * rng.standard_normal(n), 0.2, 1.0)
    rad = clear_sky_radiation(lat, doy) * cloud
    tmin, tmax = tmean - trange / 2, tmean + trange / 2
    return Forcing(
        tmin,
        tmax,
        rad,
        np.full(n, float(cfg["co2"])),
        day_length(lat, doy),
        doy,
        _soil_temperature(0.5 * (tmin + tmax), tsoil_tau),
        lat,
    )


def forcing_from_file(path: str | Path, lat: float, co2: float, tsoil_tau: float = FIXED["tsoil_tau"]) -> Forcing:
    """Forcing CSV with columns ``tmin, tmax`` (degC), ``rad`` (MJ m-2 d-1), optional ``co2`` (ppm);
    one row per day starting 1 January, a whole number of 365-day years."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"forcing file {path} (data.elm.forcing_file) does not exist; "
            f"give a CSV with columns tmin,tmax,rad[,co2] or set it to null for the synthetic climate"
        )
    df = pd.read_csv(path)
    missing = {"tmin", "tmax", "rad"} - set(df.columns)
    if missing:
        raise ValueError(f"forcing file {path} lacks column(s) {sorted(missing)}; needs tmin,tmax,rad[,co2]")
    if len(df) == 0 or len(df) % DAYS:
        raise ValueError(f"forcing file {path} has {len(df)} rows; it needs a whole number of 365-day years")
    doy = np.arange(len(df)) % DAYS
    tmin, tmax = df["tmin"].to_numpy(float), df["tmax"].to_numpy(float)
    c = df["co2"].to_numpy(float) if "co2" in df else np.full(len(df), float(co2))
    return Forcing(
        tmin,
        tmax,
        df["rad"].to_numpy(float),
        c,
        day_length(lat, doy),
        doy,
        _soil_temperature(0.5 * (tmin + tmax), tsoil_tau),
        lat,
    )


# -------------------------------------------------------------------------------------------- processes
def acm_gpp(lai, leaf_n_area, nue, tmin, tmax, rad, co2, dayl_s, psid=FIXED["psid"], rtot=FIXED["rtot"]):
    """Aggregated Canopy Model daily GPP (gC m-2 d-1); ``dayl_s`` in seconds, ``rad`` in MJ m-2 d-1."""
    a = ACM
    gs = np.abs(psid) ** a["a10"] / (a["a6"] * rtot + 0.5 * (tmax - tmin))
    pp = lai * leaf_n_area / gs * nue * np.exp(a["a8"] * tmax)
    qq = a["a3"] - a["a4"]
    b = co2 + qq - pp
    ci = 0.5 * (b + np.sqrt(np.maximum(b * b - 4 * (co2 * qq - pp * a["a3"]), 0.0)))
    e0 = a["a7"] * lai**2 / (lai**2 + a["a9"])
    num = e0 * rad * gs * (co2 - ci)
    den = e0 * rad + gs * (co2 - ci)
    cps = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    return np.maximum(cps, 0.0) * (a["a2"] * dayl_s / 3600.0 + a["a5"])


def _q10(q10, t, tref):
    return np.exp(np.log(q10) * (t - tref) / 10.0)


def _linear_graph(p: dict) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """pool -> (list of (destination, fraction of outflow), respired fraction of outflow)."""
    return {
        "livestemc": ([("deadstemc", 1.0)], 0.0),
        "deadstemc": ([("cwdc", 1.0)], 0.0),
        "livecrootc": ([("deadcrootc", 1.0)], 0.0),
        "deadcrootc": ([("cwdc", 1.0)], 0.0),
        "cwdc": ([("lit2c", p["cwd_cel"]), ("lit3c", 1 - p["cwd_cel"])], 0.0),
        "lit1c": ([("som1c", 1 - p["rf_l1"])], p["rf_l1"]),
        "lit2c": ([("som2c", 1 - p["rf_l2"])], p["rf_l2"]),
        "lit3c": ([("som3c", 1 - p["rf_l3"])], p["rf_l3"]),
        "som1c": ([("som2c", 1 - p["rf_s1"])], p["rf_s1"]),
        "som2c": ([("som3c", 1 - p["rf_s2"])], p["rf_s2"]),
        "som3c": ([("som4c", 1 - p["rf_s3"])], p["rf_s3"]),
        "som4c": ([], 1.0),
    }


def _decay_factors(p: dict, tsoil: np.ndarray) -> dict[str, np.ndarray]:
    """Daily retention factor exp(-k) of each linear pool; shape broadcastable to (days, members)."""
    ts = _q10(p["q10_hr"][None, :], tsoil[:, None], 25.0) * p["w_scalar"]
    out = {
        "livestemc": np.exp(-p["lwtop"] / DAYS),
        "deadstemc": np.exp(-p["wood_mort"] / DAYS),
        "livecrootc": np.exp(-p["lwtop"] / DAYS),
        "deadcrootc": np.exp(-p["wood_mort"] / DAYS),
        "cwdc": np.exp(-p["k_frag"] * ts),
    }
    for pool, k in (
        ("lit1c", "k_l1"),
        ("lit2c", "k_l2"),
        ("lit3c", "k_l3"),
        ("som1c", "k_s1"),
        ("som2c", "k_s2"),
        ("som3c", "k_s3"),
        ("som4c", "k_s4"),
    ):
        out[pool] = np.exp(-p[k] * ts)
    return {k: np.broadcast_to(np.asarray(v, dtype=float), (len(tsoil), ts.shape[1])) for k, v in out.items()}


# -------------------------------------------------------------------------------------------- the model
class ELM:
    """The model for one chunk of members. ``params``: name -> array (members,) for every parameter."""

    def __init__(self, params: dict[str, np.ndarray], forcing: Forcing):
        self.p = params
        self.f = forcing
        self.n = len(next(iter(params.values())))
        self.graph = _linear_graph(params)
        self.decay = _decay_factors(params, forcing.tsoil)  # (days, n)
        self.state = {k: np.full(self.n, v, dtype=float) for k, v in INIT.items()}
        self.phase = np.zeros(self.n, dtype=np.int8)  # 0 dormant, 1 onset, 2 leaves on, 3 offset
        self.counter = np.zeros(self.n)
        self.gdd = np.zeros(self.n)
        self.onset_done = np.zeros(self.n, dtype=bool)
        p = params
        tot = 1.0 + p["froot_leaf"] + p["stem_leaf"] * (1.0 + p["croot_stem"])
        self.f_leaf, self.f_froot = 1.0 / tot, p["froot_leaf"] / tot
        self.f_stem, self.f_croot = p["stem_leaf"] / tot, p["stem_leaf"] * p["croot_stem"] / tot
        self.leaf_n_area = 1.0 / (p["slatop"] * p["leafcn"])
        self.mr_base = p["br_mr"] * 86400.0

    # one day ------------------------------------------------------------------------------------------
    def step(self, t: int) -> dict[str, np.ndarray]:
        """Advance one day (forcing index ``t``); return the day's fluxes (gC m-2 d-1) and inputs."""
        s, p, f = self.state, self.p, self.f
        doy, tair, tsoil = f.doy[t], 0.5 * (f.tmin[t] + f.tmax[t]), f.tsoil[t]
        if doy == 0:
            self.gdd[:] = 0.0
            self.onset_done[:] = False
        self.gdd += max(tsoil, 0.0)

        # phenology transitions (start of day)
        start_on = (self.phase == 0) & ~self.onset_done & (doy < 182) & (self.gdd >= p["gdd_crit"])
        start_off = ((self.phase == 1) | (self.phase == 2)) & (doy >= 182) & (f.dayl[t] < p["crit_dayl"])
        self.phase[start_on], self.counter[start_on], self.onset_done[start_on] = 1, 0.0, True
        self.phase[start_off], self.counter[start_off] = 3, 0.0
        onset, offset = self.phase == 1, self.phase == 3
        displayed = onset | (self.phase == 2)

        # transfers from storage at onset, litterfall at offset: pool / days left, all on the last day
        frac_on = np.where(onset, np.minimum(1.0, 1.0 / np.maximum(p["ndays_on"] - self.counter, 1e-12)), 0.0)
        frac_off = np.where(offset, np.minimum(1.0, 1.0 / np.maximum(p["ndays_off"] - self.counter, 1e-12)), 0.0)
        turn = np.where(displayed, 1.0 / (p["leaf_long"] * DAYS), 0.0)
        leaf_on, froot_on = s["leafc_stor"] * frac_on, s["frootc_stor"] * frac_on
        leaf_lit = s["leafc"] * np.maximum(frac_off, turn)
        froot_lit = s["frootc"] * np.maximum(frac_off, turn)

        # GPP and respiration
        lai = s["leafc"] * p["slatop"]
        gpp = acm_gpp(lai, self.leaf_n_area, p["nue"], f.tmin[t], f.tmax[t], f.rad[t], f.co2[t], f.dayl[t])
        qa, qs = _q10(p["q10_mr"], tair, 20.0), _q10(p["q10_mr"], tsoil, 20.0)
        mr = self.mr_base * (
            qa * (s["leafc"] / p["leafcn"] + s["livestemc"] / p["livewdcn"])
            + qs * (s["frootc"] / p["frootcn"] + s["livecrootc"] / p["livewdcn"])
        )
        avail = gpp - mr
        repay = np.clip(p["xsmr_repay"] * avail, 0.0, np.maximum(-s["xsmrc"], 0.0))
        grow = np.maximum(avail - repay, 0.0)
        d_xsmr = np.where(avail < 0, avail, repay)
        new = grow / (1.0 + p["rg_frac"])
        gr = grow - new
        fcur = np.where(displayed, p["fcur"], 0.0)
        a_leaf, a_froot = new * self.f_leaf, new * self.f_froot
        a_stem, a_croot = new * self.f_stem, new * self.f_croot
        ext = {
            "livestemc": a_stem * p["flivewd"],
            "deadstemc": a_stem * (1 - p["flivewd"]),
            "livecrootc": a_croot * p["flivewd"],
            "deadcrootc": a_croot * (1 - p["flivewd"]),
            "lit1c": p["lit_lab"] * (leaf_lit + froot_lit),
            "lit2c": p["lit_cel"] * (leaf_lit + froot_lit),
            "lit3c": (1 - p["lit_lab"] - p["lit_cel"]) * (leaf_lit + froot_lit),
        }

        # linear wood / litter / soil cascade, all from start-of-day pools
        inflow = dict(ext)
        hr = np.zeros(self.n)
        out = {}
        for pool, (dests, rf) in self.graph.items():
            o = s[pool] * (1.0 - self.decay[pool][t])
            out[pool] = o
            for dest, frac in dests:
                inflow[dest] = inflow.get(dest, 0.0) + frac * o
            hr = hr + rf * o
        for pool in self.graph:
            s[pool] = s[pool] - out[pool] + inflow.get(pool, 0.0)

        s["leafc"] = s["leafc"] + leaf_on - leaf_lit + fcur * a_leaf
        s["leafc_stor"] = s["leafc_stor"] - leaf_on + (1 - fcur) * a_leaf
        s["frootc"] = s["frootc"] + froot_on - froot_lit + fcur * a_froot
        s["frootc_stor"] = s["frootc_stor"] - froot_on + (1 - fcur) * a_froot
        s["xsmrc"] = s["xsmrc"] + d_xsmr

        # phenology counters (end of day)
        self.counter += 1.0
        done_on = onset & (self.counter >= p["ndays_on"])
        done_off = offset & (self.counter >= p["ndays_off"])
        self.phase[done_on] = 2
        self.phase[done_off] = 0
        return {"gpp": gpp, "mr": mr, "gr": gr, "hr": hr, "lai": lai, "ext": ext}

    def total_c(self) -> np.ndarray:
        return sum(self.state[k] for k in POOLS)

    # cycles ------------------------------------------------------------------------------------------
    def run_cycle(self, record_inputs: bool = False, daily: bool = False) -> dict[str, np.ndarray]:
        """Run once through the forcing. Returns annual sums / maxima per year (years, members), and
        optionally the daily external inputs to the linear pools (for a spin-up jump) or daily series."""
        nd, ny = self.f.n_days, self.f.n_days // DAYS
        ann = {k: np.zeros((ny, self.n)) for k in ("gpp", "mr", "gr", "hr", "lai_max")}
        means = {k: np.zeros(self.n) for k in ("leafc", "frootc", "totvegc", "totsomc")}
        ext = (
            {
                k: np.empty((nd, self.n))
                for k in ("livestemc", "deadstemc", "livecrootc", "deadcrootc", "lit1c", "lit2c", "lit3c")
            }
            if record_inputs
            else None
        )
        series = (
            {k: np.empty((nd, self.n)) for k in ("gpp", "mr", "gr", "hr", "lai", "totc", "somc")} if daily else None
        )
        for t in range(nd):
            y = t // DAYS
            fl = self.step(t)
            for k in ("gpp", "mr", "gr", "hr"):
                ann[k][y] += fl[k]
            np.maximum(ann["lai_max"][y], fl["lai"], out=ann["lai_max"][y])
            s = self.state
            means["leafc"] += s["leafc"]
            means["frootc"] += s["frootc"]
            means["totvegc"] += sum(s[k] for k in VEG)
            means["totsomc"] += sum(s[k] for k in SOM)
            if ext is not None:
                for k in ext:
                    ext[k][t] = fl["ext"][k]
            if series is not None:
                for k in ("gpp", "mr", "gr", "hr", "lai"):
                    series[k][t] = fl[k]
                series["totc"][t] = self.total_c()
                series["somc"][t] = sum(s[k] for k in SOM)
        res = {**ann, **{k: v / nd for k, v in means.items()}}
        if ext is not None:
            res["ext"] = ext
        if series is not None:
            res["daily"] = series
        return res

    def analytic_jump(self, ext: dict[str, np.ndarray]) -> None:
        """Set the linear pools to the periodic steady state over one forcing cycle given its inputs.

        Exact for the daily recurrence ``c[t+1] = a[t] c[t] + u[t]`` the step uses: from zero,
        ``c_end = sum_t (prod_{s>t} a[s]) u[t]``, so the periodic start value is ``c_end / (1 - prod_t a[t])``.
        """
        nd = self.f.n_days
        traj: dict[str, np.ndarray] = {}
        inflow = {k: v.copy() for k, v in ext.items()}
        for pool, (dests, _rf) in self.graph.items():  # the graph is in topological order
            a = self.decay[pool]
            u = inflow.get(pool, np.zeros((nd, self.n)))
            c0, P = np.zeros(self.n), np.ones(self.n)
            path0, Pt = np.empty((nd, self.n)), np.empty((nd, self.n))
            for t in range(nd):
                path0[t], Pt[t] = c0, P
                c0 = a[t] * c0 + u[t]
                P = P * a[t]
            start = c0 / np.maximum(1.0 - P, 1e-300)
            traj[pool] = path0 + Pt * start
            self.state[pool] = start.copy()
            outflow = traj[pool] * (1.0 - a)
            for dest, frac in dests:
                inflow[dest] = inflow.get(dest, np.zeros((nd, self.n))) + frac * outflow

    def spin_up(self, cycles: int, jumps: int) -> None:
        for c in range(cycles):
            res = self.run_cycle(record_inputs=c < jumps)
            if c < jumps:
                self.analytic_jump(res["ext"])


# ------------------------------------------------------------------------------------------ ensembles
def full_params(design: pd.DataFrame, fixed: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Per-member arrays of every model parameter: design columns, then fixed overrides, then defaults."""
    fixed = fixed or {}
    bad = sorted(set(fixed) - set(FIXED) - set(PERTURBED))
    if bad:
        raise ValueError(
            f"`data.elm.fixed` names unknown parameter(s) {bad}; known: "
            f"{', '.join(sorted(set(FIXED) | set(PERTURBED)))}"
        )
    unknown = sorted(set(design.columns) - set(PERTURBED) - set(FIXED))
    if unknown:
        raise ValueError(f"`data.elm.ranges` names unknown parameter(s) {unknown}; known: {', '.join(PERTURBED)}")
    n = len(design)
    out = {k: np.full(n, float(v[0])) for k, v in PERTURBED.items()}
    out.update({k: np.full(n, float(v)) for k, v in FIXED.items()})
    out.update({k: np.full(n, float(v)) for k, v in fixed.items()})
    out.update({k: design[k].to_numpy(dtype=float) for k in design.columns})
    return out


def run_ensemble(
    design: pd.DataFrame,
    forcing: Forcing,
    spinup_cycles: int,
    analytic_jumps: int,
    fixed: dict[str, float] | None = None,
    chunk: int = 512,
    n_traj: int = 0,
):
    """QoI table (members x 10) for a design; optionally daily GPP/LAI of the first ``n_traj`` members."""
    rows, traj = [], []
    for lo in range(0, len(design), chunk):
        part = design.iloc[lo : lo + chunk].reset_index(drop=True)
        m = ELM(full_params(part, fixed), forcing)
        m.spin_up(spinup_cycles, analytic_jumps)
        want = max(0, min(n_traj - lo, len(part)))
        res = m.run_cycle(daily=want > 0)
        rows.append(qois(res))
        if want:
            d = res["daily"]
            for j in range(want):
                traj.append(
                    pd.DataFrame(
                        {
                            "member": lo + j,
                            "day": np.arange(forcing.n_days),
                            "doy": forcing.doy,
                            "gpp": d["gpp"][:, j],
                            "lai": d["lai"][:, j],
                        }
                    )
                )
    y = pd.concat(rows, ignore_index=True)
    return y, (pd.concat(traj, ignore_index=True) if traj else None)


def qois(res: dict) -> pd.DataFrame:
    gpp, mr, gr, hr = res["gpp"].mean(0), res["mr"].mean(0), res["gr"].mean(0), res["hr"].mean(0)
    return pd.DataFrame(
        {
            "gpp": gpp,
            "npp": gpp - mr - gr,
            "nee": mr + gr + hr - gpp,
            "hr": hr,
            "mr": mr,
            "lai_max": res["lai_max"].mean(0),
            "leafc": res["leafc"],
            "frootc": res["frootc"],
            "totvegc": res["totvegc"],
            "totsomc": res["totsomc"],
        }
    )[list(QOIS)]
