"""POST /v1/actas and GET /v1/mesas/{id} are answered by an ASGI layer in front of the framework; the framework's
routes behind it (which document them in OpenAPI) must answer every kind of request exactly as the layer does."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from actas.core.qr import encode_payload
from actas.service import hot_routes
from actas.service.app import create_app
from actas.service.hot_routes import HotRoutes
from tests.service.conftest import Election, LiveServer
from tests.service.station import flip_signature
from tests.service.test_errors import serve_app, variant

JSON = {"content-type": "application/json"}


def without_layer(server: LiveServer) -> AbstractContextManager[httpx.Client]:
    """The same runtime's app with the layer taken out: its requests reach the framework's route."""
    app = create_app(server.runtime)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]  # type: ignore[comparison-overlap]
    return serve_app(app)


def same(first: httpx.Response, second: httpx.Response) -> None:
    """Same status, media type, Retry-After and body."""
    assert first.status_code == second.status_code, (first.text, second.text)
    assert first.headers["content-type"] == second.headers["content-type"]
    assert first.headers.get("retry-after") == second.headers.get("retry-after")
    assert first.content == second.content


Request = Callable[[httpx.Client], httpx.Response]


@pytest.fixture
def layer_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the layer's handlers as they are called: proof that a request was answered by the layer."""
    calls: list[str] = []
    for name in ("submit_one", "mesa_page"):
        original = getattr(hot_routes, name)

        def spy(*args: Any, _original: Any = original, _name: str = name) -> Any:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(hot_routes, name, spy)
    return calls


@pytest.mark.parametrize(
    "name",
    [
        "resend",
        "resend as QR payload",
        "conflict",
        "not JSON",
        "bad signature",
        "content type",
        "too large",
        "repeated content type",
    ],
)
def test_the_layer_and_the_framework_route_answer_alike(
    server: LiveServer, election: Election, name: str, layer_calls: list[str]
) -> None:
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
        "repeated content type": lambda c: c.post(
            "/v1/actas", content=acta, headers=[("content-type", "text/plain"), ("content-type", "application/json")]
        ),
    }
    send = requests[name]
    through_layer = send(server.client)
    if name != "too large":  # refused before the submission is handled
        assert layer_calls == ["submit_one", "submit_one"]
    answered_by_layer = list(layer_calls)
    with without_layer(server) as behind:
        past_layer = send(behind)
    assert layer_calls == answered_by_layer, "the request meant for the framework's route reached the layer"
    same(through_layer, past_layer)
    assert through_layer.status_code != 500


def test_mesa_pages_through_the_layer_and_past_it_are_the_same(
    server: LiveServer, election: Election, layer_calls: list[str]
) -> None:
    """A counted mesa, a mesa with a conflict, a mesa with nothing yet, an unknown mesa: the same bytes both ways."""
    for data in (election.actas[0], variant(election, 0), election.actas[1]):
        assert server.client.post("/v1/actas", content=data, headers=JSON).status_code in (201, 409)
    server.wait_for_size(server.runtime.live.snapshot.checkpoint.size + 3)  # type: ignore[union-attr]
    pending = server.client.post("/v1/actas", content=election.actas[2], headers=JSON)  # received, maybe logged
    assert pending.status_code == 201
    mesas = [json.loads(election.actas[n])["mesa"] for n in range(4)] + ["no-such-mesa", "a%20b", "a%3Fb%23c%5Cd"]
    with without_layer(server) as behind:
        server.wait_for_size(server.runtime.live.snapshot.checkpoint.size + 1)  # type: ignore[union-attr]
        for mesa in mesas:
            through_layer = server.client.get(f"/v1/mesas/{mesa}")
            past_layer = behind.get(f"/v1/mesas/{mesa}")
            same(through_layer, past_layer)  # for an unknown mesa, the problem's instance too
            assert through_layer.status_code in (200, 404), through_layer.text
            assert layer_calls.count("mesa_page") == mesas.index(mesa) + 1
    conflicted = server.client.get(f"/v1/mesas/{mesas[0]}").json()
    assert conflicted["contests"][0]["conflict"] is True
    assert server.client.get("/v1/mesas/no-such-mesa").json()["code"] == "not-found"


def test_the_layer_answers_only_its_own_paths(server: LiveServer, layer_calls: list[str]) -> None:
    """GET on the POST path, POST on a longer path and mesa paths of no or two segments reach the framework."""
    wrong_method = server.client.get("/v1/actas")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method-not-allowed"
    longer = server.client.post("/v1/actas/x", content=b"{}", headers=JSON)
    assert longer.status_code == 404
    assert longer.json()["code"] == "not-found"
    for path in ("/v1/mesas/", "/v1/mesas/a/b"):
        response = server.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not-found"
    assert server.client.post("/v1/mesas/x").status_code == 405
    assert layer_calls == []
