"""Small, deterministic elections, keys and actas for tests (no randomness: seeds are fixed bytes)."""

from __future__ import annotations

import hashlib
from typing import Any

from actas.core.acta import Acta, option_totals
from actas.core.election import Election
from actas.core.entries import acta_entry, election_entry, enroll_entry
from actas.core.keys import Signer

ORIGIN = "results.example.org/test-election"


def seed(label: str) -> bytes:
    """A fixed 32-byte seed for a label."""
    return hashlib.sha256(f"actas-tests/{label}".encode()).digest()


def authority() -> Signer:
    """The test authority key (named after the origin, as checkpoints require)."""
    return Signer(ORIGIN, seed("authority"))


def device(n: int) -> Signer:
    """Test device key number n."""
    return Signer(f"dev-{n:04d}", seed(f"device/{n}"))


def election_value(mesas_per_centre: int = 2) -> dict[str, Any]:
    """Two states, one municipality, parish and two centres each; three options on four tickets."""
    areas = []
    mesas = []
    for s in (1, 2):
        state = f"{s:02d}"
        centres = []
        for c in (1, 2):
            code = f"{state}0101{c:03d}"
            centres.append({"code": code, "name": f"Centro {code}"})
            for m in range(1, mesas_per_centre + 1):
                mesas.append({"id": f"{code}.{m:02d}", "area": code, "registered": 500})
        parish = {"code": f"{state}0101", "name": f"Parroquia {state}0101", "children": centres}
        municipality = {"code": f"{state}01", "name": f"Municipio {state}01", "children": [parish]}
        areas.append({"code": state, "name": f"Estado {state}", "children": [municipality]})
    return {
        "v": 1,
        "origin": ORIGIN,
        "title": "Test election",
        "areas": areas,
        "mesas": mesas,
        "contests": [
            {
                "id": "presidente",
                "name": "Presidency",
                "options": [
                    {"id": "a", "name": "Option A"},
                    {"id": "b", "name": "Option B"},
                    {"id": "c", "name": "Option C"},
                ],
                "tickets": [
                    {"id": "t1", "name": "Party 1", "option": "a"},
                    {"id": "t2", "name": "Party 2", "option": "a"},
                    {"id": "t3", "name": "Party 3", "option": "b"},
                    {"id": "t4", "name": "Party 4", "option": "c"},
                ],
            }
        ],
        "rules": [
            {"id": "registered-matches", "severity": "error", "check": "registered_matches_definition"},
            {"id": "turnout-high", "severity": "warning", "check": "turnout_at_most", "percent": 95},
        ],
    }


def small_election() -> Election:
    """The test election."""
    return Election.from_value(election_value())


def make_acta(
    election: Election,
    mesa: int,
    tickets: tuple[int, ...] = (100, 20, 90, 30),
    null: int = 5,
    blank: int = 3,
    signer: Signer | None = None,
    registered: int | None = None,
    options: tuple[int, ...] | None = None,
) -> Acta:
    """An acta for mesa index ``mesa`` signed (by default) by device ``mesa``."""
    contest = election.contests[0]
    key = signer or device(mesa)
    return Acta(
        election=election.origin,
        mesa=election.mesa_id(mesa),
        contest=contest.id,
        registered=election.mesa_registered(mesa) if registered is None else registered,
        tickets=tickets,
        options=option_totals(tickets, contest) if options is None else options,
        null=null,
        blank=blank,
        device=str(key.verifier),
    )


def signed_acta(election: Election, mesa: int, **kwargs: Any) -> bytes:
    """Canonical bytes of a signed acta entry for mesa index ``mesa``."""
    signer = kwargs.pop("signer", None) or device(mesa)
    return acta_entry(make_acta(election, mesa, signer=signer, **kwargs), signer)


def election_and_enrollments(election: Election) -> list[bytes]:
    """The election entry and one enrollment per mesa (device n for mesa n)."""
    key = authority()
    entries = [election_entry(election.origin, election.digest, key)]
    for i in range(election.mesa_count):
        entries.append(enroll_entry(election.origin, device(i).verifier, [election.mesa_id(i)], key))
    return entries
