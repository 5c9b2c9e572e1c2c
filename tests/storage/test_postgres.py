"""What only the PostgreSQL store does: several processes on one database, append fencing, the sequencer lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from actas.errors import StorageError
from actas.storage.base import Stored, Submission
from actas.storage.postgres import SEQUENCER_KEY, PostgresLogStore, SequencerLock, sequencer_key
from tests.storage.test_stores import POSTGRES_DSN, entry, fresh_schema, submission


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema, dropped afterwards."""
    with fresh_schema() as name:
        yield name


@pytest.fixture
def stores(schema: str) -> Iterator[Callable[[], PostgresLogStore]]:
    """Open store instances (each its own connection) on one schema, as separate processes would; all closed after."""
    opened: list[PostgresLogStore] = []

    def open_store() -> PostgresLogStore:
        opened.append(PostgresLogStore(POSTGRES_DSN, schema=schema))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A separate connection for what another process or an operator would do."""
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        yield conn


def backend_pids(admin: psycopg.Connection[tuple[object, ...]], application: str) -> list[int]:
    """The server processes of the connections with that application name."""
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)).fetchall()
    return [int(str(row[0])) for row in rows]


def lock_holder(admin: psycopg.Connection[tuple[object, ...]], key: int) -> int | None:
    """The server process holding an advisory lock, if any."""
    row = admin.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::bigint::oid "
        "AND objid = %s::bigint::oid AND objsubid = 1 AND granted",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    ).fetchone()
    return None if row is None else int(str(row[0]))


def eventually(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Whether condition becomes true within seconds, polling."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- several processes, one database ------------------------------------------------------------------------


def test_instances_see_each_others_writes(stores: Callable[[], PostgresLogStore]) -> None:
    """A submission or append through one connection is visible at once through another."""
    ingest, sequencer = stores(), stores()
    ingest.submit([submission(b"a", received=5)])
    assert [p.submission.entry.data for p in sequencer.pending(10)] == [b"a"]
    assert sequencer.size() == 0
    sequencer.append([entry(b"a")])
    assert ingest.size() == 1
    assert ingest.read(0, 1) == [b"a"]
    assert ingest.find_hashes([entry(b"a").entry_hash]) == {entry(b"a").entry_hash: 0}


def test_concurrent_submissions_of_one_leaf_store_it_once(stores: Callable[[], PostgresLogStore]) -> None:
    """Racing submits of the same leaf, from several instances and threads, store one row and agree on its time."""
    instances = [stores() for _ in range(4)]
    start = threading.Barrier(8)

    def submit(i: int) -> list[Stored]:
        start.wait()
        return instances[i % 4].submit([submission(b"same", received=1000 + i), submission(bytes([i]), mesa=f"m{i}")])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(submit, range(8)))
    times = {result[0].received for result in results}
    assert len(times) == 1
    assert sum(result[0].new for result in results) == 1  # exactly one caller stored it
    assert times <= set(range(1000, 1008))
    assert instances[0].pending_count() == 9  # the shared leaf once, plus one distinct leaf per caller


def test_concurrent_batches_sharing_leaves_in_opposite_orders(stores: Callable[[], PostgresLogStore]) -> None:
    """Two batches holding the same leaves in opposite orders both succeed (a deadlock is retried)."""
    first, second = stores(), stores()
    leaves = [submission(bytes([i]), mesa=f"m{i}") for i in range(50)]
    start = threading.Barrier(2)

    def submit(store: PostgresLogStore, batch: list[Submission]) -> list[Stored]:
        start.wait()
        return store.submit(batch)

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(submit, first, leaves)
        two = pool.submit(submit, second, leaves[::-1])
        assert len(one.result()) == len(two.result()) == 50
    assert first.pending_count() == 50


def test_append_is_fenced_against_a_second_sequencer(stores: Callable[[], PostgresLogStore]) -> None:
    """Two instances appending at the same index: the second raises StorageError and stores nothing."""
    old, new = stores(), stores()
    assert old.size() == new.size() == 0
    new.append([entry(b"new")])
    with pytest.raises(StorageError, match="another sequencer"):
        old.append([entry(b"old"), entry(b"older", mesa="m2")])
    assert new.size() == 1
    assert old.read(0, 5) == [b"new"]
    assert old.mesa_indexes("m2", "c") == []
    # A sequencer that reads the size again appends after what is there.
    new.append([entry(b"next")])
    with pytest.raises(StorageError):
        old.append([entry(b"old")])  # its last append failed: it must look again before it may append
    assert old.size() == 2
    old.append([entry(b"old")])
    assert new.read(0, 5) == [b"new", b"next", b"old"]


def test_append_is_fenced_while_another_transaction_holds_the_index(
    stores: Callable[[], PostgresLogStore], schema: str
) -> None:
    """An append racing an uncommitted one at the same index fails once the other commits (the primary key)."""
    store = stores()
    assert store.size() == 0
    with psycopg.connect(POSTGRES_DSN) as other:
        other.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        other.execute("INSERT INTO entries VALUES (0, %s, 'acta', 'theirs')", (entry(b"theirs").entry_hash,))
        with ThreadPoolExecutor(1) as pool:
            racing = pool.submit(store.append, [entry(b"ours")])
            time.sleep(0.3)  # the append now waits on the uncommitted row at index 0
            assert not racing.done()
            other.commit()
            with pytest.raises(StorageError, match="another sequencer"):
                racing.result(timeout=5)
    assert store.read(0, 5) == [b"theirs"]


def test_concurrent_construction_creates_the_schema_once(schema: str) -> None:
    """Several processes starting at once on a new schema all open it."""
    start = threading.Barrier(4)

    def open_store(_: int) -> int:
        start.wait()
        store = PostgresLogStore(POSTGRES_DSN, schema=schema)
        try:
            return store.size()
        finally:
            store.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_store, range(4))) == [0, 0, 0, 0]


# -- connections lost and errors ----------------------------------------------------------------------------


def test_a_lost_connection_is_made_again(schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """After the server drops the store's connection, the next read and the next write reconnect and succeed."""
    name = f"actas-test-{schema}"  # this test's connections only: others may run at the same time
    store = PostgresLogStore(make_conninfo(POSTGRES_DSN, application_name=name), schema=schema)
    try:
        store.submit([submission(b"a")])
        calls: list[Callable[[], int]] = [store.pending_count, lambda: len(store.submit([submission(b"b", mesa="m2")]))]
        for call in calls:
            pids = backend_pids(admin, name)
            assert len(pids) == 1
            admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
            assert call() >= 1
        assert store.pending_count() == 2
    finally:
        store.close()


