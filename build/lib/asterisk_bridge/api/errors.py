"""The API's error type and its JSON shape, shared by server.py and the route modules.

Its own module so server.py can import the route modules at the top while they import
these, without a cycle.
"""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
