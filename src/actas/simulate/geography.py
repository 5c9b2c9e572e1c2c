"""A synthetic national election shaped like Venezuela's 2024 presidential, at any scale.

At full scale (``mesas=30026``) the definition has 24 states, 335 municipalities, 1,150 parishes,
15,797 centres, 30,026 mesas and about 21.4 M registered voters, the published figures of 2024. Other sizes
scale every level by ``s = mesas / 30026``:

* below full scale the upper levels keep their real counts as long as there are mesas for them (24 states
  down to ``mesas=24``; then one state, municipality, parish and centre per mesa), and the lower levels
  shrink linearly: municipalities ``max(states, 335 s)``, parishes ``max(municipalities, 1150 s)``, centres
  ``max(parishes, 15797 s)``;
* above it states grow as ``24 √s`` (139 at a million mesas, India's scale) and the other levels linearly.

Each parent gets at least one child and the rest are spread with log-normal weights, so sizes are skewed
(one big state with many municipalities, many parishes with one or two centres). A centre holds 1 to 12 mesas
(mean 1.9, most centres have one or two). Codes are hierarchical like the CNE's: state ``01``, municipality
``0101``, parish ``010101``, centre ``010101001`` (2+2+2+3 digits) and mesa ``<centre>.<nn>``; a field widens
when a parent has more children than its digits hold.

Registered voters: the real mean is about 712 per mesa, so a distribution with most mesas under ~650 could
not reach the real total. Each centre draws a fill ``Beta(5, 2)`` of the 1,000-voter maximum (mean 0.714),
its mesas vary ±3% around it, and the column is rescaled so the total is ``21.4 M × mesas / 30026`` (the
factor is within a few per mille of 1, so little is clipped): about 88% of mesas have under 900 voters,
about 1% under 250, and none more than the hard maximum of 1,000.

The contest ``presidente`` has 10 fictional candidates and 38 tickets (party cards) in ballot order:
candidate 1 has positions 1–13, candidate 8 positions 34–36, and the other 22 go to the other eight. All
names are synthetic. Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments give
the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from actas.core.election import Election
from actas.errors import DefinitionError

VE_MESAS = 30_026
VE_CENTRES = 15_797
VE_PARISHES = 1_150
VE_MUNICIPALITIES = 335
VE_STATES = 24
VE_REGISTERED = 21_400_000
MAX_MESAS = 2_000_000
MAX_PER_MESA = 1_000
MAX_MESAS_PER_CENTRE = 12
DEFAULT_ORIGIN = "results.example.org/ve-2024-sim"

CANDIDATES = tuple(f"Candidatura {letter}" for letter in "ABCDEFGHIJ")
# Ballot order of the 38 tickets, as the index of the candidate each counts for.
TICKET_LAYOUT = (0,) * 13 + (1,) * 4 + (2,) * 4 + (3,) * 3 + (4,) * 3 + (5,) * 3 + (6,) * 3 + (7,) * 3 + (8, 9)
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"id": "registered-matches", "severity": "error", "check": "registered_matches_definition"},
    {"id": "turnout-high", "severity": "warning", "check": "turnout_at_most", "percent": 95},
    {"id": "null-high", "severity": "warning", "check": "null_at_most", "percent": 10},
)
_CENTRE_KINDS = ("U.E.", "Escuela Básica", "Liceo", "Unidad Educativa", "Colegio", "Escuela Nacional")

Counts = NDArray[np.int64]


def level_counts(mesas: int) -> tuple[int, int, int, int]:
    """Return the number of states, municipalities, parishes and centres for a number of mesas."""
    s = mesas / VE_MESAS
    states = min(VE_STATES, mesas) if s <= 1 else round(VE_STATES * math.sqrt(s))
    municipalities = max(states, round(VE_MUNICIPALITIES * s))
    parishes = max(municipalities, round(VE_PARISHES * s))
    centres = max(parishes, min(mesas, round(VE_CENTRES * s)))
    return states, municipalities, parishes, centres


def _allocate(rng: np.random.Generator, total: int, bins: int, sigma: float, cap: int = 0) -> Counts:
    """Split ``total`` items into ``bins`` ≥ 1 each, skewed by log-normal weights, optionally capped."""
    counts = np.ones(bins, dtype=np.int64)
    weights = rng.lognormal(0.0, sigma, bins)
    extra = total - bins
    if extra > 0:
        counts += rng.multinomial(extra, weights / weights.sum())
    while cap and (excess := int(np.maximum(counts - cap, 0).sum())):
        np.minimum(counts, cap, out=counts)
        room = np.where(counts < cap, weights, 0.0)
        counts += rng.multinomial(excess, room / room.sum())
    return counts


def _child_codes(parent_codes: list[str], counts: Counts, min_width: int) -> list[str]:
    """Codes of children: the parent's code followed by the 1-based ordinal, zero-padded."""
    width = max(min_width, len(str(int(counts.max()))))
    return [
        f"{code}{k:0{width}d}" for code, n in zip(parent_codes, counts.tolist(), strict=True) for k in range(1, n + 1)
    ]