def test_a_commit_whose_outcome_is_unknown_raises(schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A connection lost while committing is a StorageError (never taken for success), and the store reconnects."""
    name = f"actas-test-{schema}"
    store = PostgresLogStore(make_conninfo(POSTGRES_DSN, application_name=name), schema=schema)

    def body(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute("INSERT INTO cosignatures VALUES (1, 'r', 'w', 'line')")
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pids(admin, name)[0],))
        time.sleep(0.2)  # the server closes the connection before the commit is sent

    try:
        # The private transaction runner: no public method can be stopped between its last statement and COMMIT.
        with pytest.raises(StorageError, match="outcome unknown"):
            store._run("test write", body, write=True)
        assert store.cosignatures(1, b"r") == []
    finally:
        store.close()


def test_one_instance_serves_many_threads(stores: Callable[[], PostgresLogStore]) -> None:
    """Threads sharing one instance (as the service's do) each get their own answers."""
    store = stores()

    def work(i: int) -> tuple[int, list[bytes]]:
        store.submit([submission(bytes([i]), mesa=f"m{i}")])
        found = store.submitted_for_mesas([(f"m{i}", "c")])
        return len(store.submitted([entry(bytes([i])).entry_hash])), found[(f"m{i}", "c")]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(32)))
    assert results == [(1, [entry(bytes([i])).entry_hash]) for i in range(32)]
    assert store.pending_count() == 32


def test_errors_are_storage_errors(stores: Callable[[], PostgresLogStore], schema: str) -> None:
    """An unreachable server, broken tables and a closed store give StorageError, never a raw psycopg error."""
    with pytest.raises(StorageError, match="cannot open"):
        PostgresLogStore("postgresql://postgres@127.0.0.1:1/test", schema=schema)
    store = stores()
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as other:
        other.execute(sql.SQL("DROP TABLE {}.entries, {}.submissions").format(*[sql.Identifier(schema)] * 2))
    for call in (
        lambda: store.read(0, 1),
        lambda: store.append([entry(b"a")]),
        lambda: store.submit([submission(b"a")]),
        lambda: store.pending(1),
    ):
        with pytest.raises(StorageError, match="PostgreSQL"):
            call()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.size()


def test_unicode_and_order_match_the_other_stores(stores: Callable[[], PostgresLogStore]) -> None:
    """Text sorts by code point whatever the database locale, as in SQLite and Python."""
    store = stores()
    store.append([entry(b"1", mesa="b"), entry(b"2", mesa="B"), entry(b"3", mesa="b"), entry(b"4", mesa="B")])
    assert [c.mesa for c in store.conflicts()] == sorted(["b", "B"])
    for witness in ("é", "z", "Z", "a"):
        store.add_cosignature(1, b"r", witness, f"— {witness}")
    assert store.cosignatures(1, b"r") == [f"— {w}" for w in sorted(["é", "z", "Z", "a"])]


# -- the sequencer lock -------------------------------------------------------------------------------------


def test_lock_keys() -> None:
    """The public schema uses the fixed key; other schemas get their own."""
    assert sequencer_key() == SEQUENCER_KEY == sequencer_key("public")
    assert sequencer_key("a") != sequencer_key("b") != SEQUENCER_KEY
    assert -(2**63) <= SEQUENCER_KEY < 2**63


def test_one_holder_at_a_time(schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A second holder cannot take the lock until the first's connection is killed, then it can at once."""
    first, second = SequencerLock(POSTGRES_DSN, schema=schema), SequencerLock(POSTGRES_DSN, schema=schema)
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # already held: still true, and one release would give it up
        assert first.held()
        assert not second.try_acquire()
        assert not second.held()
        holder = lock_holder(admin, first.key)
        assert holder is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (holder,))
        assert eventually(second.try_acquire)
        assert second.held()
        assert not first.held()
        assert not first.try_acquire()  # reconnects, and finds the lock taken
        second.release()
        assert not second.held()
        assert first.try_acquire()
        first.close()
        assert eventually(second.try_acquire)
    finally:
        first.close()
        second.close()


def test_a_killed_process_releases_the_lock(schema: str) -> None:
    """A sequencer process killed with SIGKILL leaves the lock free within seconds."""
    child = (
        "import sys, time\n"
        "from actas.storage.postgres import SequencerLock\n"
        "lock = SequencerLock(sys.argv[1], schema=sys.argv[2])\n"
        "print('held' if lock.try_acquire() else 'busy', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child, POSTGRES_DSN, schema], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    lock = SequencerLock(POSTGRES_DSN, schema=schema)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        assert not lock.try_acquire()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)
        assert eventually(lock.try_acquire, seconds=5)
    finally:
        lock.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
