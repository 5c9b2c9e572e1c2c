"""Synthetic vote counts for every mesa of an election, with regional variation.

Turnout is drawn per state (normal around 65%, sd 4.5 points), varied per municipality (sd 3 points) and per
mesa (sd 3.5 points), so most mesas fall between 55% and 75%. Candidate preferences are a Dirichlet around the
national shares per state (concentration 60, so a leader at 49% ranges roughly 37–61% across states), again
per municipality (150) and per mesa (400); the voters of a mesa are then split by binomial and multinomial
draws: null about 1%, blank about 0.5%, the rest over candidates, and each candidate's votes over its tickets
by fixed ticket weights drawn once (a Dirichlet with concentration 0.8, so some party cards are much bigger
than others). ``valid + null + blank ≤ registered`` always holds.

The default national shares put the first option at 49% and the eighth (or last) at 46%, the other 5% over the
rest with halving weights; pass ``shares`` to choose others. The work is vectorised in chunks of 65,536 mesas
(numpy); everything is drawn from ``numpy.random.default_rng(seed)``, so the counts are a function of the
election and the seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from actas.core.election import Contest, Election
from actas.errors import DefinitionError

CHUNK = 65_536
TURNOUT_MEAN, TURNOUT_STATE_SD, TURNOUT_MUNI_SD, TURNOUT_MESA_SD = 0.65, 0.045, 0.03, 0.035
NULL_RATE, BLANK_RATE = 0.010, 0.005
CONCENTRATION_STATE, CONCENTRATION_MUNI, CONCENTRATION_MESA = 60.0, 150.0, 400.0
TICKET_CONCENTRATION = 0.8

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class MesaCounts:
    """The counts of one mesa for one contest: per ticket in ballot order, null and blank."""

    mesa: int
    contest: str
    registered: int
    tickets: tuple[int, ...]
    null: int
    blank: int

    @property
    def valid(self) -> int:
        """Votes for tickets."""
        return sum(self.tickets)

    @property
    def voters(self) -> int:
        """Ballots cast: valid, null and blank."""
        return self.valid + self.null + self.blank


@dataclass(frozen=True, slots=True)
class CountChunk:
    """Counts of consecutive mesas as arrays: ``tickets`` has one row per mesa, one column per ticket."""

    first: int
    registered: Ints
    tickets: Ints
    null: Ints
    blank: Ints


def default_shares(options: int) -> tuple[float, ...]:
    """National shares: option 1 at 49%, option 8 (or the last) at 46%, 5% over the rest, halving."""
    if options == 1:
        return (1.0,)
    second = min(7, options - 1)
    others = [i for i in range(options) if i not in (0, second)]
    weights = [0.5**k for k in range(len(others))]
    shares = [0.0] * options
    shares[0], shares[second] = (0.49, 0.46) if others else (0.52, 0.48)
    for i, w in zip(others, weights, strict=True):
        shares[i] = 0.05 * w / sum(weights)
    return tuple(shares)


def _ancestors(parents: Ints, levels: Ints, level: int) -> Ints:
    """For every area, its ancestor at ``level`` (itself when at or above it)."""
    anc = np.arange(parents.size, dtype=np.int64)
    for _ in range(int(levels.max(initial=0))):
        deeper = levels[anc] > level
        anc = np.where(deeper, parents[anc], anc)
    return anc


def _dirichlet(rng: np.random.Generator, alpha: Floats) -> Floats:
    """Row-wise Dirichlet draws (alpha has one row per draw); an all-zero row falls back to alpha's shape."""
    draw = rng.gamma(alpha)
    total = draw.sum(axis=1, keepdims=True)
    bad = total[:, 0] <= 0
    if bad.any():
        draw[bad] = alpha[bad]
        total[bad] = alpha[bad].sum(axis=1, keepdims=True)
    return draw / total  # type: ignore[no-any-return]


def _choose_contest(election: Election, contest: str | None) -> Contest:
    if contest is None:
        return election.contests[0]
    found = election.contest(contest)
    if found is None:
        raise DefinitionError(f"contest: {contest!r} is not a contest of {election.origin}")
    return found


