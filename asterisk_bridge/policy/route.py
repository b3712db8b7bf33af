"""SPEC section 4 routing as data: which step comes next, and how the call ended.

The call engine (calls/) owns channels, media and time; this module owns the order of
the steps. It is a state machine over small frozen step values: the interpreter gathers
the `Facts`, asks `first_step`, executes the step, reports a `Result`, asks `next_step`
with it, and so on until `Done`. The disposition is computed once, from the whole trail
of results (`disposition`), instead of being set and overwritten along the way, so the
precedence between "answered", "voicemail" and "abandoned" is one readable function.

The rules are those the imperative engine had before this module replaced its routing
(SPEC section 4 plus the choices below, which the README lists), including the parts
that are choices rather than obvious consequences of the SPEC:

* Once the IVR runs, nothing after it runs: the menu's chosen action (or its
  `on_failure`) decides everything. So every step made from an action (IVR option,
  `on_failure`, queue `fallback`, `after_hours`) has stage END: when it fails there is
  nothing to continue with, and the call is missed.
* After hours there is no answer first and no recording warning: the `after_hours`
  action runs as is, and the call is `after_hours` whatever the action led to.
* A ring that is not answered (no answer, busy, refused, failed) goes on as its
  `no_answer` says; `forward_to_mobile` without a mobile behaves as `continue`.

What the interpreter must report, beyond each step's own docstring:

* CALLER_GONE for any step during (or before) which the caller hung up; that ends the
  call. A failed answer before the first in-hours step is the first step's CALLER_GONE.
* The config it reads is the one the call started with, and the mappings passed as
  `employees` and `queues` come from that same config.

Config objects are read duck-typed through the Protocols below (the pydantic models of
config/schema.py satisfy them), so this module imports nothing from other packages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol, cast

from .types import Direction, Disposition

EMPLOYEE_RING_SECONDS = 20.0
"""An employee chosen by an action (IVR option, fallback, after_hours) rings this long
before voicemail, like extension dialing's default `ring_time`."""

NOT_IN_SERVICE = "not-in-service"
"""The numcfg prompt for an unknown or disconnected number (SPEC section 4 step 1)."""

RECORDING_WARNING = "recording-warning"
"""The numcfg prompt "this call is recorded" (SPEC section 4 step 3)."""


# --- what is read from the config -----------------------------------------------------


class ActionLike(Protocol):
    """Any configured action; `action` is its literal ("queue", "menu", ...)."""

    @property
    def action(self) -> str: ...


class _QueueActionLike(ActionLike, Protocol):
    @property
    def queue(self) -> str: ...


class _MenuActionLike(ActionLike, Protocol):
    @property
    def menu(self) -> str: ...


class _EmployeeActionLike(ActionLike, Protocol):
    @property
    def employee(self) -> str: ...


class _VoicemailActionLike(ActionLike, Protocol):
    @property
    def employee(self) -> str | None: ...


class _ForwardActionLike(ActionLike, Protocol):
    @property
    def to(self) -> str: ...


class _HangupActionLike(ActionLike, Protocol):
    @property
    def message(self) -> str | None: ...


