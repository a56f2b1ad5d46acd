"""The API's errors: JSON ``{"status", "error", "message"[, "details"]}``, never a stack trace, and no server
file path (``redact``)."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scenarios_assets.api.models import ErrorBody

log = logging.getLogger("scenarios_assets.api")

# Absolute server paths in an answer's text are cut to their last component (``redact``); the API's own
# routes (e.g. "follow it at /runs/<id>") are links, not server paths, and stay whole.
API_ROUTE_ROOTS = ("runs", "scenarios", "builds", "report", "health", "docs", "openapi.json")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?!(?:%s)(?:/|\b))(?:[^\s'\"/()]+/)+([^\s'\"/()]*)"
                            % "|".join(re.escape(r) for r in API_ROUTE_ROOTS))


class ApiError(Exception):
    """An answer other than 2xx: its status and one-line message (JSON error body, ``error_response``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def redact(text: str) -> str:
    """``text`` with every absolute file path cut to its last component ('/srv/data/ohlcv.parquet' ->
    'ohlcv.parquet'): answers name the input, never where the server keeps it."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", str(text))


def error_response(status: int, message: str, details: list | None = None, headers: dict | None = None) -> JSONResponse:
    """The JSON error body of ``status`` (its HTTP phrase as ``error``), paths redacted."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict = {"status": status, "error": phrase, "message": redact(message)}
    if details is not None:
        body["details"] = [{**d, "message": redact(str(d.get("message", "")))} for d in details]
    return JSONResponse(body, status_code=status, headers=headers)


def error_responses(*codes: int) -> dict:
    """The OpenAPI ``responses`` entries of the error statuses a route answers."""
    text = {400: "Unreadable body (not JSON, or empty)", 404: "Not found", 406: "Not acceptable", 409: "Conflict",
            413: "Body too large", 422: "Invalid parameters", 503: "No catalog yet"}
    return {code: {"model": ErrorBody, "description": text.get(code, "Error")} for code in codes}


async def _api_error(_request, exc: ApiError):
    return error_response(exc.status, exc.message)


async def _http_error(_request, exc: StarletteHTTPException):
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; see /docs"
    elif exc.status_code == 400 and message == "There was an error parsing the body":
        message = "the request body is not readable JSON (UTF-8)"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))  # e.g. Allow on a 405


async def _validation_error(_request, exc: RequestValidationError):
    errors = exc.errors()
    unreadable = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if unreadable is not None:
        position = unreadable.get("loc", ("body", "?"))[-1]
        reason = (unreadable.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, f"the request body is not valid JSON: {reason} (at character {position})")
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        return error_response(400, "the request body is empty: send a JSON object ({} for the defaults)")
    details = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        details.append({"location": loc, "message": str(err.get("msg", "invalid"))[:500]})
    summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:3]) or "invalid request"
    return error_response(422, f"invalid parameters: {summary}", details)


async def _unexpected(_request, exc: Exception):
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Every error of ``app`` as the JSON error body: ApiError, HTTP errors (404, 405 with Allow, 413),
    validation errors (400 for a body that is not JSON or empty, else 422 with details), anything else 500."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
