"""The read side of the API: the log byte for byte as published, proofs, results, mesa pages, the event stream.

Read routes run on the event loop: each is a small in-memory or single-tile read, cheaper than a thread hop.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from actas.core.note import add_signatures
from actas.core.tally import area_value, expected_per_area
from actas.errors import MalformedError, NotFoundError, UnavailableError
from actas.log.proofs import leaf_proof
from actas.service.live import Snapshot
from actas.service.mesa_page import mesa_page
from actas.service.problems import PROBLEM_RESPONSE, read_errors
from actas.service.runtime import Runtime

MAX_SUBSCRIBERS = 1024  # a quarter of the connection limit: event streams never crowd out submissions
MAX_CACHED_ANSWERS = 4096
KEEPALIVE = 15.0
_TILE = re.compile(r"(?:[0-9]|[1-5][0-9]|6[0-3]|entries)/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[1-9][0-9]{0,2})?\Z")
_HEX_LEAF = re.compile(r"[0-9a-f]{64}\Z")


def add_read_routes(router: FastAPI, runtime: Runtime, reader_lock: threading.Lock) -> None:
    """The read routes over a runtime; reader_lock guards its one reader connection."""
    election = runtime.election
    tiles = runtime.tiles
    mesas_per_area, registered_per_area = expected_per_area(election)
    children: list[list[int]] = [[] for _ in election.areas]
    roots: list[int] = []
    for index, area in enumerate(election.areas):
        (children[area.parent] if area.parent >= 0 else roots).append(index)
    subscribers = 0
    answers: dict[tuple[str, int], tuple[int, bytes]] = {}  # (area code, contest) -> (checkpoint size, body)

    def snapshot() -> Snapshot:
        current = runtime.live.snapshot
        if current is None:
            raise UnavailableError("the log has no checkpoint yet")
        return current

    # -- the log, byte for byte as published ----------------------------------------------------------------

    @router.get(
        "/log/checkpoint",
        summary="The latest checkpoint, with the witnesses' cosignatures",
        response_class=PlainTextResponse,
        responses=read_errors(503),
    )
    async def checkpoint() -> Response:
        current = snapshot()
        cp = current.checkpoint
        with reader_lock:
            lines = runtime.reader.cosignatures(cp.size, cp.root_hash)
        data = add_signatures(current.checkpoint_bytes, lines) if lines else current.checkpoint_bytes
        # X-Actas-Events tells the site's pages (which fetch this) that live updates are on offer here.
        headers = {"Cache-Control": "no-cache", "X-Actas-Events": "/v1/events"}
        return Response(data, media_type="text/plain; charset=utf-8", headers=headers)

    @router.get(
        "/log/tile/{path:path}",
        summary="A hash tile or entry bundle (C2SP tlog-tiles)",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, **read_errors(404)},
    )
    def tile(path: str) -> Response:
        if not _TILE.match(path):
            raise NotFoundError(f"tile/{path}: not a tile path")
        try:
            data = (runtime.data.log / "tile" / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"tile/{path}: no such tile") from None
        cache = "public, max-age=60" if ".p/" in path else "public, max-age=31536000, immutable"
        return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})

    @router.get("/election.json", summary="The election definition, as published")
    def election_json() -> Response:
        return Response(runtime.data.election.read_bytes(), media_type="application/json")

    @router.get("/keys/authority.vkey", summary="The authority's verifier key", response_class=PlainTextResponse)
    def authority_key() -> Response:
        return Response(str(runtime.verifier) + "\n", media_type="text/plain; charset=utf-8")

    @router.get(
        "/v1/proof/{leaf}",
        summary="The tlog-proof@v1 of a receipted leaf (hex leaf hash) against the latest checkpoint",
        response_class=PlainTextResponse,
        responses={
            **read_errors(400, 503),
            404: {"description": "unknown, or received and not yet in a checkpoint", **PROBLEM_RESPONSE},
        },
    )
    async def proof(leaf: str) -> Response:
        if not _HEX_LEAF.match(leaf):
            raise MalformedError("leaf: expected 64 lowercase hex digits (the RFC 6962 leaf hash)")
        wanted = bytes.fromhex(leaf)
        current = snapshot()
        with reader_lock:
            index = runtime.reader.find_hashes([wanted]).get(wanted)
            pending = index is None and wanted in runtime.reader.submitted([wanted])
        size = current.checkpoint.size
        if index is None or index >= size:
            state = "received; not yet in a checkpoint" if pending or index is not None else "never received"
            raise NotFoundError(f"leaf {leaf}: {state}")
        data = leaf_proof(runtime.data.log, index, current.checkpoint_bytes, size, tiles)
        return Response(data, media_type="text/plain; charset=utf-8")

    # -- results and mesas ------------------------------------------------------------------------------------

    @router.get(
        "/v1/results",
        summary="Totals of an area (default: national) and its children, bound to a checkpoint",
        responses=read_errors(404, 503),
    )
    async def results(area: str = "", contest: str = "") -> Response:
        contest_id = contest or election.contests[0].id
        position = next((i for i, c in enumerate(election.contests) if c.id == contest_id), None)
        if position is None:
            raise NotFoundError(f"contest: {contest_id!r} is not a contest of this election")
        # Live pages ask for the same few areas over and over: answer from the bytes made at this checkpoint.
        latest = runtime.live.snapshot
        cached = answers.get((area, position))
        if latest is not None and cached is not None and cached[0] == latest.checkpoint.size:
            return Response(cached[1], media_type="application/json")

        def value(index: int, row: list[int]) -> dict[str, object]:
            a = election.areas[index]
            return area_value(a.code, a.name, row, mesas_per_area[index], registered_per_area[index])

        if area:
            index = election.find_area(area)
            if index is None:
                raise NotFoundError(f"area: {area!r} is not an area of this election")
            kids = children[index]
            current, rows = runtime.live.rows(position, [index, *kids])
            head = value(index, rows[0]) | {"level": election.levels[election.areas[index].level]}
            rows = rows[1:]
        else:
            kids = roots
            current, rows = runtime.live.rows(position, kids)
            national = [sum(column) for column in zip(*rows, strict=True)]
            head = area_value(
                "",
                election.title,
                national,
                sum(mesas_per_area[r] for r in roots),
                sum(registered_per_area[r] for r in roots),
            ) | {"level": "national"}
        if current is None:
            raise UnavailableError("the log has no checkpoint yet")
        # Built here, not returned as a dict: FastAPI's generic encoder costs more than building the answer.
        answer = JSONResponse(
            {
                "checkpoint": current.binding.to_value() | {"origin": current.checkpoint.origin},
                "contest": contest_id,
                "options": [o.id for o in election.contests[position].options],
                "area": head,
                "children": [value(k, row) for k, row in zip(kids, rows, strict=True)],
            }
        )
        if len(answers) >= MAX_CACHED_ANSWERS:
            answers.clear()
        answers[(area, position)] = (current.checkpoint.size, bytes(answer.body))
        return answer

    @router.get(
        "/v1/mesas/{mesa}",
        summary="A mesa's actas: status, entry and inclusion proof",
        responses=read_errors(404, 503),
    )
    async def mesa_view(mesa: str) -> Response:
        # Answered by the HotRoutes layer in front of the app; this route documents it and answers the same.
        return Response(mesa_page(runtime, tiles, mesa), media_type="application/json")

    @router.get("/v1/events", summary="Server-sent events: new checkpoints and result changes")
    async def events() -> StreamingResponse:
        nonlocal subscribers
        if subscribers >= MAX_SUBSCRIBERS:
            raise UnavailableError("too many event-stream clients; read /log/checkpoint instead")
        queue = runtime.live.subscribe()
        subscribers += 1

        async def stream() -> AsyncIterator[str]:
            nonlocal subscribers
            try:
                while True:
                    try:
                        frame = await asyncio.wait_for(queue.get(), KEEPALIVE)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if frame is None:
                        return
                    yield frame
            finally:
                subscribers -= 1
                runtime.live.unsubscribe(queue)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
