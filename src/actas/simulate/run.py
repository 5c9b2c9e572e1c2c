"""Run a simulated election into a data directory through the same append path ingest uses.

Keys are derived from the seed, so the same ``--mesas`` and ``--seed`` give a byte-identical log: the authority
key, one device key per mesa, their enrollments, and one signed acta per mesa.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from actas.core.acta import Acta, option_totals
from actas.core.election import Election
from actas.core.entries import acta_entry, enroll_entry
from actas.core.keys import Signer
from actas.log.writer import LogWriter
from actas.simulate.geography import generate_election
from actas.simulate.votes import generate_counts
from actas.storage.files import write_durable
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore

BATCH = 4096
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation logged."""

    data: DataDir
    election: Election
    entries: int
    rejected: int


def derive_seed(seed: int, label: str) -> bytes:
    """A 32-byte key seed derived from the simulation seed and a label."""
    return hashlib.sha256(f"actas-simulation/{seed}/{label}".encode()).digest()


def device_signer(seed: int, mesa: int) -> Signer:
    """The simulated device key of a mesa."""
    return Signer(f"dev-{mesa:07d}", derive_seed(seed, f"device/{mesa}"))


def create_data_dir(root: Path, election: Election, authority: Signer) -> DataDir:
    """Lay out a new data directory with the definition and the authority keys."""
    data = DataDir(root)
    if data.database.exists():
        raise FileExistsError(f"{root} already holds a log")
    write_durable(data.election, election.to_canonical())
    write_durable(data.authority_key, (str(authority) + "\n").encode())
    data.authority_key.chmod(0o600)
    write_durable(data.authority_vkey, (str(authority.verifier) + "\n").encode())
    return data


def _batches(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def signed_actas(election: Election, seed: int, contest_id: str | None = None) -> Iterator[bytes]:
    """One acta per mesa (of one contest, else the first), signed by its simulated device, as stations send them."""
    for counts in generate_counts(election, seed, contest=contest_id):
        contest = election.contest(counts.contest)
        assert contest is not None
        device = device_signer(seed, counts.mesa)
        acta = Acta(
            election=election.origin,
            mesa=election.mesa_id(counts.mesa),
            contest=counts.contest,
            registered=counts.registered,
            tickets=counts.tickets,
            options=option_totals(counts.tickets, contest),
            null=counts.null,
            blank=counts.blank,
            device=str(device.verifier),
        )
        yield acta_entry(acta, device)


def simulate(
    root: Path,
    mesas: int,
    seed: int,
    workers: int = 0,
    progress: Progress | None = None,
    actas_out: Path | None = None,
) -> SimulationSummary:
    """Simulate an election of ``mesas`` mesas into a new data directory at ``root``.

    With actas_out, the signed actas are not logged but written there, one per line, for stations to transmit.
    """
    election = generate_election(mesas, seed)
    authority = Signer(election.origin, derive_seed(seed, "authority"))
    data = create_data_dir(root, election, authority)
    writer = LogWriter(SqliteLogStore(data.database), data.log, election, authority, workers=workers)
    rejected = 0
    try:
        writer.bootstrap()
        total = election.mesa_count

        def enrollments() -> Iterator[bytes]:
            for i in range(total):
                device = device_signer(seed, i).verifier
                yield enroll_entry(election.origin, device, [election.mesa_id(i)], authority)

        phases = [("enroll", enrollments())]
        if actas_out is None:
            phases.append(("actas", signed_actas(election, seed)))
        else:
            write_durable(actas_out, b"".join(acta + b"\n" for acta in signed_actas(election, seed)))
        for phase, source in phases:
            done = 0
            for batch in _batches(source, BATCH):
                results = writer.append(batch)
                rejected += sum(1 for r in results if r.status == "rejected")
                done += len(batch)
                if progress is not None:
                    progress(phase, done, total)
        size = writer.size
    finally:
        writer.close()
    return SimulationSummary(data, election, size, rejected)
