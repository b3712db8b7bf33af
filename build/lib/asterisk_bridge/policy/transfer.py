"""Transfers (SPEC section 8): what a transfer request names, the keypad codes that ask
for one, and how a transfer ended. Pure: the call engine feeds digits and texts in and
executes what comes out.

A target arrives as text from three places that trust nothing: a SIP REFER's user part,
digits an employee pressed, and an API body. Every one is resolved here against the
config, so only an employee id, a queue id or an allowlisted E.164 number ever reaches
the engine (and so a dial string).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .numbers import allowed_external, is_e164, normalize_destination

QUEUE_PREFIX = "queue:"
# Longer than any extension, employee id or E.164 number a person would name.
MAX_TARGET_LENGTH = 64
# "`##` + target + `#` (or 3 s pause)": the pause that ends a target typed on a keypad.
KEYPAD_PAUSE_SECONDS = 3.0
_TARGET_TEXT = re.compile(r"[A-Za-z0-9_.:+*#-]+")


class TransferMode(StrEnum):
    BLIND = "blind"
    """The transferer hands the caller over without talking to the target first."""

    ATTENDED = "attended"
    """The transferer talks to the target first, then completes or cancels."""


class TransferResult(StrEnum):
    """How one transfer ended (`transfers[].result`)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    """Not attempted: absent target, outside the allowlist, or nothing to transfer."""


class TransferVia(StrEnum):
    """Who asked (`transfers[].via`, beyond the SPEC's fields)."""

    PHONE = "phone"  # a SIP REFER from the employee's phone
    KEYPAD = "keypad"  # the employee's transfer codes
    API = "api"  # POST /api/calls/{id}/transfer


@dataclass(frozen=True, slots=True)
class EmployeeTarget:
    employee_id: str

    @property
    def label(self) -> str:
        return self.employee_id


@dataclass(frozen=True, slots=True)
class QueueTarget:
    queue_id: str

    @property
    def label(self) -> str:
        return f"{QUEUE_PREFIX}{self.queue_id}"


@dataclass(frozen=True, slots=True)
class ExternalTarget:
    e164: str

    @property
    def label(self) -> str:
        return self.e164


Target = EmployeeTarget | QueueTarget | ExternalTarget


class TargetProblem(StrEnum):
    UNKNOWN = "unknown_target"
    NOT_ALLOWED = "target_not_allowed"


