"""One keep-alive HTTP session per backend, and the failure classification they share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from .base import (
    REASON_BAD_RESPONSE,
    REASON_CONNECTION,
    REASON_HTTP_4XX,
    REASON_HTTP_5XX,
    REASON_TIMEOUT,
    CrmError,
)

# A CRM answer is a few kilobytes; anything far larger is a misconfigured URL (an HTML
# portal page, a file) and is refused rather than parsed.
MAX_RESPONSE_BYTES = 1 << 20


class JsonClient:
    """POSTs raw bodies and reads JSON answers; opens its session lazily inside the loop.

    aiohttp binds a session to the running event loop, and build_crm runs before the loop
    may exist (CLI, tests), hence the lazy start.
    """

    def __init__(self, *, timeout: float, user_agent: str = "numcfg") -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """(HTTP status, parsed JSON) for any status below 500; CrmError otherwise.

        4xx answers are returned, not raised: Bitrix24 puts its error object in a 400.
        """
        request_headers = {"Content-Type": "application/json", **(headers or {})}
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._get_session().post(
                url, data=body, headers=request_headers, **kwargs
            ) as response:
                raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except TimeoutError as exc:
            raise CrmError(REASON_TIMEOUT, f"no answer from {_site(url)} in time") from exc
        except aiohttp.ClientError as exc:
            raise CrmError(REASON_CONNECTION, f"{_site(url)}: {exc or type(exc).__name__}") from exc
        if status >= 500:
            # The body is kept when it is JSON: Bitrix24 says "slow down" with a 503 whose
            # body is {"error": "QUERY_LIMIT_EXCEEDED"}, which is no outage.
            raise CrmError(
                REASON_HTTP_5XX,
                f"{_site(url)} answered HTTP {status}",
                status=status,
                answer=_json_or_none(raw),
            )
        if len(raw) > MAX_RESPONSE_BYTES:
            raise CrmError(
                REASON_BAD_RESPONSE, f"{_site(url)}: answer larger than 1 MiB", status=status
            )
        try:
            return status, json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            reason = REASON_HTTP_4XX if status >= 400 else REASON_BAD_RESPONSE
            raise CrmError(
                reason, f"{_site(url)} answered HTTP {status}, not JSON", status=status
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_or_none(raw: bytes) -> Any:
    if len(raw) > MAX_RESPONSE_BYTES:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _site(url: str) -> str:
    # Bitrix24 webhook URLs carry their secret in the path; logs get the host only.
    try:
        parsed = URL(url)
    except ValueError:
        return "the CRM"
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.host else "the CRM"


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
