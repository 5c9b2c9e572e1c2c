"""Stateless validation of submitted entries: parse, signature, rules. Runs in worker processes.

What needs the log's state (deduplication, enrollment, conflicts) is checked by the sequencer afterwards.
"""

from __future__ import annotations

import gc
import os
import select
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from actas.core.acta import check_rules, errors_of
from actas.core.election import Election
from actas.core.entries import (
    ActaEntry,
    ElectionEntry,
    EnrollEntry,
    Entry,
    ObservationEntry,
    ParsedEntry,
    parse_entry,
    signatures_valid,
)
from actas.core.keys import Verifier
from actas.core.merkle import leaf_hash
from actas.core.observation import observed_copy
from actas.errors import ActasError, DefinitionError, MalformedError, RuleError, SignatureError
from actas.storage.base import NewEntry


@dataclass(frozen=True, slots=True)
class Checked:
    """One submission after stateless checks: a storable entry, or the error that rejects it."""

    entry: NewEntry | None
    error: ActasError | None
    warnings: tuple[str, ...] = ()
    signer: str | None = None  # acta: the device key that signed it, for the enrollment check

    def __reduce__(self) -> tuple[type[Checked], tuple[object, ...]]:
        # Pickled by constructor arguments (see NewEntry.__reduce__): these cross from worker processes.
        return (Checked, (self.entry, self.error, self.warnings, self.signer))


def check_one(data: bytes, election: Election, authority: Verifier) -> Checked:
    """Parse and check one submitted entry without reference to the log's state."""
    return check_entries([data], election, authority)[0]


def check_entries(items: Sequence[bytes], election: Election, authority: Verifier) -> list[Checked]:
    """check_one() for many entries, in passes: parse every entry, verify every signature, then the rules.

    The signatures are verified back to back (entries.signatures_valid): the same checks, about a sixth less CPU
    per acta than checking each entry from start to end.
    """
    parsed: list[ParsedEntry | ActasError] = []
    for data in items:
        try:
            parsed.append(parse_entry(data))
        except ActasError as exc:
            parsed.append(exc)
    well_formed = [item for item in parsed if not isinstance(item, ActasError)]
    valid = iter(signatures_valid(well_formed, authority))
    checked: list[Checked] = []
    for data, item in zip(items, parsed, strict=True):
        if isinstance(item, ActasError):
            checked.append(Checked(None, item))
        else:
            checked.append(_checked(data, item.entry, next(valid), election))
    return checked


def _checked(data: bytes, entry: Entry, signed: bool, election: Election) -> Checked:
    """The rest of the checks of a parsed entry whose signature has been checked (signed says how it went)."""
    try:
        entry_hash = leaf_hash(data)
        if not signed:
            who = {ActaEntry: "device", ObservationEntry: "witness"}.get(type(entry), "authority")
            raise SignatureError(f"{type(entry).__name__}: the {who} signature does not verify")
        if isinstance(entry, ActaEntry):
            findings = check_rules(entry.acta, election)
            broken = errors_of(findings)
            if broken:
                raise RuleError("; ".join(f"{f.rule}: {f.message}" for f in broken), tuple(f.rule for f in broken))
            warnings = tuple(f"{f.rule}: {f.message}" for f in findings if f.severity == "warning")
            acta = entry.acta
            new = NewEntry(data, entry_hash, "acta", mesa=acta.mesa, contest=acta.contest)
            return Checked(new, None, warnings, signer=acta.device)
        if isinstance(entry, EnrollEntry):
            if entry.election != election.origin:
                raise MalformedError(f"enroll.election: {entry.election!r} is not {election.origin!r}")
            unknown = [m for m in entry.mesas if election.mesa_index(m) is None]
            if unknown:
                raise DefinitionError(f"enroll.mesas: unknown mesa {unknown[0]!r}")
            return Checked(NewEntry(data, entry_hash, "enroll", device=entry.device, mesas=entry.mesas), None)
        if isinstance(entry, ObservationEntry):
            observed_copy(entry, election)
            return Checked(NewEntry(data, entry_hash, "observation"), None)
        assert isinstance(entry, ElectionEntry)
        if entry.origin != election.origin or entry.digest != election.digest:
            raise MalformedError("election entry: origin or digest differs from this log's election definition")
        return Checked(NewEntry(data, entry_hash, "election"), None)
    except ActasError as exc:
        return Checked(None, exc)


# Worker-process state, set once by init_worker so each task ships only entry bytes.
_ELECTION: Election | None = None
_AUTHORITY: Verifier | None = None


def init_worker(election_json: bytes, authority: str, service: int | None = None) -> None:
    """Load the election definition and authority key into a worker process; end it when ``service`` (a pid) dies."""
    global _ELECTION, _AUTHORITY
    _ELECTION = Election.from_json(election_json)
    _AUTHORITY = Verifier.parse(authority)
    if service is not None:
        exit_with(service)
    # The definition lives as long as the worker: keep its many objects out of every full collection.
    gc.collect()
    gc.freeze()


def exit_with(pid: int) -> None:
    """End this helper process as soon as process ``pid`` is gone, even if it was killed with SIGKILL.

    A pool worker holds both ends of its task queue's pipe, so it never sees the service die: without this, every
    crash would leave its workers (and the fork server, which lives as long as they do) behind for good.
    """

    def watch() -> None:
        try:
            handle = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd (not Linux 5.3+), or already gone: poll
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(1)
        else:
            waiting = select.poll()  # poll, not select: any descriptor number
            waiting.register(handle, select.POLLIN)
            waiting.poll()  # readable once the process has exited
        os._exit(0)

    threading.Thread(target=watch, name="actas-exit-with-service", daemon=True).start()


def check_chunk(chunk: Sequence[bytes]) -> list[Checked]:
    """Check a chunk of submissions in a worker initialised by init_worker."""
    assert _ELECTION is not None and _AUTHORITY is not None
    return check_entries(chunk, _ELECTION, _AUTHORITY)
