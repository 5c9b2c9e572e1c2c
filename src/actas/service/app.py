"""The HTTP API (FastAPI): ingest with receipts, the log's read side, results, events, cosignatures.

Every route is thin: parse at the edge, call one part of the runtime, answer. Every ActasError becomes an
RFC 9457 problem+json response in one handler (actas.service.problems).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from actas.core import canonical
from actas.core.b64 import b64encode
from actas.core.merkle import leaf_hash
from actas.core.note import add_signatures, open_signed_checkpoint, verify_cosignature
from actas.core.qr import decode_payload
from actas.core.tally import area_value, expected_per_area
from actas.errors import ActasError, EnrollmentError, MalformedError, NotFoundError, TooLargeError, UnavailableError
from actas.log.proofs import TileCache, leaf_proof
from actas.service.ingest import Accepted, Outcome
from actas.service.live import Snapshot
from actas.service.problems import MEDIA_TYPE, problem
from actas.service.runtime import Runtime

log = logging.getLogger("actas.service")
MAX_SUBSCRIBERS = 10_000
KEEPALIVE = 15.0
_TILE = re.compile(r"(?:[0-9]|[1-5][0-9]|6[0-3]|entries)/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[1-9][0-9]{0,2})?\Z")
_HEX_LEAF = re.compile(r"[0-9a-f]{64}\Z")
_SINGLE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object", "description": "a signed acta entry, canonical JSON"}},
        "text/plain": {"schema": {"type": "string", "description": "the printed QR payload (ACTAS1:…)"}},
    },
}
_BATCH_BODY = {
    "required": True,
    "content": {"application/x-ndjson": {"schema": {"type": "string", "description": "one acta entry per line"}}},
}
_PROBLEM = {"content": {MEDIA_TYPE: {"schema": {"type": "object"}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, **_PROBLEM}
    for status, description in (
        (400, "malformed"),
        (403, "device key not enrolled"),
        (409, "a different acta for this mesa (logged as a conflict)"),
        (413, "body too large"),
        (422, "bad signature or rule broken"),
        (429, "rate limited"),
    )
}
_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "code", "detail", "instance"})
_READ_PROBLEMS = {400: "malformed", 404: "not found", 503: "the log has no checkpoint yet"}


def _read_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses a read route documents (request validation errors are 400, never FastAPI's 422)."""
    return {status: {"description": _READ_PROBLEMS[status], **_PROBLEM} for status in statuses}


