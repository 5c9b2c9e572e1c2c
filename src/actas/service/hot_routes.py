"""The two routes stations and live pages call most, answered by a plain ASGI layer in front of the framework.

``POST /v1/actas`` (every station's acta) and ``GET /v1/mesas/{id}`` (a mesa's actas and proofs) each cost the
service process's one event loop a request's worth of Python, and the framework's layers (routing, dependency
solving, exception middleware, response classes) were a sixth of it. This layer answers those two routes itself
and passes every other request on unchanged. The framework keeps a route for each, which documents it in the
OpenAPI schema and answers it the same way where this layer is not in front.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.datastructures import URL
from starlette.types import ASGIApp, Receive, Scope, Send

from actas.core.qr import decode_payload
from actas.errors import ActasError, MalformedError, TooLargeError
from actas.log.validate import Checked
from actas.service.answers import Answer, accepted_json, error_answer
from actas.service.mesa_page import mesa_page
from actas.service.runtime import Runtime

PATH = "/v1/actas"
MESAS = "/v1/mesas/"


async def submit_one(runtime: Runtime, media: str, body: bytes) -> Answer:
    """Check, store and answer one submission (JSON or a QR payload); an error is answered as a problem."""
    try:
        if media == "text/plain":
            try:
                text = body.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedError("payload: not ASCII text") from None
            body = decode_payload(text.removesuffix("\n"))
        elif media not in ("application/json", ""):
            raise MalformedError(f"content-type {media!r}: send application/json or text/plain (QR payload)")
        admit = _device_limit(runtime) if runtime.config.device_limit.rate > 0 else None
        if runtime.check_link is not None and admit is None:  # checked in a worker process, then committed
            outcome = await runtime.ingest.store_one(await runtime.check_link.check(body))
        elif runtime.check_link is not None:  # the device limit reads the store: admitted on a thread
            checked = await runtime.check_link.check(body)
            outcome = await asyncio.wrap_future(runtime.ingest.admit_and_store(checked, admit, runtime.check_threads))
        else:  # checked on a thread beside the event loop, then handed to the committer from there
            outcome = await asyncio.wrap_future(runtime.ingest.check_and_store(body, runtime.check_threads, admit))
        if isinstance(outcome, ActasError):
            raise outcome
    except ActasError as exc:
        return error_answer(exc, PATH)
    if outcome.status == "conflict":
        return error_answer(outcome.conflict_error(), PATH, accepted_json(outcome))
    status = 201 if outcome.status == "accepted" else 200
    return Answer(status, "application/json", accepted_json(outcome).encode())


def _device_limit(runtime: Runtime) -> Callable[[Checked], None]:
    def admit(checked: Checked) -> None:
        assert checked.entry is not None
        if checked.signer is not None and not runtime.submitted_before([checked.entry.entry_hash]):
            runtime.device_limiter.check(checked.signer)  # resends are free: actas are public, replays are cheap

    return admit


def mesa_answer(runtime: Runtime, scope: Scope, mesa: str) -> Answer:
    """GET /v1/mesas/{mesa}: the mesa page, or its problem."""
    try:
        return Answer(200, "application/json", mesa_page(runtime, runtime.tiles, mesa))
    except ActasError as exc:
        return error_answer(exc, URL(scope=scope).path)  # the instance as the framework writes it (escaped)


class HotRoutes:
    """The ASGI layer: POST /v1/actas and GET /v1/mesas/{id} answered here, everything else passed on."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if method == "POST" and path == PATH:
                await _send(send, await self._submit(scope, receive))
                return
            # The framework's {mesa} matches one non-empty path segment: so does this.
            if method == "GET" and path.startswith(MESAS) and len(path) > len(MESAS) and "/" not in path[len(MESAS) :]:
                await _send(send, mesa_answer(self.runtime, scope, path[len(MESAS) :]))
                return
        await self.app(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive) -> Answer:
        runtime = self.runtime
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:  # the first of repeated headers, as the framework reads them
            headers.setdefault(name, value)
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            runtime.address_limiter.check(client)
            body = await receive_body(receive, headers.get(b"content-length"), runtime.config.max_acta_body)
        except ActasError as exc:
            return error_answer(exc, PATH)
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        return await submit_one(runtime, media.decode("latin-1"), body)


async def _send(send: Send, answer: Answer) -> None:
    payload = answer.body
    head = [(b"content-length", b"%d" % len(payload)), (b"content-type", answer.media_type.encode())]
    head += [(name.encode(), value.encode()) for name, value in answer.headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


async def receive_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """A request body from ASGI receive, refused with 413 as soon as it is known (or declared) to exceed limit."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"body of {declared.decode()} bytes is more than the {limit} this route takes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedError("the client went away before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"body is more than the {limit} bytes this route takes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
