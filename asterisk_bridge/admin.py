"""Operator actions shared by the CLI and the HTTP API: workday, number lifecycle, callbacks.

Each function is synchronous and takes the store, the config and `now`: the CLI calls it
directly (no `numcfg run` needed) and the API through `asyncio.to_thread`. Rules come from
lifecycle.py; this module adds only lookups, the store writes and the admin email. Refusals
are LifecycleError subclasses carrying their HTTP status, so both front ends report alike.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Final

from .config import Config
from .config.formats import e164
from .config.schema import Callback, Number
from .lifecycle import (
    NOT_STARTED,
    LifecycleError,
    NumberStateError,
    apply_workday_action,
    check_disconnect,
    check_reconnect,
    check_undo,
    disconnected_at,
    effective_status,
    reconnect_allowed_at,
)
from .mail import MailError, send_mail
from .policy.numbers import allowed_external
from .policy.types import NumberStatus, Workday
from .store import CallbackJob, Store
from .store.rows import iso

# The API request waits for the relay; a dead one must not hold the disconnect for long.
# 96 bits: unguessable within 24 h, short enough to paste from an email into a shell.
UNDO_TOKEN_BYTES: Final = 12
# A callback requested by hand on a number without `callback:` uses the schema defaults.
DEFAULT_CALLBACK: Final = Callback()


class NotFound(LifecycleError):
    status = 404
    code = "not_found"


class InvalidRequest(LifecycleError):
    status = 422
    code = "invalid"


class EmailError(Exception):
    """The admin email could not be sent; the change it reports is made all the same."""


# -- employees and workday ------------------------------------------------------------------


def employee_views(config: Config, store: Store) -> list[dict[str, Any]]:
    states = store.people.workdays()
    reasons = store.people.workday_reasons()
    return [
        _employee_view(config, eid, states.get(eid), reasons.get(eid)) for eid in config.employees
    ]


def set_workday(store: Store, config: Config, employee_id: str, action: str) -> dict[str, Any]:
    """Apply a workday action ("start", "pause", "resume", "end"); the employee's new view."""
    if employee_id not in config.employees:
        raise NotFound(f"unknown employee {employee_id!r}")
    # Read then write, not one statement: two people changing one employee's state at the
    # same instant is not a case worth a lock, and either order leaves a valid state.
    new_state = apply_workday_action(store.people.workday(employee_id), action)
    store.people.set_workday(employee_id, Workday(new_state))
    return _employee_view(config, employee_id, new_state)


def _employee_view(
    config: Config, employee_id: str, state: str | None, reason: str | None = None
) -> dict[str, Any]:
    employee = config.employees[employee_id]
    return {
        "id": employee_id,
        "name": employee.name,
        "extension": employee.extension,
        "workday": state or NOT_STARTED,
        # "auto": paused by numcfg after unanswered queue calls (auto_pause_after).
        "reason": reason,
    }


# -- numbers ----------------------------------------------------------------------------------


