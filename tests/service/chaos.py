"""Chaos run: real server processes killed with SIGKILL at random moments while clients submit with retries.

Used by tests/service/test_chaos.py (small, in ``make test``) and by ``make chaos`` (20,000 actas, both
backends). Afterwards it checks the durability promise: every receipted acta is in the final log exactly once,
no identical resubmission made a second leaf, and the published bundle passes ``actas verify``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from actas.core.keys import Verifier
from actas.core.merkle import leaf_hash
from actas.core.receipt import receipt_from_value
from actas.simulate.run import simulate
from actas.storage.base import SubmissionStore
from actas.storage.postgres import PostgresLogStore
from actas.storage.sqlite import SqliteLogStore

JSON = {"content-type": "application/json"}
DEFAULT_DSN = os.environ.get("ACTAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m actas serve` as a child process on a fixed loopback port."""

    def __init__(self, data: Path, port: int, db: tuple[str, str] | None, log: Path, workers: int = 0) -> None:
        self.data, self.port, self.db, self.log, self.workers = data, port, db, log, workers
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start and wait until /healthz answers."""
        command = [sys.executable, "-m", "actas", "serve", str(self.data), "--port", str(self.port)]
        command += ["--log-level", "warning", "-j", str(self.workers)]
        if self.db is not None:
            command += ["--db", self.db[0], "--db-schema", self.db[1]]
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} did not start; see {self.log}")

    def is_sequencer(self) -> bool:
        """Whether this process currently holds the sequencer lock."""
        try:
            return bool(httpx.get(f"{self.url}/healthz", timeout=1).json().get("sequencer"))
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Tally:
    """What the clients saw."""

    receipts: dict[bytes, bytes] = field(default_factory=dict)  # leaf hash -> receipt bytes
    resends: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(actas: list[bytes], servers: list[ServerProcess], authority: Verifier, seen: Tally, seed: int) -> None:
    """Submit each acta until receipted, retrying through kills; resend some receipted ones on purpose."""
    rng = random.Random(seed)
    done: list[bytes] = []
    with httpx.Client(timeout=10) as http:
        for acta in actas:
            queue = [acta]
            if done and rng.random() < 0.1:
                queue.append(rng.choice(done))  # an identical resubmission: must give the same receipt, no leaf
            for data in queue:
                delay = 0.02
                while True:
                    url = rng.choice(servers).url
                    try:
                        answer = http.post(
                            f"{url}/v1/actas", content=data, headers={"content-type": "application/json"}
                        )
                    except httpx.HTTPError:
                        answer = None
                    if answer is not None and answer.status_code in (200, 201):
                        receipt = receipt_from_value(answer.json()["receipt"])
                        receipt.check(authority)
                        leaf = leaf_hash(data)
                        if receipt.leaf_hash != leaf:
                            seen.errors.append(f"receipt for another leaf: {leaf.hex()}")
                        with seen.lock:
                            earlier = seen.receipts.setdefault(leaf, receipt.to_bytes())
                            if data is not acta:
                                seen.resends += 1
                        if earlier != receipt.to_bytes():
                            seen.errors.append(f"two different receipts for {leaf.hex()}")
                        break
                    if answer is not None and answer.status_code < 500 and answer.status_code != 429:
                        seen.errors.append(f"unexpected {answer.status_code}: {answer.text[:200]}")
                        break
                    with seen.lock:
                        seen.retries += 1
                    time.sleep(delay * (0.5 + rng.random()))
                    delay = min(delay * 2, 0.5)
            done.append(acta)


@dataclass(frozen=True)
class ChaosResult:
    """What a chaos run did and found."""

    backend: str
    actas: int
    receipts: int
    resends: int
    retries: int
    kills: int
    sequencer_kills: int
    takeover_max: float  # seconds from killing the sequencer to another process sequencing (PostgreSQL)
    log_size: int
    seconds: float


def _store(data: Path, db: tuple[str, str] | None) -> SubmissionStore:
    if db is None:
        return SqliteLogStore(data / "log.db")
    return PostgresLogStore(db[0], schema=db[1])


def run_chaos(
    work: Path,
    *,
    backend: str = "sqlite",
    mesas: int = 300,
    clients: int = 8,
    kills: int = 10,
    processes: int = 1,
    workers: int = 0,
    seed: int = 7,
    dsn: str = DEFAULT_DSN,
    say: object = print,
) -> ChaosResult:
    """Run one chaos scenario in work/ and check its outcome; raise AssertionError on any broken promise."""
    started = time.monotonic()
    rng = random.Random(seed)
    data, actas_file = work / "data", work / "actas.ndjson"
    simulate(data, mesas, seed, actas_out=actas_file)
    actas = actas_file.read_bytes().splitlines()
    authority = Verifier.parse((data / "keys" / "authority.vkey").read_text().strip())
    db = (dsn, f"chaos_{uuid.uuid4().hex[:12]}") if backend == "postgres" else None
    count = processes if backend == "postgres" else 1
    servers = [ServerProcess(data, free_port(), db, work / f"server-{i}.log", workers) for i in range(count)]
    for server in servers:  # one after the other: the first copies the election into an empty database
        server.start()
    seen = Tally()
    shares = [actas[i::clients] for i in range(clients)]
    threads = [
        threading.Thread(target=client, args=(share, servers, authority, seen, seed * 1000 + i), daemon=True)
        for i, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    sequencer_kills = 0
    takeovers: list[float] = []
    try:
        for n in range(kills):
            time.sleep(rng.uniform(0.1, 0.6))
            victim = rng.choice(servers)
            if db is not None and n % 2 == 0:
                leaders = [s for s in servers if s.is_sequencer()]
                if leaders:
                    victim = leaders[0]
                    sequencer_kills += 1
            was_leader = db is not None and victim.is_sequencer()
            victim.kill()
            if was_leader:
                killed = time.monotonic()
                others = [s for s in servers if s is not victim]
                while not any(s.is_sequencer() for s in others) and time.monotonic() - killed < 30:
                    time.sleep(0.02)
                takeovers.append(time.monotonic() - killed)
            else:
                time.sleep(rng.uniform(0.0, 0.3))
            victim.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(t.is_alive() for t in threads), "clients did not finish"
        assert not seen.errors, seen.errors[:5]
        expected = 1 + mesas + len(seen.receipts)  # election entry, enrollments, one leaf per receipted acta
        deadline = time.monotonic() + 120
        size = 0
        while time.monotonic() < deadline:
            size = int(httpx.get(f"{servers[0].url}/log/checkpoint", timeout=5).text.split("\n")[1])
            if size >= expected:
                break
            time.sleep(0.1)
    finally:
        for server in servers:
            server.stop()
    store = _store(data, db)
    try:
        leaves = collections.Counter(leaf_hash(entry) for entry in store.read(0, store.size()))
        log_size = store.size()
    finally:
        store.close()
    twice = [leaf.hex() for leaf, n in leaves.items() if n > 1]
    assert not twice, f"leaves logged more than once: {twice[:5]}"
    missing = [leaf.hex() for leaf in seen.receipts if leaves[leaf] != 1]
    assert not missing, f"receipted but not logged: {missing[:5]}"
    assert log_size == expected == size, (log_size, expected, size)
    bundle = work / "bundle"
    subprocess.run(
        [sys.executable, "-m", "actas", "publish", str(data), "--out", str(bundle)], check=True, capture_output=True
    )
    verify = subprocess.run(
        [sys.executable, "-m", "actas", "verify", str(bundle), "--key", str(data / "keys" / "authority.vkey")],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    if db is not None:
        _drop_schema(dsn, db[1])
    return ChaosResult(
        backend,
        len(actas),
        len(seen.receipts),
        seen.resends,
        seen.retries,
        kills,
        sequencer_kills,
        round(max(takeovers, default=0.0), 2),
        log_size,
        round(time.monotonic() - started, 1),
    )


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    """`make chaos`: the long run, both backends."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mesas", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--processes", type=int, default=3, help="server processes sharing PostgreSQL")
    parser.add_argument(
        "--workers", type=int, default=1, help="-j of each server process (N checking single POSTs, N batches)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--work", type=Path, default=Path("chaos-out"))
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        work = args.work / f"{backend}-{int(time.time())}"
        work.mkdir(parents=True)
        result = run_chaos(
            work,
            backend=backend,
            mesas=args.mesas,
            clients=args.clients,
            kills=args.kills,
            processes=args.processes,
            workers=args.workers,
        )
        print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
