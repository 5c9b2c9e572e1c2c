"""The answers the API sends: a stored submission's result, and problem details (RFC 9457) for an error."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from actas.errors import ActasError
from actas.service.ingest import Accepted
from actas.service.problems import MEDIA_TYPE, problem

log = logging.getLogger("actas.service")

PROBLEM_MEMBERS = frozenset({"type", "title", "status", "code", "detail", "instance"})


def json_text(value: object) -> str:
    """JSON text as the framework's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def accepted_json(outcome: Accepted, line: int | None = None) -> str:
    """The answer for one stored submission, as JSON text around the receipt's own canonical text."""
    leaf = outcome.leaf_hash.hex()
    head = f'{{"line":{line},' if line is not None else "{"
    existing = f',"existing_leaf_hash":"{outcome.conflicts_with.hex()}"' if outcome.conflicts_with is not None else ""
    warnings = json_text(list(outcome.warnings)) if outcome.warnings else "[]"
    return (
        f'{head}"status":"{outcome.status}","leaf_hash":"{leaf}","receipt":{outcome.receipt_json},'
        f'"proof":"/v1/proof/{leaf}","warnings":{warnings}{existing}}}'
    )


def problem_body(error: ActasError, instance: str, extra_json: str | None = None) -> dict[str, Any]:
    """The problem details of an error; an extra JSON object's members never replace the RFC 9457 ones."""
    body = problem(error, instance)
    if extra_json is not None:
        extra: dict[str, Any] = json.loads(extra_json)
        body |= {key: value for key, value in extra.items() if key not in PROBLEM_MEMBERS}
    return body


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, media type, body and any extra headers."""

    status: int
    media_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def error_answer(error: ActasError, instance: str, extra_json: str | None = None) -> Answer:
    """The problem+json answer of an error (Retry-After on 429); extra members never replace RFC 9457 ones."""
    body = problem_body(error, instance, extra_json)
    status = int(body["status"])
    if status >= 500:
        log.error("%s: %s", instance, error)
    headers = (("retry-after", str(max(1, round(body.get("retry_after", 1))))),) if status == 429 else ()
    return Answer(status, MEDIA_TYPE, json_text(body).encode(), headers)
