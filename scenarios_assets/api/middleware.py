"""ASGI middleware of the API."""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException

from scenarios_assets.api.errors import error_response

# Largest request body accepted (413 beyond): a generation request is a few kB (1,000 symbols ~ 25 kB).
MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """ASGI middleware: a request body above ``limit`` bytes is refused with 413, before it is read when
    Content-Length says so, else as soon as the bytes received pass the limit (chunked uploads)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = error_response(413, f"the request body is {declared.decode(errors='replace')[:20]} bytes; at most "
                                   f"{self.limit} are accepted")
            return await response(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, f"the request body passed {self.limit} bytes, the most accepted")
            return message

        return await self.app(scope, limited, send)


