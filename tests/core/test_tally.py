"""Totals per area at every level, which acta counts, and the results files bound to a checkpoint."""

from __future__ import annotations

import json

from actas.core.tally import Binding, ConflictRecord, Tally, expected_per_area, results_files, tally_entries
from tests.factories import election_and_enrollments, signed_acta, small_election


def test_rows_roll_up_the_area_tree() -> None:
    """An acta counts in its centre and every ancestor, and nowhere else."""
    election = small_election()
    tally = Tally(election, election.contests[0])
    tally.add(0, (120, 90, 30), 5, 3, 500)
    centre = election.mesa_area(0)
    path = set(election.area_path(centre))
    for index in range(len(election.areas)):
        row = tally.row(index)
        if index in path:
            assert row == [1, 500, 5, 3, 120, 90, 30]
        else:
            assert row == [0, 0, 0, 0, 0, 0, 0]
    assert tally.national() == [1, 500, 5, 3, 120, 90, 30]


def test_adding_after_rollup_refreshes_totals() -> None:
    """Totals are recomputed when more actas arrive after a read."""
    election = small_election()
    tally = Tally(election, election.contests[0])
    tally.add(0, (1, 2, 3), 0, 0, 500)
    assert tally.national()[4:] == [1, 2, 3]
    tally.add(5, (10, 20, 30), 1, 1, 500)
    assert tally.national() == [2, 1000, 1, 1, 11, 22, 33]


def test_first_acta_counts_and_later_ones_are_conflicts() -> None:
    """tally_entries counts the first acta of a mesa and lists the later different one."""
    election = small_election()
    entries = election_and_enrollments(election)
    first_leaf = len(entries)
    entries.append(signed_acta(election, 0, tickets=(100, 20, 90, 30)))
    entries.append(signed_acta(election, 1))
    entries.append(signed_acta(election, 0, tickets=(1, 1, 1, 1)))
    tallies, conflicts = tally_entries(election, entries)
    assert conflicts == [ConflictRecord(election.mesa_id(0), "presidente", (first_leaf, first_leaf + 2))]
    national = tallies[0].national()
    assert national[0] == 2  # two mesas counted
    assert national[4:] == [240, 180, 60]


def test_results_files_are_bound_and_complete() -> None:
    """One national file with conflicts and one file per level, each naming the checkpoint."""
    election = small_election()
    tally = Tally(election, election.contests[0])
    tally.add(0, (120, 90, 30), 5, 3, 500)
    binding = Binding(election.origin, 42, bytes(range(32)))
    files = results_files([tally], binding, [])
    assert sorted(files) == sorted(
        ["results/presidente/national.json"] + [f"results/presidente/{level}.json" for level in election.levels]
    )
    national = json.loads(files["results/presidente/national.json"])
    assert national["checkpoint"] == {"root": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "size": 42}
    assert national["areas"][0]["votes"] == [120, 90, 30]
    assert national["areas"][0]["cast"] == 248
    assert national["areas"][0]["mesas"] == election.mesa_count
    assert national["conflicts"] == []
    states = json.loads(files["results/presidente/estado.json"])
    assert [a["code"] for a in states["areas"]] == ["01", "02"]
    assert sum(a["actas"] for a in states["areas"]) == 1


def test_expected_per_area_sums_the_definition() -> None:
    """Mesas and registered voters per area come from the definition."""
    election = small_election()
    mesas, registered = expected_per_area(election)
    roots = [i for i, a in enumerate(election.areas) if a.parent < 0]
    assert sum(mesas[i] for i in roots) == election.mesa_count
    assert sum(registered[i] for i in roots) == election.registered_total