def _registered(rng: np.random.Generator, per_centre: Counts, mesas: int) -> list[int]:
    """Registered voters per mesa (see the module docstring)."""
    fill = rng.beta(5.0, 2.0, per_centre.size)
    raw = np.repeat(fill, per_centre) * rng.normal(1.0, 0.03, mesas) * MAX_PER_MESA
    target = VE_REGISTERED * mesas / VE_MESAS
    scaled = raw * (target / raw.sum())
    return np.clip(np.rint(scaled), 1, MAX_PER_MESA).astype(np.int64).tolist()  # type: ignore[no-any-return]


def _contest() -> dict[str, Any]:
    options = [{"id": f"cand-{chr(ord('a') + i)}", "name": name} for i, name in enumerate(CANDIDATES)]
    tickets = [
        {"id": f"p{pos:02d}", "name": f"Partido Simulado {pos:02d}", "option": options[opt]["id"]}
        for pos, opt in enumerate(TICKET_LAYOUT, start=1)
    ]
    return {"id": "presidente", "name": "Presidencia de la República", "options": options, "tickets": tickets}


def generate_value(mesas: int, seed: int, origin: str = DEFAULT_ORIGIN) -> dict[str, Any]:
    """Return the JSON value of a synthetic election definition (see the module docstring)."""
    if type(mesas) is not int or not 1 <= mesas <= MAX_MESAS:
        raise DefinitionError(f"mesas: {mesas!r} is outside 1..{MAX_MESAS}")
    rng = np.random.default_rng(seed)
    n_states, n_munis, n_parishes, n_centres = level_counts(mesas)
    munis_per_state = _allocate(rng, n_munis, n_states, 0.5)
    parishes_per_muni = _allocate(rng, n_parishes, n_munis, 0.5)
    centres_per_parish = _allocate(rng, n_centres, n_parishes, 0.8)
    mesas_per_centre = _allocate(rng, mesas, n_centres, 1.2, MAX_MESAS_PER_CENTRE)

    state_codes = [f"{k:0{max(2, len(str(n_states)))}d}" for k in range(1, n_states + 1)]
    muni_codes = _child_codes(state_codes, munis_per_state, 2)
    parish_codes = _child_codes(muni_codes, parishes_per_muni, 2)
    centre_codes = _child_codes(parish_codes, centres_per_parish, 3)
    mesa_width = max(2, len(str(int(mesas_per_centre.max()))))
    kinds = rng.integers(0, len(_CENTRE_KINDS), n_centres).tolist()

    centres = [{"code": c, "name": f"{_CENTRE_KINDS[k]} Centro {c}"} for c, k in zip(centre_codes, kinds, strict=True)]
    parishes = _nest(parish_codes, "Parroquia", centres, centres_per_parish)
    munis = _nest(muni_codes, "Municipio", parishes, parishes_per_muni)
    states = _nest(state_codes, "Estado", munis, munis_per_state)

    registered = _registered(rng, mesas_per_centre, mesas)
    mesa_values = [
        {"id": f"{centre}.{k:0{mesa_width}d}", "area": centre, "registered": 0}
        for centre, n in zip(centre_codes, mesas_per_centre.tolist(), strict=True)
        for k in range(1, n + 1)
    ]
    for mesa, count in zip(mesa_values, registered, strict=True):
        mesa["registered"] = count
    return {
        "v": 1,
        "origin": origin,
        "title": f"Elección presidencial simulada ({mesas} mesas, semilla {seed})",
        "levels": ["estado", "municipio", "parroquia", "centro"],
        "areas": states,
        "mesas": mesa_values,
        "contests": [_contest()],
        "rules": [dict(rule) for rule in DEFAULT_RULES],
    }


def _nest(codes: list[str], kind: str, children: list[dict[str, Any]], counts: Counts) -> list[dict[str, Any]]:
    """Build area values for codes, handing out ``children`` in order by ``counts``."""
    out: list[dict[str, Any]] = []
    start = 0
    for code, n in zip(codes, counts.tolist(), strict=True):
        out.append({"code": code, "name": f"{kind} {code}", "children": children[start : start + n]})
        start += n
    return out


def generate_election(mesas: int, seed: int, origin: str = DEFAULT_ORIGIN) -> Election:
    """Generate a synthetic election definition shaped like Venezuela 2024 (see the module docstring)."""
    return Election.from_value(generate_value(mesas, seed, origin))
