"""POST /v1/actas is answered by an ASGI layer in front of the framework; the framework's route behind it (which
documents the route in OpenAPI) must answer every kind of request exactly as the layer does."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from actas.core.qr import encode_payload
from actas.service.app import create_app
from actas.service.single_submit import SingleSubmit
from tests.service.conftest import Election, LiveServer
from tests.service.station import flip_signature
from tests.service.test_errors import serve_app, variant

JSON = {"content-type": "application/json"}


def without_layer(server: LiveServer) -> AbstractContextManager[httpx.Client]:
    """The same runtime's app with the layer taken out: its requests reach the framework's route."""
    app = create_app(server.runtime)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not SingleSubmit]  # type: ignore[comparison-overlap]
    return serve_app(app)


def same(first: httpx.Response, second: httpx.Response) -> None:
    """Same status, media type, Retry-After and body."""
    assert first.status_code == second.status_code, (first.text, second.text)
    assert first.headers["content-type"] == second.headers["content-type"]
    assert first.headers.get("retry-after") == second.headers.get("retry-after")
    assert first.content == second.content


Request = Callable[[httpx.Client], httpx.Response]


@pytest.mark.parametrize(
    "name",
    ["resend", "resend as QR payload", "conflict", "not JSON", "bad signature", "content type", "too large"],
)
def test_the_layer_and_the_framework_route_answer_alike(server: LiveServer, election: Election, name: str) -> None:
    """Each kind of submission, sent through the layer and then past it, gets byte-identical answers."""
    acta = election.actas[0]
    first = server.client.post("/v1/actas", content=acta, headers=JSON)
    assert first.status_code == 201, first.text
    requests: dict[str, Request] = {
        "resend": lambda c: c.post("/v1/actas", content=acta, headers=JSON),
        "resend as QR payload": lambda c: c.post(
            "/v1/actas", content=encode_payload(acta), headers={"content-type": "text/plain"}
        ),
        "conflict": lambda c: c.post("/v1/actas", content=variant(election, 0), headers=JSON),
        "not JSON": lambda c: c.post("/v1/actas", content=b"{not json", headers=JSON),
        "bad signature": lambda c: c.post("/v1/actas", content=flip_signature(election.actas[1]), headers=JSON),
        "content type": lambda c: c.post("/v1/actas", content=acta, headers={"content-type": "image/png"}),
        "too large": lambda c: c.post("/v1/actas", content=b" " * (server.runtime.config.max_acta_body + 1)),
    }
    send = requests[name]
    through_layer = send(server.client)
    with without_layer(server) as behind:
        past_layer = send(behind)
    same(through_layer, past_layer)
    assert through_layer.status_code != 500


def test_the_layer_answers_only_post_on_its_own_path(server: LiveServer) -> None:
    """GET on the path and POST on a longer path reach the framework: 405 and 404 problems, as before."""
    wrong_method = server.client.get("/v1/actas")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method-not-allowed"
    longer = server.client.post("/v1/actas/x", content=b"{}", headers=JSON)
    assert longer.status_code == 404
    assert longer.json()["code"] == "not-found"
