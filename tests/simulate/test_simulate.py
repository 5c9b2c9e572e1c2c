"""The synthetic Venezuela-2024-shaped election: shape at full scale, determinism, small sizes, invariants."""

from __future__ import annotations

import time

import numpy as np
import pytest

from actas.core.election import Election
from actas.errors import DefinitionError
from actas.simulate.geography import (
    VE_CENTRES,
    VE_MESAS,
    VE_MUNICIPALITIES,
    VE_PARISHES,
    VE_REGISTERED,
    generate_election,
    level_counts,
)
from actas.simulate.votes import MesaCounts, count_chunks, default_shares, generate_counts


@pytest.fixture(scope="module")
def full() -> Election:
    """The full-scale election (30,026 mesas)."""
    return generate_election(VE_MESAS, seed=2024)


@pytest.fixture(scope="module")
def full_counts(full: Election) -> list[MesaCounts]:
    """Counts for every mesa of the full-scale election."""
    return list(generate_counts(full, seed=7))


def _within(value: int, target: int, tolerance: float) -> bool:
    return abs(value - target) <= tolerance * target


def test_full_scale_shape(full: Election) -> None:
    assert len(full.level_areas(0)) == 24
    assert _within(len(full.level_areas(1)), VE_MUNICIPALITIES, 0.05)
    assert _within(len(full.level_areas(2)), VE_PARISHES, 0.05)
    assert _within(len(full.leaf_areas()), VE_CENTRES, 0.05)
    assert full.mesa_count == VE_MESAS
    assert _within(full.registered_total, VE_REGISTERED, 0.02)
    registered = np.frombuffer(full.mesa_registered_column(), dtype=np.uint32)
    assert registered.max() <= 1000
    assert 0.75 < np.mean((registered >= 200) & (registered <= 900)) < 0.98
    per_centre = np.bincount(np.frombuffer(full.mesa_area_column(), dtype=np.uint32))
    per_centre = per_centre[per_centre > 0]
    assert per_centre.size == len(full.leaf_areas())
    assert per_centre.min() >= 1
    assert per_centre.max() <= 12
    assert full.areas[full.leaf_areas()[0]].code == "010101001"
    assert full.mesa_id(0) == "010101001.01"


def test_full_scale_ballot(full: Election) -> None:
    contest = full.contest("presidente")
    assert contest is not None
    assert len(contest.options) == 10
    assert len(contest.tickets) == 38
    assert contest.ticket_option.count(0) == 13
    assert contest.ticket_option[:13] == (0,) * 13
    assert [i + 1 for i, o in enumerate(contest.ticket_option) if o == 7] == [34, 35, 36]
    assert all(contest.ticket_option.count(o) >= 1 for o in range(10))
    assert [(r.check, r.severity, r.percent) for r in full.rules] == [
        ("registered_matches_definition", "error", None),
        ("turnout_at_most", "warning", 95),
        ("null_at_most", "warning", 10),
    ]


def test_level_counts_scale() -> None:
    assert level_counts(VE_MESAS) == (24, 335, 1150, 15797)
    assert level_counts(1) == (1, 1, 1, 1)
    assert level_counts(7) == (7, 7, 7, 7)
    states, munis, parishes, centres = level_counts(1_000_000)
    assert 24 < states < munis < parishes < centres < 1_000_000


def test_determinism(full: Election, full_counts: list[MesaCounts]) -> None:
    again = generate_election(VE_MESAS, seed=2024)
    assert again.to_canonical() == full.to_canonical()
    assert list(generate_counts(again, seed=7)) == full_counts
    other = generate_election(VE_MESAS, seed=2025)
    assert other.digest != full.digest
    small = generate_election(500, seed=1)
    assert list(generate_counts(small, seed=1)) != list(generate_counts(small, seed=2))


