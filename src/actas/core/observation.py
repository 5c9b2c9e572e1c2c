"""What a witness observation says, checked against the election definition.

An observation entry carries the QR payload exactly as the witness read it. It is taken into the log, and counted
by the verifier and the cross-check, only when the payload decodes (:func:`actas.core.payloads.read_copy`) to a
copy of an acta for the mesa the entry names, in this election, and any signature the payload carries verifies.
A wrong read therefore never becomes a counted copy.
"""

from __future__ import annotations

from actas.core.election import Election
from actas.core.entries import ActaEntry, ObservationEntry, parse_entry
from actas.core.payloads import PaperCopy, identify, read_copy
from actas.errors import MalformedError, SignatureError


def observed_copy(entry: ObservationEntry, election: Election) -> PaperCopy:
    """The paper copy an observation records; raises when it is not a readable copy of its mesa's acta."""
    if entry.election != election.origin:
        raise MalformedError(f"observation.election: {entry.election!r} is not {election.origin!r}")
    if identify(entry.payload) != entry.format:
        raise MalformedError(f"observation.format: the payload is not in the {entry.format} format")
    copy = read_copy(entry.payload, election)
    if copy.mesa != entry.mesa:
        raise MalformedError(f"observation.mesa: {entry.mesa!r}, but the payload is for mesa {copy.mesa!r}")
    if election.mesa_index(copy.mesa) is None:
        raise MalformedError(f"observation.mesa: {copy.mesa!r} is not in the definition")
    if copy.signature == "invalid":
        raise SignatureError(f"observation of mesa {copy.mesa!r}: the acta's device signature does not verify")
    if copy.entry is not None:
        signed = parse_entry(copy.entry).entry
        if not isinstance(signed, ActaEntry) or signed.acta.election != election.origin:
            raise MalformedError("observation.payload: not an acta of this election")
    return copy
