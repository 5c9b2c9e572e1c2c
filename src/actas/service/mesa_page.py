"""The answer of GET /v1/mesas/{id}: a mesa's actas per contest, their status, entries and inclusion proofs."""

from __future__ import annotations

import json

from actas.core.merkle import leaf_hash
from actas.errors import NotFoundError, UnavailableError
from actas.log.proofs import TileCache, leaf_proof
from actas.service.runtime import Runtime


def json_text_or_null(text: bytes | None) -> bytes:
    """A JSON string of UTF-8 text (a tlog-proof, whose checkpoint note has an em dash), or null."""
    return b"null" if text is None else json.dumps(text.decode("utf-8"), ensure_ascii=False).encode("utf-8")


def mesa_page(runtime: Runtime, tiles: TileCache, mesa: str) -> bytes:
    """The mesa's JSON answer at the latest checkpoint; NotFoundError, or UnavailableError before any checkpoint."""
    election = runtime.election
    if election.mesa_index(mesa) is None:
        raise NotFoundError(f"mesa {mesa!r} is not in this election")
    current = runtime.live.snapshot
    if current is None:
        raise UnavailableError("the log has no checkpoint yet")
    size = current.checkpoint.size
    contests: list[bytes] = []
    for contest in election.contests:
        key = (mesa, contest.id)
        with runtime.reader_lock:  # one reader connection, shared; held only for the queries
            indexes = runtime.reader.mesa_indexes(mesa, contest.id)
            entries = [runtime.reader.read(i, i + 1)[0] for i in indexes]
            submitted = runtime.reader.submitted_for_mesas([key]).get(key, [])
        actas: list[bytes] = []
        logged = set()
        for n, (index, data) in enumerate(zip(indexes, entries, strict=True)):
            leaf = leaf_hash(data)
            logged.add(leaf)
            included = index < size
            status = ("counted" if n == 0 else "conflict") if included else "sequenced"
            proof = leaf_proof(runtime.data.log, index, current.checkpoint_bytes, size, tiles) if included else None
            # Built as bytes, not a dict: the entry is our own stored canonical JSON, embedded as it is, which
            # spares decoding and encoding it again on the read path that stations and live pages hit most.
            actas.append(
                b'{"leaf_index":%d,"leaf_hash":"%s","status":"%s","entry":%s,"proof":%s}'
                % (index, leaf.hex().encode(), status.encode(), data, json_text_or_null(proof))
            )
        actas += [
            b'{"leaf_hash":"%s","status":"received"}' % leaf.hex().encode() for leaf in submitted if leaf not in logged
        ]
        contests.append(
            b'{"contest":%s,"actas":[%s],"conflict":%s}'
            % (json.dumps(contest.id).encode(), b",".join(actas), b"true" if len(actas) > 1 else b"false")
        )
    binding = json.dumps(current.binding.to_value(), separators=(",", ":")).encode()
    return b'{"mesa":%s,"checkpoint":%s,"contests":[%s]}' % (json.dumps(mesa).encode(), binding, b",".join(contests))