@pytest.mark.parametrize("mesas", [1, 7, 24, 100, 1000])
def test_small_sizes_are_valid(mesas: int) -> None:
    election = generate_election(mesas, seed=3)
    assert election.mesa_count == mesas
    assert Election.from_json(election.to_canonical()).digest == election.digest
    assert len(election.level_areas(0)) == min(24, mesas)
    counts = list(generate_counts(election, seed=3))
    assert [c.mesa for c in counts] == list(range(mesas))
    _check_invariants(election, counts)


def test_bad_size_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"^mesas: "):
        generate_election(0, seed=1)


def _check_invariants(election: Election, counts: list[MesaCounts]) -> None:
    contest = election.contests[0]
    for c in counts:
        assert c.contest == contest.id
        assert c.registered == election.mesa_registered(c.mesa)
        assert len(c.tickets) == len(contest.tickets)
        assert min(c.tickets) >= 0
        assert min(c.null, c.blank) >= 0
        assert c.valid + c.null + c.blank == c.voters <= c.registered


def test_invariants_full_scale(full: Election, full_counts: list[MesaCounts]) -> None:
    assert [c.mesa for c in full_counts] == list(range(full.mesa_count))
    _check_invariants(full, full_counts)


def test_national_results_are_plausible(full: Election, full_counts: list[MesaCounts]) -> None:
    tickets = np.array([c.tickets for c in full_counts], dtype=np.int64)
    null = sum(c.null for c in full_counts)
    blank = sum(c.blank for c in full_counts)
    voters = int(tickets.sum()) + null + blank
    assert 0.55 < voters / full.registered_total < 0.75
    assert 0.005 < null / voters < 0.02
    assert 0.002 < blank / voters < 0.01
    contest = full.contests[0]
    options = np.zeros(len(contest.options))
    np.add.at(options, np.array(contest.ticket_option), tickets.sum(axis=0))
    shares = options / options.sum()
    assert abs(shares[0] - shares[7]) < 0.15
    assert shares[0] + shares[7] > 0.85
    assert max(np.delete(shares, [0, 7])) < 0.05
    ticket_totals = tickets[:, :13].sum(axis=0)
    assert ticket_totals.max() > 3 * ticket_totals.min()  # some party cards much bigger than others


def test_regional_variation(full: Election, full_counts: list[MesaCounts]) -> None:
    states = [full.area_ancestor(full.mesa_area(c.mesa), 0) for c in full_counts]
    voters = np.zeros(len(full.areas))
    registered = np.zeros(len(full.areas))
    leader = np.zeros(len(full.areas))
    for state, c in zip(states, full_counts, strict=True):
        voters[state] += c.voters
        registered[state] += c.registered
        leader[state] += sum(c.tickets[:13])
    rows = list(full.level_areas(0))
    turnout = voters[rows] / registered[rows]
    assert turnout.std() > 0.01
    assert (leader[rows] / voters[rows]).std() > 0.02


def test_chunks_match_counts() -> None:
    election = generate_election(300, seed=5)
    chunks = list(count_chunks(election, seed=9))
    counts = list(generate_counts(election, seed=9))
    assert sum(chunk.tickets.shape[0] for chunk in chunks) == len(counts)
    assert chunks[0].tickets[5].tolist() == list(counts[5].tickets)


def test_default_shares() -> None:
    for n in (1, 2, 3, 10, 12):
        shares = default_shares(n)
        assert len(shares) == n
        assert abs(sum(shares) - 1) < 1e-9
    assert default_shares(10)[0] == 0.49
    assert default_shares(10)[7] == 0.46


@pytest.mark.slow
def test_million_mesas_in_time() -> None:
    start = time.perf_counter()
    election = generate_election(1_000_000, seed=1)
    assert time.perf_counter() - start < 60
    assert election.mesa_count == 1_000_000
    start = time.perf_counter()
    total = sum(int(chunk.tickets.sum()) for chunk in count_chunks(election, seed=1))
    assert time.perf_counter() - start < 30
    assert 0.5 * election.registered_total < total < 0.8 * election.registered_total
