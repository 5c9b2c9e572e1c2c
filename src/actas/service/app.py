"""The HTTP API (FastAPI): ingest with receipts and cosignatures here, the read side in read_routes.

Every route is thin: parse at the edge, call one part of the runtime, answer. Every ActasError becomes an
RFC 9457 problem+json response in one handler (actas.service.problems).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from actas.core import merkle
from actas.core.b64 import b64encode
from actas.core.note import Checkpoint, open_signed_checkpoint, verify_cosignature
from actas.core.tiles import perfect_hash_from_tiles
from actas.errors import ActasError, EnrollmentError, MalformedError, NotFoundError, TooLargeError
from actas.log.proofs import TileCache
from actas.service.answers import accepted_json, error_answer, json_text
from actas.service.hot_routes import HotRoutes, receive_body, submit_one
from actas.service.ingest import Outcome
from actas.service.observations import check_upload
from actas.service.problems import MEDIA_TYPE, PROBLEM_RESPONSE, problem
from actas.service.read_routes import add_read_routes
from actas.service.runtime import Runtime
from actas.service.site_files import mount_site
from actas.storage.blobs import FileBlobStore

log = logging.getLogger("actas.service")
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
_OBSERVATION_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["entry", "image"],
                "properties": {
                    "entry": {"type": "string", "description": "the observation entry signed by the witness"},
                    "image": {"type": "string", "format": "binary", "description": "the JPEG, PNG, TIFF, HEIC or PDF"},
                },
            }
        }
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, **PROBLEM_RESPONSE}
    for status, description in (
        (400, "malformed"),
        (403, "device key not enrolled"),
        (409, "a different acta for this mesa (logged as a conflict)"),
        (413, "body too large"),
        (422, "bad signature or rule broken"),
        (429, "rate limited"),
    )
}


def problem_response(error: ActasError, request: Request) -> Response:
    """The problem+json response of an error (with Retry-After when rate limited)."""
    answer = error_answer(error, request.url.path)
    return Response(answer.body, answer.status, dict(answer.headers), media_type=answer.media_type)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed limit."""
    declared = request.headers.get("content-length")
    return await receive_body(request.receive, declared.encode("latin-1") if declared else None, limit)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


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
    reader_lock = runtime.reader_lock  # one reader connection; read routes run on the event loop, small and quick

    @app.exception_handler(ActasError)
    async def actas_error(request: Request, exc: ActasError) -> Response:
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
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(ActasError(f"{type(exc).__name__}"), request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem_response(MalformedError(where or "invalid request"), request)

    def in_this_log(checkpoint: Checkpoint) -> bool:
        """Whether a checkpoint this process did not see is one of this log's trees (another process signed it)."""
        current = runtime.live.snapshot
        if current is None or checkpoint.size > current.checkpoint.size:
            return False
        hashes = perfect_hash_from_tiles(TileCache(runtime.data.log).read, current.checkpoint.size)
        return bool(merkle.root_from_perfect(checkpoint.size, hashes) == checkpoint.root_hash)

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
        # Answered by the HotRoutes layer in front of the app; this route documents it and answers the same.
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, runtime.config.max_acta_body)
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        answer = await submit_one(runtime, media, body)
        return Response(answer.body, answer.status, dict(answer.headers), media_type=answer.media_type)

    @app.post(
        "/v1/actas:batch",
        summary="Submit many signed actas as NDJSON; one result per line, partial success",
        openapi_extra={"requestBody": _BATCH_BODY},
        responses={**_ERRORS},
    )
    async def submit_batch(request: Request) -> Response:
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, runtime.config.max_batch_body)
        count = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
        if count > runtime.config.max_batch_lines:  # counted before splitting: a split copies every line
            raise TooLargeError(f"{count} lines is more than the {runtime.config.max_batch_lines} a batch takes")
        if count > 1:
            runtime.address_limiter.check(_client(request), count - 1)  # a batch costs one token per line
        lines = [line.removesuffix(b"\r") for line in body.split(b"\n")[:count]]
        checked = await run_in_threadpool(runtime.ingest.check_many, lines)
        leaves = [item.entry.entry_hash for item in checked if item.entry is not None]
        # Only a device limit needs to know which lines are resends.
        seen = runtime.submitted_before(leaves) if runtime.config.device_limit.rate > 0 else set()
        limited: dict[int, ActasError] = {}
        for n, item in enumerate(checked):
            if item.signer is not None and item.entry is not None and item.entry.entry_hash not in seen:
                try:
                    runtime.device_limiter.check(item.signer)
                except ActasError as exc:
                    limited[n] = exc
        storable = [item for n, item in enumerate(checked) if n not in limited]
        outcomes: list[Outcome] = await asyncio.wrap_future(runtime.ingest.store(storable))
        stored = iter(outcomes)
        results: list[str] = []
        counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
        for n in range(len(checked)):
            outcome = limited[n] if n in limited else next(stored)
            if isinstance(outcome, ActasError):
                counts["rejected"] += 1
                results.append(json_text({"line": n + 1, "status": "rejected", "problem": problem(outcome)}))
            else:
                counts[outcome.status] += 1
                results.append(accepted_json(outcome, n + 1))
        # Written as text around each receipt's canonical text: encoding a thousand nested values was a tenth
        # of the service process's work per acta.
        text = f'{{"results":[{",".join(results)}],{json_text(counts)[1:]}'
        return Response(text, media_type="application/json")

    add_read_routes(app, runtime, reader_lock)  # on the app itself: an included router adds a layer per request

    # -- witnesses ----------------------------------------------------------------------------------------

    @app.post(
        "/v1/cosignatures",
        summary="A witness's cosignature: the checkpoint note with its tlog-cosignature line(s) added",
        openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
        responses={**_ERRORS, 404: {"description": "not a checkpoint this log served recently", **PROBLEM_RESPONSE}},
    )
    async def cosignatures(request: Request) -> dict[str, Any]:
        runtime.address_limiter.check(_client(request))
        body = await read_body(request, 16 * 1024)
        signed = open_signed_checkpoint(body, runtime.verifier)
        cp = signed.checkpoint
        if runtime.live.recent(cp.size, cp.root_hash) is None and not await run_in_threadpool(in_this_log, cp):
            raise NotFoundError(f"checkpoint of size {cp.size}: not a checkpoint of this log's tree")
        accepted: list[str] = []
        lines: list[tuple[str, str]] = []
        for signature in signed.note.signatures:
            witness = runtime.witnesses.get(signature.name)
            if witness is None or signature.name == runtime.verifier.name:
                continue
            verify_cosignature(cp, signature, witness)
            lines.append((signature.name, signature.line()))
            accepted.append(signature.name)

        def keep() -> None:  # a durable write: off the event loop
            with reader_lock:
                for name, line in lines:
                    runtime.reader.add_cosignature(cp.size, cp.root_hash, name, line)

        await run_in_threadpool(keep)
        if not accepted:
            raise EnrollmentError("no cosignature from a witness this log is configured to accept")
        return {"accepted": accepted, "size": cp.size, "root": b64encode(cp.root_hash)}

    @app.post(
        "/v1/observations",
        summary="A witness's copy of a printed acta: the signed observation entry and the image it was read from",
        openapi_extra={"requestBody": _OBSERVATION_BODY},
        responses={200: {"description": "already received: the same receipt"}, **_ERRORS},
        status_code=201,
    )
    async def submit_observation(request: Request) -> Response:
        runtime.address_limiter.check(_client(request))
        if not runtime.config.witnesses:  # refused before a byte of the (large) body is read
            raise EnrollmentError("this service takes observations from no witness key (see actas serve --witness)")
        body = await read_body(request, runtime.config.max_observation_body)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "multipart/form-data":
            raise MalformedError(f"content-type {media!r}: send multipart/form-data with parts entry and image")

        async def whole() -> AsyncGenerator[bytes, None]:
            yield body

        try:
            form = await MultiPartParser(request.headers, whole(), max_files=1, max_fields=1).parse()
        except MultiPartException as exc:
            raise MalformedError(f"multipart body: {exc.message}") from None
        try:
            entry, image = form.get("entry"), form.get("image")
            if not isinstance(entry, str) or isinstance(image, str) or image is None:
                raise MalformedError("multipart body: needs a text part 'entry' and a file part 'image'")
            image_bytes = await image.read()
        finally:
            await form.close()  # the parser spools file parts to temporary files
        witnesses = frozenset(str(w) for w in runtime.config.witnesses)
        checked = await run_in_threadpool(
            check_upload, entry.encode(), image_bytes, runtime.election, runtime.verifier, witnesses
        )
        if checked.entry is not None:
            await run_in_threadpool(FileBlobStore(runtime.data.images).put, image_bytes)  # durable before the entry
        outcome = (await asyncio.wrap_future(runtime.ingest.store([checked])))[0]
        if isinstance(outcome, ActasError):
            raise outcome
        status = 201 if outcome.status == "accepted" else 200
        return Response(accepted_json(outcome), status_code=status, media_type="application/json")

    if runtime.config.site is not None:
        mount_site(app, runtime.config.site)  # last: every route above takes precedence
    app.add_middleware(HotRoutes, runtime=runtime)
    return app
