"""Errors of the ARI REST interface, typed by what the caller can do about them."""

from __future__ import annotations


class AriError(Exception):
    """ARI answered with an error status (or not at all)."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"ARI {method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message
        self.method = method
        self.path = path


class AriNotFound(AriError):
    """404: the resource is gone. For a channel this is the normal end of a call (it hung
    up while we were acting on it), so flows treat it as a hangup, not a fault."""


class AriConflict(AriError):
    """409: the resource exists but is in the wrong state (e.g. not in Stasis any more)."""


class AriUnprocessable(AriError):
    """400/422: ARI refused our request as malformed; a bug on our side or bad media."""


class AriUnavailable(AriError):
    """Asterisk did not answer (connection refused, reset, timeout)."""


class AriWebsocketClosed(AriUnavailable):
    """The event websocket a request was sent on closed before its answer came (the
    request may or may not have been carried out)."""


def error_for_status(status: int, message: str, *, method: str, path: str) -> AriError:
    kind: type[AriError]
    if status == 404:
        kind = AriNotFound
    elif status == 409:
        kind = AriConflict
    elif status in (400, 422):
        kind = AriUnprocessable
    else:
        kind = AriError
    return kind(status, message, method=method, path=path)