class ExtensionDialingLike(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def ring_time(self) -> float: ...
    @property
    def no_answer(self) -> str: ...


class CrmResponsibleLike(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def no_answer(self) -> str: ...


class RoutingLike(Protocol):
    @property
    def sip_to_header(self) -> bool: ...
    @property
    def greeting(self) -> str | None: ...
    @property
    def extension_dialing(self) -> ExtensionDialingLike: ...
    @property
    def ivr(self) -> str | None: ...
    @property
    def crm_responsible(self) -> CrmResponsibleLike: ...
    @property
    def queue(self) -> str | None: ...


class WorkingHoursLike(Protocol):
    @property
    def after_hours(self) -> ActionLike: ...


class RecordingLike(Protocol):
    @property
    def warning(self) -> bool: ...


class NumberLike(Protocol):
    """A configured number (`numbers.<id>`): only what routing reads."""

    @property
    def routing(self) -> RoutingLike: ...
    @property
    def working_hours(self) -> WorkingHoursLike: ...
    @property
    def recording(self) -> RecordingLike: ...


class QueueLike(Protocol):
    """A configured queue (`queues.<id>`): routing only needs its fallback."""

    @property
    def fallback(self) -> ActionLike: ...


class EmployeeLike(Protocol):
    """A configured employee: routing only needs to know whether she has a mobile."""

    @property
    def mobile(self) -> str | None: ...


# --- vocabulary ------------------------------------------------------------------------


class Stage(IntEnum):
    """The in-hours stages in SPEC order (steps 4 to 8); "continue" means the next
    enabled stage after the current one. END is where action-made steps live: after
    them nothing continues."""

    SIP_TO = 1
    GREETING = 2
    IVR = 3
    CRM = 4
    QUEUE = 5
    END = 6


class Outcome(StrEnum):
    """How the interpreter says a step ended."""

    TALKED = "talked"  # someone answered and the conversation is over
    VOICEMAIL = "voicemail"  # the caller was put through to a mailbox
    NO_ANSWER = "no_answer"  # rang out (a queue: max_wait passed)
    BUSY = "busy"  # the phone said busy
    REFUSED = "refused"  # not even tried: forward outside the allowlist, employee on a call
    CALLER_GONE = "caller_gone"  # the caller hung up
    FAILED = "failed"  # a technical failure (ARI error, CRM down)
    # A queue caller asked to be called back keeping their place (virtual hold); the
    # call is over (the engine hung up after confirming).
    CALLBACK_REQUESTED = "callback_requested"
    DONE = "done"  # a step that just finished: a prompt played, a lookup, a greeting


class NoAnswer(StrEnum):
    """What a ring that was not answered leads to (`extension_dialing.no_answer`)."""

    CONTINUE = "continue"  # the next enabled stage
    FORWARD_TO_MOBILE = "forward_to_mobile"  # the employee's mobile, if she has one
    VOICEMAIL = "voicemail"  # the employee's mailbox


# crm_responsible says "queue" for what extension dialing calls "continue": both go on
# to the next enabled stage (for the CRM, the queue is the only one left).
_CRM_NO_ANSWER: Mapping[str, NoAnswer] = {
    "queue": NoAnswer.CONTINUE,
    "forward_to_mobile": NoAnswer.FORWARD_TO_MOBILE,
    "voicemail": NoAnswer.VOICEMAIL,
}

# Outcomes after which the call is over, whatever the step was.
_FINAL = frozenset(
    {Outcome.TALKED, Outcome.VOICEMAIL, Outcome.CALLER_GONE, Outcome.CALLBACK_REQUESTED}
)


# --- steps -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """Play a numcfg prompt (`NOT_IN_SERVICE`, `RECORDING_WARNING`); answers first."""

    prompt: str


@dataclass(frozen=True, slots=True)
class SipTo:
    """Read the extension in the INVITE's To: user part (step 4).

    Result.employee: the employee with that extension, or None (no header, not digits,
    nobody's extension); the interpreter rings nobody itself.
    """


@dataclass(frozen=True, slots=True)
class Greeting:
    """Play the greeting (step 5); with `collect_extension`, collect an extension
    dialed during it or just after.

    Result.employee: the employee whose extension was dialed, or None (nothing dialed,
    or an unknown extension, for which the interpreter plays "invalid-extension").
    """

    media: str
    collect_extension: bool


@dataclass(frozen=True, slots=True)
class Menu:
    """Run the IVR menu `menu_id` (step 6): prompt, digits, retries, repeat and
    sub-menus chosen by the caller are the interpreter's loop.

    Result.action: the action to execute, the chosen option's or the menu's
    `on_failure` (a `repeat` is handled inside the loop and never comes out).
    """

    menu_id: str


@dataclass(frozen=True, slots=True)
class CrmLookup:
    """Ask the CRM for the caller's responsible employee (step 7).

    Result.employee: the responsible employee who may be rung (configured, and present
    when `skip_absent_employees`), or None, also when the CRM is slow or down.
    """


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring one employee for `ring_time` seconds; TALKED once answered and done.

    `stage` is where the flow goes on from when she does not answer and `no_answer` is
    `continue` (or `forward_to_mobile` without a mobile). `no_answer` is validated and
    stored as a `NoAnswer`, which compares equal to its config string.
    """

    employee: str
    ring_time: float
    stage: Stage
    no_answer: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "no_answer", NoAnswer(self.no_answer))


@dataclass(frozen=True, slots=True)
class QueueStep:
    """Wait in queue `queue_id` (step 8); NO_ANSWER means `max_wait` passed.

    `fallback` is the queue's fallback action, carried in the step so that the next
    step needs no second lookup (and the step shows where a timeout leads).
    """

    queue_id: str
    fallback: ActionLike


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Send the caller to `owner`'s mailbox (None: the number's own)."""

    owner: str | None


@dataclass(frozen=True, slots=True)
class Forward:
    """Ring an external number through the trunk; REFUSED outside the allowlist.

    `employee` is set for forward_to_mobile (the call is hers once it is answered);
    `stage` is where the flow goes on when nobody answers.
    """

    to: str
    employee: str | None
    stage: Stage


@dataclass(frozen=True, slots=True)
class Hangup:
    """Play `message` if any, then hang up: the call is missed.

    Its outcome is DONE; even a caller who hangs up during the message makes a missed
    call, not an abandoned one, because the engine marks it missed as it hangs up.
    """

    message: str | None


@dataclass(frozen=True, slots=True)
class Done:
    """Nothing more to do: the interpreter ends the call and saves its details."""


Step = (
    Say
    | SipTo
    | Greeting
    | Menu
    | CrmLookup
    | Ring
    | QueueStep
    | Voicemail
    | Forward
    | Hangup
    | Done
)

DONE = Done()


@dataclass(frozen=True, slots=True)
class Result:
    """What the interpreter reports for an executed step."""

    step: Step
    outcome: Outcome
    employee: str | None = None  # SipTo, Greeting, CrmLookup: who may be rung
    action: ActionLike | None = None  # Menu: the action to execute


@dataclass(frozen=True, slots=True)
class Facts:
    """What the interpreter finds out before the first step.

    `known`: the number id is configured; `in_service`: it is not disconnected (a store
    that cannot say counts as in service); `open`: its working hours are open now (no
    schedule is always open); `will_record`: the call will be recorded (record_all and
    quota left). Only `known` and `in_service` matter when one of them is False.
    """

    known: bool
    in_service: bool
    open: bool
    will_record: bool


# --- the rules -------------------------------------------------------------------------


def first_step(number: NumberLike | None, facts: Facts, *, queues: Mapping[str, QueueLike]) -> Step:
    """The first step of an incoming call (SPEC section 4 steps 1 to 8).

    `number` may be None only when `facts.known` is False. `queues` maps queue ids to
    queues (`config.queues`), for the fallback a QueueStep carries.
    """
    if not (facts.known and facts.in_service):
        return Say(NOT_IN_SERVICE)
    number = _known(number)
    if not facts.open:
        return step_for_action(number.working_hours.after_hours, queues=queues)
    if facts.will_record and number.recording.warning:
        return Say(RECORDING_WARNING)
    return _from_stage(number, Stage.SIP_TO, queues)


def next_step(
    number: NumberLike | None,
    result: Result,
    *,
    employees: Mapping[str, EmployeeLike],
    queues: Mapping[str, QueueLike],
) -> Step:
    """The step after `result`; `Done` when the call is over.

    `employees` maps employee ids to employees (`config.employees`), for mobiles.
    Raises ValueError for a Menu result without an action (an interpreter bug).
    """
    step = result.step
    if result.outcome in _FINAL:
        return DONE
    match step:
        case Say(prompt=prompt) if prompt == RECORDING_WARNING:
            return _from_stage(_known(number), Stage.SIP_TO, queues)
        case Say() | Voicemail() | Hangup() | Done():
            return DONE
        case SipTo():
            return _ring_or_continue(
                _known(number), result.employee, Stage.SIP_TO, NoAnswer.CONTINUE, queues
            )
        case Greeting():
            dialing = _known(number).routing.extension_dialing
            return _ring_or_continue(
                _known(number), result.employee, Stage.GREETING, dialing.no_answer, queues
            )
        case Menu(menu_id=menu_id):
            if result.action is None:
                raise ValueError(f"menu {menu_id!r} returned no action")
            return step_for_action(result.action, queues=queues)
        case CrmLookup():
            no_answer = _CRM_NO_ANSWER[_known(number).routing.crm_responsible.no_answer]
            return _ring_or_continue(_known(number), result.employee, Stage.CRM, no_answer, queues)
        case Ring():
            return _not_reached(_known(number), step, employees, queues)
        case Forward(stage=stage):
            return _continue_after(_known(number), stage, queues)
        case QueueStep(fallback=fallback):
            # Only max_wait ends a queue without an answer or a hangup; anything else
            # reported here is treated the same way, so the caller is never stranded.
            return step_for_action(fallback, queues=queues)
    raise TypeError(f"not a routing step: {step!r}")


def step_for_action(action: ActionLike, *, queues: Mapping[str, QueueLike]) -> Step:
    """The step that executes a configured action; every one has stage END.

    `repeat` outside a menu does nothing (Done: the call is missed). An unknown action
    literal raises ValueError: the schema cannot produce one, so it is a bug.
    """
    match action.action:
        case "queue":
            return _queue_step(cast(_QueueActionLike, action).queue, queues)
        case "menu":
            return Menu(cast(_MenuActionLike, action).menu)
        case "employee":
            employee = cast(_EmployeeActionLike, action).employee
            return Ring(employee, EMPLOYEE_RING_SECONDS, Stage.END, NoAnswer.VOICEMAIL)
        case "voicemail":
            return Voicemail(cast(_VoicemailActionLike, action).employee)
        case "forward":
            return Forward(cast(_ForwardActionLike, action).to, None, Stage.END)
        case "hangup":
            return Hangup(cast(_HangupActionLike, action).message)
        case "repeat":
            return DONE
    raise ValueError(f"unknown action {action.action!r}")


def disposition(facts: Facts, trail: Sequence[Result]) -> Disposition:
    """How the call ended, from the facts and every executed step's result, in order.

    Precedence, as the engine sets it: failed (not known or not in service), then
    after_hours (whatever the action led to), then answered (a Ring or QueueStep
    talked), forwarded (a Forward talked), voicemail (a Voicemail step was reached: the
    call counts as voicemail before a message is left), callback_requested (a queue
    caller took the virtual-hold offer), abandoned (the caller hung up, except during a
    Hangup action), and missed for everything else.
    """
    if not (facts.known and facts.in_service):
        return Disposition.FAILED
    if not facts.open:
        return Disposition.AFTER_HOURS
    talked = [r.step for r in trail if r.outcome is Outcome.TALKED]
    if any(isinstance(step, Ring | QueueStep) for step in talked):
        return Disposition.ANSWERED
    if any(isinstance(step, Forward) for step in talked):
        return Disposition.FORWARDED
    if any(isinstance(r.step, Voicemail) for r in trail):
        return Disposition.VOICEMAIL
    if any(r.outcome is Outcome.CALLBACK_REQUESTED for r in trail):
        return Disposition.CALLBACK_REQUESTED
    if any(r.outcome is Outcome.CALLER_GONE and not isinstance(r.step, Hangup) for r in trail):
        return Disposition.ABANDONED
    return Disposition.MISSED


def wants_callback(direction: Direction | str, disposition: Disposition | str) -> bool:
    """Whether a finished call asks for a callback job (SPEC section 4 step 11).

    Only incoming calls that nobody took: missed or abandoned. A call that ended with
    callback_requested already has its callback (virtual hold): it never asks for a
    second one. Whether the number has `callback` set and the caller's number is
    allowed are checked by the caller.
    """
    return direction == Direction.INCOMING and disposition in (
        Disposition.MISSED,
        Disposition.ABANDONED,
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted interpreter's answer for one step (see `run_script`)."""

    outcome: Outcome = Outcome.DONE
    employee: str | None = None
    action: ActionLike | None = None


def run_script(
    number: NumberLike | None,
    facts: Facts,
    replies: Iterable[Reply | Outcome],
    *,
    employees: Mapping[str, EmployeeLike],
    queues: Mapping[str, QueueLike],
) -> tuple[tuple[Result, ...], Disposition]:
    """Walk the rules with scripted results: the trail (without the final Done) and
    the disposition. For tests and for explaining a configuration ("what happens if").

    Each reply answers the next step; a bare Outcome is Reply(outcome). Raises
    ValueError when the replies run out before Done or some are left over after it,
    so a script that no longer matches the rules fails loudly.
    """
    pending = list(replies)
    trail: list[Result] = []
    step = first_step(number, facts, queues=queues)
    while not isinstance(step, Done):
        if not pending:
            raise ValueError(f"no reply left for {step!r} after {len(trail)} steps")
        reply = pending.pop(0)
        if isinstance(reply, Outcome):
            reply = Reply(reply)
        result = Result(step, reply.outcome, reply.employee, reply.action)
        trail.append(result)
        step = next_step(number, result, employees=employees, queues=queues)
    if pending:
        raise ValueError(f"{len(pending)} replies left over after {len(trail)} steps")
    return tuple(trail), disposition(facts, trail)


# --- helpers ---------------------------------------------------------------------------


def _known(number: NumberLike | None) -> NumberLike:
    if number is None:
        raise ValueError("a known number is required past the not-in-service check")
    return number


def _stage_step(number: NumberLike, stage: Stage, queues: Mapping[str, QueueLike]) -> Step | None:
    """The step for `stage` when the number enables it, else None."""
    routing = number.routing
    match stage:
        case Stage.SIP_TO if routing.sip_to_header:
            return SipTo()
        case Stage.GREETING if routing.greeting:
            return Greeting(routing.greeting, routing.extension_dialing.enabled)
        case Stage.IVR if routing.ivr:
            return Menu(routing.ivr)
        case Stage.CRM if routing.crm_responsible.enabled:
            return CrmLookup()
        case Stage.QUEUE if routing.queue:
            return _queue_step(routing.queue, queues)
        case Stage.END:
            return DONE
    return None


def _from_stage(number: NumberLike, start: Stage, queues: Mapping[str, QueueLike]) -> Step:
    """The first enabled stage at or after `start`; Done when none is left."""
    for stage in Stage:
        if stage >= start:
            step = _stage_step(number, stage, queues)
            if step is not None:
                return step
    return DONE


def _continue_after(number: NumberLike, stage: Stage, queues: Mapping[str, QueueLike]) -> Step:
    """ "continue": the first enabled stage after `stage` (after END: Done)."""
    if stage is Stage.END:
        return DONE
    return _from_stage(number, Stage(stage + 1), queues)


def _ring_or_continue(
    number: NumberLike,
    employee: str | None,
    stage: Stage,
    no_answer: str,
    queues: Mapping[str, QueueLike],
) -> Step:
    """A stage that found someone rings her (for extension dialing's `ring_time`, which
    SIP To: and the CRM responsible use too); one that found nobody continues."""
    if employee is None:
        return _continue_after(number, stage, queues)
    ring_time = number.routing.extension_dialing.ring_time
    return Ring(employee, ring_time, stage, no_answer)


def _not_reached(
    number: NumberLike,
    ring: Ring,
    employees: Mapping[str, EmployeeLike],
    queues: Mapping[str, QueueLike],
) -> Step:
    """After a ring nobody answered (no answer, busy, refused, failed): `no_answer`."""
    match ring.no_answer:
        case NoAnswer.VOICEMAIL:
            return Voicemail(ring.employee)
        case NoAnswer.FORWARD_TO_MOBILE:
            employee = employees.get(ring.employee)
            mobile = employee.mobile if employee is not None else None
            if mobile:
                return Forward(mobile, ring.employee, ring.stage)
    return _continue_after(number, ring.stage, queues)


def _queue_step(queue_id: str, queues: Mapping[str, QueueLike]) -> QueueStep:
    return QueueStep(queue_id, queues[queue_id].fallback)


def transferred_to_queue(queue_id: str, queues: Mapping[str, QueueLike]) -> QueueStep:
    """A blind transfer to a queue (SPEC section 8): the caller joins it as the route's
    next step, and the queue's fallback applies as for any other caller of that queue."""
    return _queue_step(queue_id, queues)
