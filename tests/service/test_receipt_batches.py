"""Receipts of a group commit share one signature; a resend gets its first receipt back, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actas.core.merkle import leaf_hash
from actas.core.receipt import receipt_from_value
from actas.service.runtime import ServiceConfig
from tests.service.conftest import Election, LiveServer
from tests.service.station import authority_of
from tests.service.test_errors import post_batch
from tests.storage.test_stores import POSTGRES_DSN, fresh_schema


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, election: Election) -> Iterator[ServiceConfig]:
    """The service's configuration on each store."""
    if request.param == "sqlite":
        yield ServiceConfig(data_dir=election.root)
        return
    with fresh_schema() as schema:
        yield ServiceConfig(data_dir=election.root, db=POSTGRES_DSN, db_schema=schema)


def test_a_batch_is_signed_once_and_resends_get_the_first_receipt(config: ServiceConfig, election: Election) -> None:
    """One signature covers a batch's receipts; resent alone, in another batch or after a restart, each is the same."""
    authority = authority_of(election.root)
    server = LiveServer(config)
    try:
        response = post_batch(server, election.actas[:12])
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["accepted"] * 12
        receipts = [receipt_from_value(r["receipt"]) for r in results]
        assert len({r.signature for r in receipts}) == 1
        assert [(r.batch_size, r.batch_index) for r in receipts] == [(12, i) for i in range(12)]
        for acta, receipt in zip(election.actas, receipts, strict=False):
            receipt.check(authority)
            assert receipt.leaf_hash == leaf_hash(acta)
        first = {r.leaf_hash: r.to_bytes() for r in receipts}

        # Three resends and two new actas in one batch: the resends keep their receipts, the new ones share a new one.
        mixed = post_batch(server, [*election.actas[3:6], *election.actas[12:14]]).json()["results"]
        assert [r["status"] for r in mixed] == ["duplicate"] * 3 + ["accepted"] * 2
        again = [receipt_from_value(r["receipt"]) for r in mixed]
        assert [r.to_bytes() for r in again[:3]] == [first[leaf_hash(a)] for a in election.actas[3:6]]
        assert again[3].signature == again[4].signature != receipts[0].signature
        for receipt in again:
            receipt.check(authority)
        single = server.client.post("/v1/actas", content=election.actas[7])
        assert single.status_code == 200
        assert receipt_from_value(single.json()["receipt"]).to_bytes() == first[leaf_hash(election.actas[7])]
    finally:
        server.stop()
    # A new process has no batch in memory: it reads the first one back from the store.
    restarted = LiveServer(config)
    try:
        resent = restarted.client.post("/v1/actas", content=election.actas[11])
        assert resent.status_code == 200
        assert receipt_from_value(resent.json()["receipt"]).to_bytes() == first[leaf_hash(election.actas[11])]
    finally:
        restarted.stop()