def number_views(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    return [number_view(config, store, nid, now) for nid in config.numbers]


def number_view(config: Config, store: Store, number_id: str, now: datetime) -> dict[str, Any]:
    """Settings as configured (the Number model holds no secrets) and lifecycle status."""
    number = _number(config, number_id)
    state = store.numbers.state(number_id)
    status = effective_status(state, now)
    lifecycle: dict[str, Any] = {"changed_at": iso(state.changed_at)}
    if status == "pending_disconnect":
        lifecycle["undo_until"] = iso(disconnected_at(state))
    if status == "disconnected":
        lifecycle["disconnected_at"] = iso(disconnected_at(state))
        lifecycle["reconnect_allowed_at"] = iso(reconnect_allowed_at(state))
    return {
        "id": number_id,
        "number": number.number,
        "name": number.name,
        "status": status,
        "lifecycle": lifecycle,
        "settings": number.model_dump(mode="json"),
    }


def disconnect_number(
    store: Store, config: Config, number_id: str, now: datetime
) -> dict[str, Any]:
    """Mark the number pending disconnection and email the admin the undo token.

    The disconnection stands even when the email fails; the answer then carries the token
    itself (the only other way to undo) and the reason the email failed.
    """
    number = _number(config, number_id)
    check_disconnect(store.numbers.state(number_id), now)
    # Hex, not urlsafe base64: a token starting with "-" read as an option by
    # `numcfg number undo --token ...` (1 in 64 disconnections; a flaky CLI test found it).
    token = secrets.token_hex(UNDO_TOKEN_BYTES)
    store.numbers.set_state(
        number_id, NumberStatus.PENDING_DISCONNECT, undo_token=token, changed_at=now
    )
    view = number_view(config, store, number_id, now)
    try:
        send_disconnect_email(config, number_id, number.number, token, view["lifecycle"])
    except EmailError as exc:
        return view | {"email": {"sent": False, "error": str(exc)}, "undo_token": token}
    return view | {"email": {"sent": True, "to": config.account.admin_email}}


def undo_disconnect(
    store: Store, config: Config, number_id: str, token: str, now: datetime
) -> dict[str, Any]:
    _number(config, number_id)
    check_undo(store.numbers.state(number_id), token, now)
    store.numbers.set_state(number_id, NumberStatus.ACTIVE, undo_token=None, changed_at=now)
    return number_view(config, store, number_id, now)


def reconnect_number(store: Store, config: Config, number_id: str, now: datetime) -> dict[str, Any]:
    _number(config, number_id)
    check_reconnect(store.numbers.state(number_id), now)
    store.numbers.set_state(number_id, NumberStatus.ACTIVE, undo_token=None, changed_at=now)
    return number_view(config, store, number_id, now)


def _number(config: Config, number_id: str) -> Number:
    number = config.numbers.get(number_id)
    if number is None:
        raise NotFound(f"unknown number {number_id!r}")
    return number


# -- admin email --------------------------------------------------------------------------------


def send_disconnect_email(
    config: Config, number_id: str, e164_number: str, token: str, lifecycle: dict[str, Any]
) -> None:
    """Email account.admin_email through account.smtp (smtp://host[:port], smtps://...)."""
    account = config.account
    if not account.admin_email or not account.smtp:
        raise EmailError("account.admin_email and account.smtp must both be set")
    message = EmailMessage()
    message["Subject"] = f"numcfg: number {number_id} ({e164_number}) will be disconnected"
    message["From"] = account.admin_email
    message["To"] = account.admin_email
    message.set_content(
        f"The number {number_id} ({e164_number}) is pending disconnection.\n"
        f"It keeps taking calls until {lifecycle.get('undo_until')}, then stops.\n\n"
        f"To cancel, before then:\n"
        f"  numcfg number undo {number_id} --token {token}\n"
        f'  or POST /api/numbers/{number_id}/undo {{"token": "{token}"}}\n'
    )
    try:
        send_mail(account.smtp, message)
    except MailError as exc:
        raise EmailError(f"email to {account.admin_email} failed: {exc}") from exc


# -- callbacks ------------------------------------------------------------------------------------


def request_callback(
    store: Store, config: Config, number_id: str, phone: object, now: datetime
) -> CallbackJob:
    """Queue a callback from `number_id` to `phone`, first attempt at once.

    A number without `callback:` still accepts a request by hand, with the default 3
    attempts 300 s apart: `callback: null` only means missed calls create no job.
    """
    number = config.numbers.get(number_id)
    if number is None:
        # 422, not 404: the URL exists, it is a value in the body that is wrong.
        raise InvalidRequest(f"number: unknown number {number_id!r}")
    if not isinstance(phone, str):
        raise InvalidRequest("phone: expected an E.164 string such as +33612345678")
    try:
        e164(phone)
    except ValueError as exc:
        raise InvalidRequest(f"phone: {exc}") from None
    if not allowed_external(phone, config.account.external_allowlist):
        raise InvalidRequest(f"phone: {phone} is not inside account.external_allowlist")
    if effective_status(store.numbers.state(number_id), now) == "disconnected":
        raise NumberStateError(f"the number {number_id!r} is disconnected")
    settings = number.callback or DEFAULT_CALLBACK
    return store.callbacks.add(
        number=number_id,
        phone=phone,
        attempts=settings.attempts,
        delay=settings.delay,
        due_at=now,
        reason="requested",
    )