class TargetError(ValueError):
    def __init__(self, problem: TargetProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Directory:
    """What a target may name: the config's employees (id -> extension), queues and the
    external allowlist, and the region that national numbers belong to."""

    extensions: Mapping[str, str]
    queues: Sequence[str]
    allowlist: Sequence[str]
    region: str | None = None


def resolve_target(text: str, directory: Directory) -> Target:
    """The target `text` names: `queue:<id>`, an employee id, an extension, or a phone
    number (E.164, or national/00-international digits in `directory.region`).
    Raises TargetError (unknown, or an external number outside the allowlist)."""
    text = (text or "").strip()
    if not text or len(text) > MAX_TARGET_LENGTH or not _TARGET_TEXT.fullmatch(text):
        raise TargetError(TargetProblem.UNKNOWN, f"not a transfer target: {text[:80]!r}")
    if text.startswith(QUEUE_PREFIX):
        queue_id = text[len(QUEUE_PREFIX) :]
        if queue_id not in directory.queues:
            raise TargetError(TargetProblem.UNKNOWN, f"no queue {queue_id!r}")
        return QueueTarget(queue_id)
    if text in directory.extensions:
        return EmployeeTarget(text)
    for employee_id, extension in sorted(directory.extensions.items()):
        if extension == text:
            return EmployeeTarget(employee_id)
    e164 = text if is_e164(text) else None
    if e164 is None and directory.region and text.isdigit():
        e164 = normalize_destination(text, directory.region)
    if e164 is None:
        raise TargetError(TargetProblem.UNKNOWN, f"no employee, extension or number {text!r}")
    if not allowed_external(e164, directory.allowlist):
        raise TargetError(TargetProblem.NOT_ALLOWED, f"{e164} is outside external_allowlist")
    return ExternalTarget(e164)


# -- keypad codes ---------------------------------------------------------------------


class KeypadAction(StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"
    COMPLETE = "complete"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class KeypadCommand:
    action: KeypadAction
    target: str = ""


@dataclass(frozen=True, slots=True)
class TransferCodes:
    blind: str = "##"
    attended: str = "*2"
    cancel: str = "*0"


class KeypadReader:
    """Reads an employee's digits during a conversation.

    In conversation: `blind` or `attended` code, then the target, then `#` or a pause
    of KEYPAD_PAUSE_SECONDS. In a consultation (`consulting=True`): the attended code
    again completes, `cancel` cancels. Digits that start no code are ignored (they are
    the employee's to send, e.g. to a client's own menu).
    """

    def __init__(self, codes: TransferCodes) -> None:
        self.codes = codes
        self._pending = ""  # digits that may still become a code
        self._mode: KeypadAction | None = None  # a code was dialed: collecting a target
        self._target = ""
        self._last_digit_at = 0.0

    def reset(self) -> None:
        self._pending = ""
        self._mode = None
        self._target = ""

    @property
    def deadline(self) -> float | None:
        """When a target being typed ends by pause (monotonic seconds), else None."""
        if self._mode is not None and self._target:
            return self._last_digit_at + KEYPAD_PAUSE_SECONDS
        return None

    def feed(self, digit: str, at: float, *, consulting: bool = False) -> KeypadCommand | None:
        self._last_digit_at = at
        if self._mode is not None:
            if digit == "#" and self._target:
                return self._finish()
            if digit == "#":  # "##" then "#" at once: nothing typed yet, keep waiting
                return None
            self._target += digit
            if len(self._target) > MAX_TARGET_LENGTH:
                self.reset()
            return None
        self._pending += digit
        codes = self._codes(consulting)
        for code, action in codes.items():
            if self._pending.endswith(code):
                self._pending = ""
                if action in (KeypadAction.BLIND, KeypadAction.ATTENDED):
                    self._mode = action
                    self._target = ""
                    return None
                return KeypadCommand(action)
        # Keep only the longest tail that can still grow into a code.
        while self._pending and not any(c.startswith(self._pending) for c in codes):
            self._pending = self._pending[1:]
        return None

    def expire(self, now: float) -> KeypadCommand | None:
        """The pause after a typed target ends it."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return self._finish()
        return None

    def _finish(self) -> KeypadCommand:
        assert self._mode is not None
        command = KeypadCommand(self._mode, self._target)
        self.reset()
        return command

    def _codes(self, consulting: bool) -> dict[str, KeypadAction]:
        if consulting:
            return {
                self.codes.attended: KeypadAction.COMPLETE,
                self.codes.cancel: KeypadAction.CANCEL,
            }
        return {self.codes.blind: KeypadAction.BLIND, self.codes.attended: KeypadAction.ATTENDED}


def codes_problem(codes: TransferCodes) -> str | None:
    """Why a set of transfer codes cannot work (for the config check), or None."""
    values = {"blind": codes.blind, "attended": codes.attended, "cancel": codes.cancel}
    for name, code in values.items():
        if not re.fullmatch(r"[0-9*#]{2,4}", code):
            return f"{name}: {code!r} must be 2 to 4 keypad symbols (0-9, *, #)"
    for a, b in ((codes.blind, codes.attended), (codes.attended, codes.cancel)):
        if a.startswith(b) or b.startswith(a):
            return f"codes {a!r} and {b!r}: one is a prefix of the other"
    return None


def result_of_ring(outcome: str) -> TransferResult:
    """A ring outcome (connect.RingOutcome's value) as a transfer result."""
    return {
        "answered": TransferResult.ANSWERED,
        "busy": TransferResult.BUSY,
    }.get(outcome, TransferResult.NO_ANSWER)