def _national(contest: Contest, shares: Sequence[float] | None) -> Floats:
    n = len(contest.options)
    values = np.asarray(default_shares(n) if shares is None else shares, dtype=np.float64)
    if values.shape != (n,) or not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
        raise DefinitionError(f"shares: need {n} non-negative numbers with a positive sum")
    return values / values.sum()  # type: ignore[no-any-return]


def count_chunks(
    election: Election, seed: int, *, contest: str | None = None, shares: Sequence[float] | None = None
) -> Iterator[CountChunk]:
    """Generate the counts of every mesa as arrays, in mesa order, ``CHUNK`` mesas at a time."""
    chosen = _choose_contest(election, contest)
    national = _national(chosen, shares)
    rng = np.random.default_rng(seed)
    parents = np.array([a.parent for a in election.areas], dtype=np.int64)
    levels = np.array([a.level for a in election.areas], dtype=np.int64)
    muni_level = min(1, len(election.levels) - 1)
    state_of = _ancestors(parents, levels, 0)
    muni_of = _ancestors(parents, levels, muni_level)
    mesa_area = np.frombuffer(election.mesa_area_column(), dtype=np.uint32).astype(np.int64)
    registered = np.frombuffer(election.mesa_registered_column(), dtype=np.uint32).astype(np.int64)

    # Regional parameters, indexed by area index (only the state / municipality rows are used).
    n_areas = parents.size
    state_turnout = rng.normal(TURNOUT_MEAN, TURNOUT_STATE_SD, n_areas)
    muni_turnout = state_turnout[state_of] + rng.normal(0.0, TURNOUT_MUNI_SD, n_areas)
    is_state = levels == 0
    is_muni = levels == muni_level
    state_prefs = np.zeros((n_areas, national.size))
    state_prefs[is_state] = _dirichlet(rng, np.tile(national * CONCENTRATION_STATE, (int(is_state.sum()), 1)))
    muni_prefs = np.zeros((n_areas, national.size))
    muni_prefs[is_muni] = _dirichlet(rng, state_prefs[state_of[is_muni]] * CONCENTRATION_MUNI)
    option_tickets = [np.flatnonzero(np.asarray(chosen.ticket_option) == o) for o in range(national.size)]
    ticket_weights = [rng.dirichlet(np.full(t.size, TICKET_CONCENTRATION)) for t in option_tickets]

    for lo in range(0, election.mesa_count, CHUNK):
        hi = min(lo + CHUNK, election.mesa_count)
        reg = registered[lo:hi]
        muni = muni_of[mesa_area[lo:hi]]
        turnout = np.clip(muni_turnout[muni] + rng.normal(0.0, TURNOUT_MESA_SD, hi - lo), 0.2, 0.95)
        voters = rng.binomial(reg, turnout)
        null = rng.binomial(voters, np.clip(rng.normal(NULL_RATE, NULL_RATE / 3, hi - lo), 0.0, 0.05))
        blank = rng.binomial(voters - null, np.clip(rng.normal(BLANK_RATE, BLANK_RATE / 3, hi - lo), 0.0, 0.03))
        prefs = _dirichlet(rng, muni_prefs[muni] * CONCENTRATION_MESA)
        per_option = rng.multinomial(voters - null - blank, prefs)
        tickets = np.zeros((hi - lo, len(chosen.tickets)), dtype=np.int64)
        for option, (columns, weights) in enumerate(zip(option_tickets, ticket_weights, strict=True)):
            if columns.size == 1:
                tickets[:, columns[0]] = per_option[:, option]
            else:
                tickets[:, columns] = rng.multinomial(per_option[:, option], weights)
        yield CountChunk(lo, reg, tickets, null.astype(np.int64), blank.astype(np.int64))


def generate_counts(
    election: Election, seed: int, *, contest: str | None = None, shares: Sequence[float] | None = None
) -> Iterator[MesaCounts]:
    """Generate one MesaCounts per mesa, in mesa order, for a contest (default: the first)."""
    contest_id = _choose_contest(election, contest).id
    for chunk in count_chunks(election, seed, contest=contest, shares=shares):
        rows = chunk.tickets.tolist()
        for j, (reg, null, blank) in enumerate(
            zip(chunk.registered.tolist(), chunk.null.tolist(), chunk.blank.tolist(), strict=True)
        ):
            yield MesaCounts(chunk.first + j, contest_id, reg, tuple(rows[j]), null, blank)