def problem_response(error: ActasError, request: Request, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The problem+json response of an error; extra members never replace the RFC 9457 ones (type, status, …)."""
    body = problem(error, request.url.path)
    body |= {key: value for key, value in (extra or {}).items() if key not in _PROBLEM_MEMBERS}
    headers = {}
    if body["status"] == 429:
        headers["Retry-After"] = str(max(1, round(body.get("retry_after", 1))))
    if body["status"] >= 500:
        log.error("%s %s: %s", request.method, request.url.path, error)
    return JSONResponse(body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"body of {declared} bytes is more than the {limit} this route takes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"body is more than the {limit} bytes this route takes")
        chunks.append(chunk)
    return b"".join(chunks)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _accepted_value(outcome: Accepted) -> dict[str, Any]:
    value: dict[str, Any] = {
        "status": outcome.status,
        "leaf_hash": outcome.leaf_hash.hex(),
        "receipt": outcome.receipt.to_value(),
        "proof": f"/v1/proof/{outcome.leaf_hash.hex()}",
        "warnings": list(outcome.warnings),
    }
    if outcome.conflicts_with is not None:
        value["existing_leaf_hash"] = outcome.conflicts_with.hex()
    return value


def create_app(runtime: Runtime, manage: bool = False) -> FastAPI:
    """The ASGI application over a runtime; with manage, the app starts and closes it, else the caller does."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        lifespan=lifespan if manage else None,
        title="actas results service",
        version="1",
        description="Signed actas in, receipts out; the public log, results and events.",
    )
    election = runtime.election
    reader_lock = threading.Lock()  # one reader connection; read routes run on the event loop, small and quick
    tiles = TileCache(runtime.data.log)  # full hash tiles never change: proofs read them from memory
    mesas_per_area, registered_per_area = expected_per_area(election)
    children: list[list[int]] = [[] for _ in election.areas]
    roots: list[int] = []
    for index, area in enumerate(election.areas):
        (children[area.parent] if area.parent >= 0 else roots).append(index)
    subscribers = 0

    @app.exception_handler(ActasError)
    async def actas_error(request: Request, exc: ActasError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:  # no route matched (extra segments, a newline in a tile path): still a problem
            return problem_response(NotFoundError(f"{request.url.path}: no such resource"), request)
        if exc.status_code == 405:
            body = {
                "type": "urn:actas:problem:method-not-allowed",
                "title": HTTPStatus(405).phrase,
                "status": 405,
                "code": "method-not-allowed",
                "detail": f"{request.method} is not allowed on {request.url.path}",
                "instance": request.url.path,
            }
            return JSONResponse(body, 405, headers=exc.headers, media_type=MEDIA_TYPE)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(ActasError(f"{type(exc).__name__}"), request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem_response(MalformedError(where or "invalid request"), request)

    def snapshot() -> Snapshot:
        current = runtime.live.snapshot
        if current is None:
            raise UnavailableError("the log has no checkpoint yet")
        return current

    # -- ingest -------------------------------------------------------------------------------------------

    @app.get("/healthz", summary="Liveness (also the benchmark's trivial endpoint)")
    async def healthz() -> dict[str, bool]:
        sequencer = runtime.sequencer
        return {"ok": True, "sequencer": sequencer is not None and sequencer.is_leader}

    @app.post(
        "/v1/actas",
        summary="Submit one signed acta; answered with the authority's receipt",
        openapi_extra={"requestBody": _SINGLE_BODY},
        responses={200: {"description": "already received: the same receipt"}, **_ERRORS},
        status_code=201,
    )
    async def submit_acta(request: Request) -> Response:
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, runtime.config.max_acta_body)
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media == "text/plain":
            try:
                text = body.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedError("payload: not ASCII text") from None
            body = decode_payload(text.removesuffix("\n"))
        elif media not in ("application/json", ""):
            raise MalformedError(f"content-type {media!r}: send application/json or text/plain (QR payload)")
        checked = runtime.ingest.check(body)
        if checked.signer is not None:
            runtime.device_limiter.check(checked.signer)
        outcome = (await asyncio.wrap_future(runtime.ingest.store([checked])))[0]
        if isinstance(outcome, ActasError):
            raise outcome
        if outcome.status == "conflict":
            return problem_response(outcome.conflict_error(), request, _accepted_value(outcome))
        return JSONResponse(_accepted_value(outcome), status_code=201 if outcome.status == "accepted" else 200)

    @app.post(
        "/v1/actas:batch",
        summary="Submit many signed actas as NDJSON; one result per line, partial success",
        openapi_extra={"requestBody": _BATCH_BODY},
        responses={**_ERRORS},
    )
    async def submit_batch(request: Request) -> Response:
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, runtime.config.max_batch_body)
        lines = body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) > runtime.config.max_batch_lines:
            raise TooLargeError(f"{len(lines)} lines is more than the {runtime.config.max_batch_lines} a batch takes")
        lines = [line.removesuffix(b"\r") for line in lines]
        checked, presigned = await run_in_threadpool(runtime.ingest.check_many, lines)
        limited: dict[int, ActasError] = {}
        for n, item in enumerate(checked):
            if item.signer is not None:
                try:
                    runtime.device_limiter.check(item.signer)
                except ActasError as exc:
                    limited[n] = exc
        storable = [item for n, item in enumerate(checked) if n not in limited]
        outcomes: list[Outcome] = await asyncio.wrap_future(runtime.ingest.store(storable, presigned))
        stored = iter(outcomes)
        results: list[dict[str, Any]] = []
        counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
        for n in range(len(checked)):
            outcome = limited[n] if n in limited else next(stored)
            if isinstance(outcome, ActasError):
                counts["rejected"] += 1
                results.append({"line": n + 1, "status": "rejected", "problem": problem(outcome)})
            else:
                counts[outcome.status] += 1
                results.append({"line": n + 1, **_accepted_value(outcome)})
        return JSONResponse({"results": results, **counts})

    # -- the log, byte for byte as published ----------------------------------------------------------------

    @app.get(
        "/log/checkpoint",
        summary="The latest checkpoint, with the witnesses' cosignatures",
        response_class=PlainTextResponse,
        responses=_read_errors(503),
    )
    async def checkpoint() -> Response:
        current = snapshot()
        cp = current.checkpoint
        with reader_lock:
            lines = runtime.reader.cosignatures(cp.size, cp.root_hash)
        data = add_signatures(current.checkpoint_bytes, lines) if lines else current.checkpoint_bytes
        return Response(data, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @app.get(
        "/log/tile/{path:path}",
        summary="A hash tile or entry bundle (C2SP tlog-tiles)",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, **_read_errors(404)},
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

    @app.get("/election.json", summary="The election definition, as published")
    def election_json() -> Response:
        return Response(runtime.data.election.read_bytes(), media_type="application/json")

    @app.get("/keys/authority.vkey", summary="The authority's verifier key", response_class=PlainTextResponse)
    def authority_key() -> Response:
        return Response(str(runtime.verifier) + "\n", media_type="text/plain; charset=utf-8")

    @app.get(
        "/v1/proof/{leaf}",
        summary="The tlog-proof@v1 of a receipted leaf (hex leaf hash) against the latest checkpoint",
        response_class=PlainTextResponse,
        responses={
            **_read_errors(400, 503),
            404: {"description": "unknown, or received and not yet in a checkpoint", **_PROBLEM},
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

    @app.get(
        "/v1/results",
        summary="Totals of an area (default: national) and its children, bound to a checkpoint",
        responses=_read_errors(404, 503),
    )
    async def results(area: str = "", contest: str = "") -> JSONResponse:
        contest_id = contest or election.contests[0].id
        position = next((i for i, c in enumerate(election.contests) if c.id == contest_id), None)
        if position is None:
            raise NotFoundError(f"contest: {contest_id!r} is not a contest of this election")

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
        # A JSONResponse, not a dict: FastAPI's generic encoder costs more than building the answer.
        return JSONResponse(
            {
                "checkpoint": current.binding.to_value() | {"origin": current.checkpoint.origin},
                "contest": contest_id,
                "options": [o.id for o in election.contests[position].options],
                "area": head,
                "children": [value(k, row) for k, row in zip(kids, rows, strict=True)],
            }
        )

    @app.get(
        "/v1/mesas/{mesa}",
        summary="A mesa's actas: status, entry and inclusion proof",
        responses=_read_errors(404, 503),
    )
    async def mesa_view(mesa: str) -> JSONResponse:
        if election.mesa_index(mesa) is None:
            raise NotFoundError(f"mesa {mesa!r} is not in this election")
        current = snapshot()
        size = current.checkpoint.size
        contests: list[dict[str, Any]] = []
        for contest in election.contests:
            key = (mesa, contest.id)
            with reader_lock:
                indexes = runtime.reader.mesa_indexes(mesa, contest.id)
                entries = [runtime.reader.read(i, i + 1)[0] for i in indexes]
                submitted = runtime.reader.submitted_for_mesas([key]).get(key, [])
            actas: list[dict[str, Any]] = []
            logged = set()
            for n, (index, data) in enumerate(zip(indexes, entries, strict=True)):
                leaf = leaf_hash(data)
                logged.add(leaf)
                included = index < size
                actas.append(
                    {
                        "leaf_index": index,
                        "leaf_hash": leaf.hex(),
                        "status": ("counted" if n == 0 else "conflict") if included else "sequenced",
                        "entry": canonical.decode(data),
                        "proof": leaf_proof(runtime.data.log, index, current.checkpoint_bytes, size, tiles).decode()
                        if included
                        else None,
                    }
                )
            actas += [{"leaf_hash": leaf.hex(), "status": "received"} for leaf in submitted if leaf not in logged]
            contests.append({"contest": contest.id, "actas": actas, "conflict": len(actas) > 1})
        return JSONResponse({"mesa": mesa, "checkpoint": current.binding.to_value(), "contests": contests})

    @app.get("/v1/events", summary="Server-sent events: new checkpoints and result changes")
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

    # -- witnesses ----------------------------------------------------------------------------------------

    @app.post(
        "/v1/cosignatures",
        summary="A witness's cosignature: the checkpoint note with its tlog-cosignature line(s) added",
        openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
        responses={**_ERRORS, 404: {"description": "not a checkpoint this log served recently", **_PROBLEM}},
    )
    async def cosignatures(request: Request) -> dict[str, Any]:
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, 16 * 1024)
        signed = open_signed_checkpoint(body, runtime.verifier)
        cp = signed.checkpoint
        if runtime.live.recent(cp.size, cp.root_hash) is None:
            raise NotFoundError(f"checkpoint of size {cp.size}: not one this log served recently")
        accepted: list[str] = []
        for signature in signed.note.signatures:
            witness = runtime.witnesses.get(signature.name)
            if witness is None or signature.name == runtime.verifier.name:
                continue
            verify_cosignature(cp, signature, witness)
            with reader_lock:
                runtime.reader.add_cosignature(cp.size, cp.root_hash, signature.name, signature.line())
            accepted.append(signature.name)
        if not accepted:
            raise EnrollmentError("no cosignature from a witness this log is configured to accept")
        return {"accepted": accepted, "size": cp.size, "root": b64encode(cp.root_hash)}

    return app
