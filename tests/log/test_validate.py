"""Checking many submissions at once (parse all, verify all, then rules) gives each its own verdict."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actas.core import canonical
from actas.core.entries import (
    election_entry,
    enroll_entry,
    observation_entry,
    parse_entry,
    signature_valid,
    signatures_valid,
)
from actas.core.keys import Signer
from actas.core.qr import encode_payload
from actas.errors import MalformedError, NonCanonicalError, RuleError, SignatureError
from actas.log.validate import Checked, check_entries, check_one
from tests.factories import authority, device, election_and_enrollments, seed, signed_acta, small_election

ELECTION = small_election()
AUTHORITY = authority().verifier
WITNESS = Signer("witness-1", seed("witness-1"))
IMAGE = "ab" * 32


def _observed(mesa: int, witness: Signer) -> bytes:
    payload = encode_payload(signed_acta(ELECTION, mesa))
    return observation_entry(ELECTION.origin, ELECTION.mesa_id(mesa), "actas1", IMAGE, payload, witness)


def _forged_observation(mesa: int) -> bytes:
    value = canonical.decode(_observed(mesa, WITNESS))
    value["image"] = "cd" * 32  # another image than the witness signed for
    return canonical.encode(value)


def _altered(data: bytes) -> bytes:
    value = canonical.decode(data)
    value["null"] += 1  # still canonical, no longer what the device signed
    return canonical.encode(value)


def _named_key_broken(data: bytes) -> bytes:
    value = canonical.decode(data)
    value["device"] = value["device"][:-4] + "AAA="  # a key string that no longer parses
    return canonical.encode(value)


# Each kind of submission with the verdict it must get, whatever else is checked beside it.
POOL: list[tuple[bytes, type[Exception] | None]] = [
    (signed_acta(ELECTION, 0), None),
    (signed_acta(ELECTION, 1), None),
    (_altered(signed_acta(ELECTION, 2)), SignatureError),
    (_named_key_broken(signed_acta(ELECTION, 3)), SignatureError),
    (signed_acta(ELECTION, 4, signer=device(5)), None),  # device 5's key, named in the acta: verifies here
    (signed_acta(ELECTION, 6, tickets=(900, 0, 0, 0)), RuleError),  # more votes than registered voters
    (b'{"not": "an entry"}', MalformedError),
    (signed_acta(ELECTION, 7).replace(b'","', b'", "', 1), NonCanonicalError),
    (election_and_enrollments(ELECTION)[1], None),
    (enroll_entry(ELECTION.origin, device(1).verifier, [ELECTION.mesa_id(1)], device(9)), SignatureError),
    (_observed(2, WITNESS), None),  # verified under the witness key it names
    (_forged_observation(3), SignatureError),
    (election_entry(ELECTION.origin, ELECTION.digest, authority()), None),
    (election_entry(ELECTION.origin, ELECTION.digest, device(2)), SignatureError),  # not the authority's
]


def _verdict(checked: Checked) -> tuple[object, ...]:
    error = checked.error
    return (checked.entry, type(error), str(error) if error else None, checked.warnings, checked.signer)


@given(st.lists(st.integers(0, len(POOL) - 1), max_size=24))
def test_each_submission_gets_its_own_verdict_among_many(picks: list[int]) -> None:
    items = [POOL[i][0] for i in picks]
    together = check_entries(items, ELECTION, AUTHORITY)
    assert len(together) == len(items)
    for pick, checked in zip(picks, together, strict=True):
        expected = POOL[pick][1]
        if expected is None:
            assert checked.error is None, checked.error
            assert checked.entry is not None
        else:
            assert isinstance(checked.error, expected)
            assert checked.entry is None
    assert [_verdict(c) for c in together] == [_verdict(check_one(data, ELECTION, AUTHORITY)) for data in items]


def test_signatures_valid_matches_one_at_a_time() -> None:
    parsed = []
    for data, _ in POOL:
        try:
            parsed.append(parse_entry(data))
        except MalformedError:
            continue
    assert signatures_valid(parsed, AUTHORITY) == [signature_valid(p, AUTHORITY) for p in parsed]
    assert signatures_valid(parsed, AUTHORITY).count(False) == 5
