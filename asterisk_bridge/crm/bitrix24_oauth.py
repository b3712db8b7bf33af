"""The Bitrix24 local application's OAuth tokens (crm.auth: app).

The portal hands the tokens over when the application is installed (ONAPPINSTALL, at
/bitrix24/events); numcfg keeps them in the store, shared by the nodes, and refreshes the
access token (valid one hour) at oauth.bitrix.info before it expires or when the portal says
it has (expired_token). A refresh token is good for one refresh only: the store always
holds the newest, and a node that finds a newer one there than its own uses it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from yarl import URL

from asterisk_bridge.store.rows import CrmTokens

from .base import REASON_BAD_RESPONSE, REASON_REFUSED, CrmError
from .http import JsonClient

if TYPE_CHECKING:
    from asterisk_bridge.store import Store

log = logging.getLogger("numcfg.crm.bitrix24")

# Refreshed this long before the portal would refuse it: a request under way never meets
# a token that expired on its way.
REFRESH_MARGIN = timedelta(seconds=120)
NOT_INSTALLED_FIX = (
    "the Bitrix24 local application is not installed yet: in the portal, Developer "
    "resources, Other, Local application, set its handler and install paths to crm.handler_url "
    "(numcfg's /bitrix24/events) and install it"
)


class AppAuth:
    def __init__(
        self,
        *,
        portal_url: str,
        client_id: str,
        client_secret: str,
        oauth_url: str,
        store: Store,
        timeout: float,
    ) -> None:
        self.portal = URL(portal_url).host or portal_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._oauth_url = oauth_url
        self._store = store
        self._http = JsonClient(timeout=timeout)
        self._tokens: CrmTokens | None = None
        self._lock = asyncio.Lock()

    async def credentials(self) -> tuple[str, str]:
        """(REST endpoint, access token), refreshed first when it is about to expire."""
        tokens = self._tokens or await self._load()
        if tokens is None:
            raise CrmError(
                REASON_REFUSED, "no OAuth tokens", problem="not_installed", fix=NOT_INSTALLED_FIX
            )
        if tokens.expires_at - REFRESH_MARGIN <= datetime.now(UTC):
            tokens = await self.refresh(tokens.access_token)
        return tokens.endpoint, tokens.access_token

    @property
    def user_id(self) -> str | None:
        return None if self._tokens is None else self._tokens.user_id

    async def refresh(self, stale_access_token: str | None = None) -> CrmTokens:
        """A new access token. `stale_access_token`: the one the portal refused; when the
        store already has another (another node refreshed), that one is used."""
        async with self._lock:
            stored = await self._load()
            if stored is None:
                raise CrmError(
                    REASON_REFUSED,
                    "no OAuth tokens",
                    problem="not_installed",
                    fix=NOT_INSTALLED_FIX,
                )
            fresh_enough = stored.expires_at - REFRESH_MARGIN > datetime.now(UTC)
            if stored.access_token != stale_access_token and fresh_enough:
                return stored
            answer = await self._grant(stored.refresh_token)
            tokens = _tokens(
                self.portal,
                answer,
                application_token=stored.application_token,
                user_id=stored.user_id,
            )
            await asyncio.to_thread(self._store.crm.save_tokens, tokens)
            self._tokens = tokens
            log.info("Bitrix24 access token refreshed (valid until %s)", tokens.expires_at)
            return tokens

    async def install(self, auth: Mapping[str, Any]) -> None:
        """ONAPPINSTALL: keep the tokens it carries once oauth.bitrix.info confirms them
        (a refresh with numcfg's client secret succeeds only for this application's
        tokens), so a forged install cannot plant tokens."""
        domain = str(auth.get("domain") or "")
        if domain and domain != self.portal:
            raise CrmError(REASON_REFUSED, f"install from {domain!r}, not {self.portal!r}")
        refresh_token = str(auth.get("refresh_token") or "")
        if not refresh_token:
            raise CrmError(REASON_BAD_RESPONSE, "install without a refresh token")
        answer = await self._grant(refresh_token)
        tokens = _tokens(
            self.portal,
            answer,
            application_token=str(auth.get("application_token") or "") or None,
            user_id=str(auth.get("user_id") or "") or None,
        )
        async with self._lock:
            await asyncio.to_thread(self._store.crm.save_tokens, tokens)
            self._tokens = tokens
        log.info("Bitrix24 local application installed on %s", self.portal)

    async def is_portal_event(self, auth: Mapping[str, Any]) -> bool:
        """Whether an event comes from the portal: its application_token is the one the
        install gave (compared in constant time)."""
        tokens = self._tokens or await self._load()
        given = str(auth.get("application_token") or "")
        if tokens is None or not tokens.application_token or not given:
            return False
        return hmac.compare_digest(given.encode(), tokens.application_token.encode())

    async def _grant(self, refresh_token: str) -> Mapping[str, Any]:
        status, answer = await self._http.get(
            self._oauth_url,
            {
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": refresh_token,
            },
        )
        if status >= 400 or not isinstance(answer, dict) or "access_token" not in answer:
            code = answer.get("error") if isinstance(answer, dict) else f"HTTP {status}"
            raise CrmError(
                REASON_REFUSED,
                f"oauth.bitrix.info refused the refresh: {code}",
                status=status,
                answer=answer,
                problem="oauth_refused",
                fix=(
                    "oauth.bitrix.info refuses the local application's tokens "
                    f"({code}): check crm.client_id and crm.client_secret, or reinstall "
                    "the application"
                ),
            )
        return answer

    async def _load(self) -> CrmTokens | None:
        self._tokens = await asyncio.to_thread(self._store.crm.tokens, self.portal)
        return self._tokens

    async def close(self) -> None:
        await self._http.close()


def _tokens(
    portal: str, answer: Mapping[str, Any], *, application_token: str | None, user_id: str | None
) -> CrmTokens:
    endpoint = str(answer.get("client_endpoint") or f"https://{portal}/rest/")
    return CrmTokens(
        portal=portal,
        access_token=str(answer["access_token"]),
        refresh_token=str(answer.get("refresh_token") or ""),
        expires_at=datetime.now(UTC) + timedelta(seconds=int(answer.get("expires_in") or 3600)),
        endpoint=endpoint if endpoint.endswith("/") else endpoint + "/",
        application_token=application_token,
        user_id=user_id or (str(answer["user_id"]) if answer.get("user_id") else None),
    )
