"""SPEC section 4 routing as data (policy.route), by table, on real loaded configs.

Each walk feeds scripted step results to the rules and checks the whole trail of steps
and the disposition, so a rule that changes order, skips a stage or continues where the
engine stops fails here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from asterisk_bridge.config import load_config_text
from asterisk_bridge.config.schema import (
    EmployeeAction,
    ForwardAction,
    HangupAction,
    MenuAction,
    QueueAction,
    RepeatAction,
    VoicemailAction,
)
from asterisk_bridge.policy.route import (
    DONE,
    EMPLOYEE_RING_SECONDS,
    NOT_IN_SERVICE,
    RECORDING_WARNING,
    ActionLike,
    CrmLookup,
    Done,
    Facts,
    Forward,
    Greeting,
    Hangup,
    Menu,
    NoAnswer,
    NumberLike,
    Outcome,
    QueueLike,
    QueueStep,
    Reply,
    Result,
    Ring,
    Say,
    SipTo,
    Stage,
    Step,
    Voicemail,
    disposition,
    first_step,
    next_step,
    run_script,
    step_for_action,
    wants_callback,
)
from asterisk_bridge.policy.types import Direction, Disposition

WELCOME = "sound:numcfg/en/welcome"
GOODBYE = "sound:numcfg/en/goodbye"
ANNA_MOBILE = "+33612345678"
BORIS_MOBILE = "+33698765432"
OUTSIDE = "+33600000002"

SALES_FALLBACK = VoicemailAction(action="voicemail", employee="anna")
SUPPORT_FALLBACK = ForwardAction(action="forward", to=OUTSIDE)
OVERFLOW_FALLBACK = HangupAction(action="hangup")  # the default fallback
TO_SALES = QueueAction(action="queue", queue="sales")

SALES = QueueStep("sales", SALES_FALLBACK)
SUPPORT = QueueStep("support", SUPPORT_FALLBACK)
OVERFLOW = QueueStep("overflow", OVERFLOW_FALLBACK)

BASE: dict[str, Any] = {
    "version": 1,
    "asterisk": {"ari_url": "http://127.0.0.1:8088/ari", "username": "u", "password": "p"},
    "account": {"external_allowlist": ["+33*"]},
    "employees": {
        "anna": {
            "name": "Anna",
            "extension": "101",
            "endpoint": "PJSIP/101",
            "mobile": ANNA_MOBILE,
        },
        "boris": {
            "name": "Boris",
            "extension": "102",
            "endpoint": "PJSIP/102",
            "mobile": BORIS_MOBILE,
        },
        "chloe": {"name": "Chloe", "extension": "103", "endpoint": "PJSIP/103"},  # no mobile
    },
    "queues": {
        "sales": {"members": ["anna", "boris"], "fallback": SALES_FALLBACK.model_dump()},
        "support": {"members": ["boris"], "fallback": SUPPORT_FALLBACK.model_dump()},
        "overflow": {"members": ["chloe"]},
    },
    "ivr_menus": {
        "main": {
            "options": {
                "1": {"action": "queue", "queue": "sales"},
                "2": {"action": "menu", "menu": "other"},
                "3": {"action": "employee", "employee": "anna"},
                "5": {"action": "forward", "to": OUTSIDE},
                "8": {"action": "voicemail", "employee": "boris"},
                "9": {"action": "repeat"},
                "0": {"action": "hangup"},
            },
            "on_failure": {"action": "queue", "queue": "sales"},
        },
        "other": {"on_failure": {"action": "menu", "menu": "main"}},
    },
}


@dataclass(frozen=True)
class Line:
    """One configured number and what the rules need from its config."""

    number: NumberLike
    employees: Mapping[str, Any]
    queues: Mapping[str, QueueLike]

    def walk(
        self, facts: Facts, replies: Sequence[Reply | Outcome]
    ) -> tuple[list[Step], Disposition]:
        trail, verdict = run_script(
            self.number, facts, replies, employees=self.employees, queues=self.queues
        )
        return [result.step for result in trail], verdict

    def next(self, result: Result) -> Step:
        return next_step(self.number, result, employees=self.employees, queues=self.queues)


def line(
    routing: dict[str, Any] | None = None,
    *,
    after_hours: dict[str, Any] | None = None,
    warning: bool = True,
) -> Line:
    """Load BASE plus one number `paris` through the real loader and its checks."""
    routing = routing or {}
    number: dict[str, Any] = {
        "number": "+33185000000",
        # sip_to_header is only allowed on sip_pbx (a load-time check).
        "connection": "sip_pbx" if routing.get("sip_to_header") else "rented",
        "routing": routing,
        "recording": {"record_all": True, "warning": warning},
    }
    if after_hours is not None:
        number["working_hours"] = {"after_hours": after_hours}
    config = load_config_text(
        yaml.safe_dump(BASE | {"numbers": {"paris": number}}), env={}, base_dir="/srv/numcfg"
    )
    return Line(config.numbers["paris"], config.employees, config.queues)


OPEN = Facts(known=True, in_service=True, open=True, will_record=False)
RECORDED = Facts(known=True, in_service=True, open=True, will_record=True)
CLOSED = Facts(known=True, in_service=True, open=False, will_record=True)
UNKNOWN = Facts(known=False, in_service=False, open=True, will_record=True)
DISCONNECTED = Facts(known=True, in_service=False, open=True, will_record=True)

ok = Reply(Outcome.DONE)
TALKED, NO_ANSWER, GONE = Outcome.TALKED, Outcome.NO_ANSWER, Outcome.CALLER_GONE


def found(employee: str) -> Reply:
    return Reply(Outcome.DONE, employee=employee)


def chose(action: ActionLike) -> Reply:
    return Reply(Outcome.DONE, action=action)


GREETING = {"greeting": WELCOME}
EXT = {"greeting": WELCOME, "extension_dialing": {"enabled": True, "ring_time": 12}}


def ext(no_answer: str, **more: Any) -> dict[str, Any]:
    return {
        "greeting": WELCOME,
        "extension_dialing": {"enabled": True, "ring_time": 12, "no_answer": no_answer},
        "queue": "sales",
    } | more


def crm(no_answer: str, **more: Any) -> dict[str, Any]:
    return {"crm_responsible": {"enabled": True, "no_answer": no_answer}} | more


EVERYTHING_BUT_IVR = {
    "sip_to_header": True,
    "greeting": WELCOME,
    "crm_responsible": {"enabled": True},
    "queue": "sales",
}
EVERYTHING = EVERYTHING_BUT_IVR | {"ivr": "main"}


# --- the first step ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routing", "warning", "facts", "expected"),
    [
        pytest.param(
            EVERYTHING, True, DISCONNECTED, Say(NOT_IN_SERVICE), id="disconnected: not in service"
        ),
        pytest.param(
            EVERYTHING,
            True,
            CLOSED,
            Hangup(None),
            id="closed: the after_hours action, no warning even when recorded",
        ),
        pytest.param(
            EVERYTHING, True, RECORDED, Say(RECORDING_WARNING), id="recorded and warning: warning"
        ),
        pytest.param(
            EVERYTHING, False, RECORDED, SipTo(), id="recorded without warning: no warning"
        ),
        pytest.param(EVERYTHING, True, OPEN, SipTo(), id="warning on but not recorded: no warning"),
        pytest.param(
            EVERYTHING, True, OPEN, SipTo(), id="step 4 sip_to_header comes before everything"
        ),
        pytest.param(
            {"greeting": WELCOME, "ivr": "main", "queue": "sales"},
            True,
            OPEN,
            Greeting(WELCOME, collect_extension=False),
            id="step 5 greeting without extension dialing collects nothing",
        ),
        pytest.param(
            EXT | {"ivr": "main"},
            True,
            OPEN,
            Greeting(WELCOME, collect_extension=True),
            id="step 5 greeting with extension dialing collects an extension",
        ),
        pytest.param(
            {"ivr": "main", "crm_responsible": {"enabled": True}, "queue": "sales"},
            True,
            OPEN,
            Menu("main"),
            id="step 6 ivr when no greeting",
        ),
        pytest.param(
            {"crm_responsible": {"enabled": True}, "queue": "sales"},
            True,
            OPEN,
            CrmLookup(),
            id="step 7 crm_responsible when no ivr",
        ),
        pytest.param(
            {"queue": "sales"}, True, OPEN, SALES, id="step 8 queue carries the queue's fallback"
        ),
        pytest.param({}, True, OPEN, DONE, id="nothing enabled: done"),
        pytest.param(
            {"crm_responsible": {"enabled": False, "no_answer": "voicemail"}},
            True,
            OPEN,
            DONE,
            id="crm_responsible disabled is skipped whatever its no_answer",
        ),
    ],
)
def test_first_step(routing: dict[str, Any], warning: bool, facts: Facts, expected: Step) -> None:
    paris = line(routing, warning=warning)
    assert first_step(paris.number, facts, queues=paris.queues) == expected


def test_first_step_for_an_unknown_number_needs_no_number() -> None:
    assert first_step(None, UNKNOWN, queues={}) == Say(NOT_IN_SERVICE)


# --- whole calls -------------------------------------------------------------------------

WALKS = [
    # SPEC step 1
    pytest.param(
        {}, UNKNOWN, [ok], [Say(NOT_IN_SERVICE)], Disposition.FAILED, id="unknown number: failed"
    ),
    pytest.param(
        EVERYTHING,
        DISCONNECTED,
        [GONE],
        [Say(NOT_IN_SERVICE)],
        Disposition.FAILED,
        id="disconnected number is failed even when the caller hangs up",
    ),
    # SPEC step 3
    pytest.param(
        {"queue": "sales"},
        RECORDED,
        [ok, TALKED],
        [Say(RECORDING_WARNING), SALES],
        Disposition.ANSWERED,
        id="the warning plays before the first stage",
    ),
    pytest.param(
        {"queue": "sales"},
        RECORDED,
        [GONE],
        [Say(RECORDING_WARNING)],
        Disposition.ABANDONED,
        id="caller gone during the warning: abandoned, nothing else runs",
    ),
    # SPEC steps 4-8, in order
    pytest.param(
        EVERYTHING_BUT_IVR,
        RECORDED,
        [ok, ok, ok, ok, NO_ANSWER, ok],
        [
            Say(RECORDING_WARNING),
            SipTo(),
            Greeting(WELCOME, collect_extension=False),
            CrmLookup(),
            SALES,
            Voicemail("anna"),
        ],
        Disposition.VOICEMAIL,
        id="steps 3 to 8 in SPEC order, then the queue fallback",
    ),
    pytest.param(
        EVERYTHING,
        OPEN,
        [ok, ok, chose(TO_SALES), TALKED],
        [SipTo(), Greeting(WELCOME, collect_extension=False), Menu("main"), SALES],
        Disposition.ANSWERED,
        id="ivr comes after the greeting and its option runs",
    ),
    pytest.param(
        EVERYTHING,
        OPEN,
        [ok, ok, chose(ForwardAction(action="forward", to=OUTSIDE)), Outcome.REFUSED],
        [
            SipTo(),
            Greeting(WELCOME, collect_extension=False),
            Menu("main"),
            Forward(OUTSIDE, None, Stage.END),
        ],
        Disposition.MISSED,
        id="ivr is terminal: crm_responsible and the queue never run after it",
    ),
    pytest.param(
        {"ivr": "main", "queue": "overflow"},
        OPEN,
        [chose(HangupAction(action="hangup")), ok],
        [Menu("main"), Hangup(None)],
        Disposition.MISSED,
        id="ivr hangup option: missed, the number's queue is not tried",
    ),
    pytest.param(
        {"crm_responsible": {"enabled": True}, "queue": "sales"},
        OPEN,
        [ok, TALKED],
        [CrmLookup(), SALES],
        Disposition.ANSWERED,
        id="caller unknown to the crm goes on to the queue",
    ),
    pytest.param(
        {"greeting": WELCOME},
        OPEN,
        [ok],
        [Greeting(WELCOME, collect_extension=False)],
        Disposition.MISSED,
        id="a greeting with nothing after it: missed",
    ),
    # SPEC step 4: sip_to_header
    pytest.param(
        {"sip_to_header": True, "extension_dialing": {"ring_time": 7}, "queue": "sales"},
        OPEN,
        [found("boris"), TALKED],
        [SipTo(), Ring("boris", 7, Stage.SIP_TO, NoAnswer.CONTINUE)],
        Disposition.ANSWERED,
        id="sip_to rings the employee for extension_dialing.ring_time",
    ),
    pytest.param(
        {"sip_to_header": True, "greeting": WELCOME, "queue": "sales"},
        OPEN,
        [found("boris"), NO_ANSWER, ok, NO_ANSWER, ok],
        [
            SipTo(),
            Ring("boris", 20, Stage.SIP_TO, NoAnswer.CONTINUE),
            Greeting(WELCOME, collect_extension=False),
            SALES,
            Voicemail("anna"),
        ],
        Disposition.VOICEMAIL,
        id="sip_to ring unanswered always continues with the greeting",
    ),
    pytest.param(
        {"sip_to_header": True, "queue": "sales"},
        OPEN,
        [Outcome.FAILED, TALKED],
        [SipTo(), SALES],
        Disposition.ANSWERED,
        id="no usable To: header continues",
    ),
    # SPEC step 5: extension dialing and its no_answer values
    pytest.param(
        ext("continue", ivr="main"),
        OPEN,
        [found("anna"), NO_ANSWER, chose(TO_SALES), TALKED],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("anna", 12, Stage.GREETING, NoAnswer.CONTINUE),
            Menu("main"),
            SALES,
        ],
        Disposition.ANSWERED,
        id="extension no_answer continue goes on to the ivr",
    ),
    pytest.param(
        ext("continue"),
        OPEN,
        [found("anna"), Outcome.BUSY, TALKED],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("anna", 12, Stage.GREETING, "continue"),
            SALES,
        ],
        Disposition.ANSWERED,
        id="extension no_answer continue goes on to the queue",
    ),
    pytest.param(
        ext("continue") | {"queue": None},
        OPEN,
        [found("anna"), NO_ANSWER],
        [Greeting(WELCOME, collect_extension=True), Ring("anna", 12, Stage.GREETING, "continue")],
        Disposition.MISSED,
        id="extension no_answer continue with nothing after: missed",
    ),
    pytest.param(
        ext("voicemail"),
        OPEN,
        [found("anna"), NO_ANSWER, ok],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("anna", 12, Stage.GREETING, "voicemail"),
            Voicemail("anna"),
        ],
        Disposition.VOICEMAIL,
        id="extension no_answer voicemail: her mailbox, the queue is not tried",
    ),
    pytest.param(
        ext("forward_to_mobile"),
        OPEN,
        [found("anna"), NO_ANSWER, TALKED],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("anna", 12, Stage.GREETING, "forward_to_mobile"),
            Forward(ANNA_MOBILE, "anna", Stage.GREETING),
        ],
        Disposition.FORWARDED,
        id="extension no_answer forward_to_mobile answered: forwarded",
    ),
    pytest.param(
        ext("forward_to_mobile"),
        OPEN,
        [found("boris"), NO_ANSWER, NO_ANSWER, TALKED],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("boris", 12, Stage.GREETING, "forward_to_mobile"),
            Forward(BORIS_MOBILE, "boris", Stage.GREETING),
            SALES,
        ],
        Disposition.ANSWERED,
        id="extension mobile unanswered continues to the queue",
    ),
    pytest.param(
        ext("forward_to_mobile"),
        OPEN,
        [found("anna"), NO_ANSWER, Outcome.REFUSED, NO_ANSWER, ok],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("anna", 12, Stage.GREETING, "forward_to_mobile"),
            Forward(ANNA_MOBILE, "anna", Stage.GREETING),
            SALES,
            Voicemail("anna"),
        ],
        Disposition.VOICEMAIL,
        id="extension mobile refused by the allowlist continues to the queue",
    ),
    pytest.param(
        ext("forward_to_mobile"),
        OPEN,
        [found("chloe"), NO_ANSWER, TALKED],
        [
            Greeting(WELCOME, collect_extension=True),
            Ring("chloe", 12, Stage.GREETING, "forward_to_mobile"),
            SALES,
        ],
        Disposition.ANSWERED,
        id="extension forward_to_mobile without a mobile continues",
    ),
    pytest.param(
        ext("voicemail"),
        OPEN,
        [ok, TALKED],
        [Greeting(WELCOME, collect_extension=True), SALES],
        Disposition.ANSWERED,
        id="no extension dialed: the greeting continues",
    ),
    # SPEC step 7: crm_responsible and its no_answer values
    pytest.param(
        crm("queue", queue="sales", extension_dialing={"ring_time": 9}),
        OPEN,
        [found("anna"), TALKED],
        [CrmLookup(), Ring("anna", 9, Stage.CRM, NoAnswer.CONTINUE)],
        Disposition.ANSWERED,
        id="crm responsible rings for extension_dialing.ring_time",
    ),
    pytest.param(
        crm("queue", queue="sales"),
        OPEN,
        [found("anna"), NO_ANSWER, TALKED],
        [CrmLookup(), Ring("anna", 20, Stage.CRM, "continue"), SALES],
        Disposition.ANSWERED,
        id="crm no_answer queue goes on to the queue",
    ),
    pytest.param(
        crm("queue"),
        OPEN,
        [found("anna"), NO_ANSWER],
        [CrmLookup(), Ring("anna", 20, Stage.CRM, "continue")],
        Disposition.MISSED,
        id="crm no_answer queue without a queue: missed",
    ),
    pytest.param(
        crm("voicemail", queue="sales"),
        OPEN,
        [found("boris"), Outcome.REFUSED, ok],
        [CrmLookup(), Ring("boris", 20, Stage.CRM, "voicemail"), Voicemail("boris")],
        Disposition.VOICEMAIL,
        id="crm no_answer voicemail applies to a responsible on another call",
    ),
    pytest.param(
        crm("forward_to_mobile", queue="sales"),
        OPEN,
        [found("boris"), NO_ANSWER, TALKED],
        [
            CrmLookup(),
            Ring("boris", 20, Stage.CRM, "forward_to_mobile"),
            Forward(BORIS_MOBILE, "boris", Stage.CRM),
        ],
        Disposition.FORWARDED,
        id="crm no_answer forward_to_mobile answered: forwarded",
    ),
    pytest.param(
        crm("forward_to_mobile", queue="sales"),
        OPEN,
        [found("boris"), NO_ANSWER, Outcome.BUSY, TALKED],
        [
            CrmLookup(),
            Ring("boris", 20, Stage.CRM, "forward_to_mobile"),
            Forward(BORIS_MOBILE, "boris", Stage.CRM),
            SALES,
        ],
        Disposition.ANSWERED,
        id="crm mobile busy goes on to the queue",
    ),
    pytest.param(
        crm("forward_to_mobile", queue="sales"),
        OPEN,
        [found("chloe"), Outcome.FAILED, TALKED],
        [CrmLookup(), Ring("chloe", 20, Stage.CRM, "forward_to_mobile"), SALES],
        Disposition.ANSWERED,
        id="crm forward_to_mobile without a mobile goes on to the queue",
    ),
    # SPEC step 8: the queue and its fallback
    pytest.param(
        {"queue": "sales"},
        OPEN,
        [NO_ANSWER, GONE],
        [SALES, Voicemail("anna")],
        Disposition.VOICEMAIL,
        id="queue fallback voicemail is voicemail even if the caller leaves no message",
    ),
    pytest.param(
        {"queue": "support"},
        OPEN,
        [NO_ANSWER, TALKED],
        [SUPPORT, Forward(OUTSIDE, None, Stage.END)],
        Disposition.FORWARDED,
        id="queue fallback forward answered: forwarded",
    ),
    pytest.param(
        {"queue": "support", "crm_responsible": {"enabled": True}},
        OPEN,
        [ok, NO_ANSWER, NO_ANSWER],
        [CrmLookup(), SUPPORT, Forward(OUTSIDE, None, Stage.END)],
        Disposition.MISSED,
        id="queue fallback forward unanswered: missed, nothing continues",
    ),
    pytest.param(
        {"queue": "overflow"},
        OPEN,
        [NO_ANSWER, ok],
        [OVERFLOW, Hangup(None)],
        Disposition.MISSED,
        id="queue default fallback hangs up: missed",
    ),
    pytest.param(
        {"queue": "sales"},
        OPEN,
        [GONE],
        [SALES],
        Disposition.ABANDONED,
        id="caller gone while queued: abandoned, no fallback",
    ),
    # SPEC step 6: IVR options and on_failure
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(EmployeeAction(action="employee", employee="anna")), TALKED],
        [Menu("main"), Ring("anna", EMPLOYEE_RING_SECONDS, Stage.END, "voicemail")],
        Disposition.ANSWERED,
        id="ivr employee option rings her",
    ),
    pytest.param(
        {"ivr": "main", "queue": "sales"},
        OPEN,
        [chose(EmployeeAction(action="employee", employee="anna")), Outcome.REFUSED, ok],
        [Menu("main"), Ring("anna", 20, Stage.END, "voicemail"), Voicemail("anna")],
        Disposition.VOICEMAIL,
        id="ivr employee option unanswered: her voicemail, not the queue",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(VoicemailAction(action="voicemail", employee="boris")), ok],
        [Menu("main"), Voicemail("boris")],
        Disposition.VOICEMAIL,
        id="ivr voicemail option",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(VoicemailAction(action="voicemail")), ok],
        [Menu("main"), Voicemail(None)],
        Disposition.VOICEMAIL,
        id="ivr voicemail option without employee: the number's mailbox",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(ForwardAction(action="forward", to=OUTSIDE)), TALKED],
        [Menu("main"), Forward(OUTSIDE, None, Stage.END)],
        Disposition.FORWARDED,
        id="ivr forward option answered: forwarded",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(TO_SALES), NO_ANSWER, ok],
        [Menu("main"), SALES, Voicemail("anna")],
        Disposition.VOICEMAIL,
        id="ivr queue option then that queue's fallback",
    ),
    pytest.param(
        {"ivr": "other"},
        OPEN,
        [chose(MenuAction(action="menu", menu="main")), chose(TO_SALES), TALKED],
        [Menu("other"), Menu("main"), SALES],
        Disposition.ANSWERED,
        id="ivr on_failure to another menu runs that menu",
    ),
    pytest.param(
        {"ivr": "main", "queue": "overflow"},
        OPEN,
        [chose(RepeatAction(action="repeat"))],
        [Menu("main")],
        Disposition.MISSED,
        id="a repeat out of a menu does nothing: missed",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [GONE],
        [Menu("main")],
        Disposition.ABANDONED,
        id="caller gone in the menu: abandoned",
    ),
    # SPEC step 2: after hours
    pytest.param(
        {"queue": "sales"},
        CLOSED,
        [ok],
        [Hangup(None)],
        Disposition.AFTER_HOURS,
        id="after hours default hangup: after_hours, not missed",
    ),
    pytest.param(
        line({"queue": "sales"}, after_hours=SALES_FALLBACK.model_dump()),
        CLOSED,
        [GONE],
        [Voicemail("anna")],
        Disposition.AFTER_HOURS,
        id="after hours voicemail: after_hours, not voicemail",
    ),
    pytest.param(
        line({"queue": "sales"}, after_hours={"action": "employee", "employee": "anna"}),
        CLOSED,
        [NO_ANSWER, ok],
        [Ring("anna", 20, Stage.END, "voicemail"), Voicemail("anna")],
        Disposition.AFTER_HOURS,
        id="after hours employee unanswered: her voicemail, still after_hours",
    ),
    pytest.param(
        line({"queue": "sales"}, after_hours={"action": "employee", "employee": "anna"}),
        CLOSED,
        [TALKED],
        [Ring("anna", 20, Stage.END, "voicemail")],
        Disposition.AFTER_HOURS,
        id="after hours employee answered: still after_hours",
    ),
    pytest.param(
        line({"queue": "sales"}, after_hours={"action": "forward", "to": OUTSIDE}),
        CLOSED,
        [Outcome.REFUSED],
        [Forward(OUTSIDE, None, Stage.END)],
        Disposition.AFTER_HOURS,
        id="after hours forward refused: the queue is not tried",
    ),
    pytest.param(
        line({"queue": "sales"}, after_hours={"action": "queue", "queue": "sales"}),
        CLOSED,
        [NO_ANSWER, ok],
        [SALES, Voicemail("anna")],
        Disposition.AFTER_HOURS,
        id="after hours queue with its fallback",
    ),
    # the caller hanging up anywhere
    pytest.param(
        EVERYTHING, OPEN, [GONE], [SipTo()], Disposition.ABANDONED, id="caller gone at sip_to"
    ),
    pytest.param(
        GREETING | {"queue": "sales"},
        OPEN,
        [GONE],
        [Greeting(WELCOME, collect_extension=False)],
        Disposition.ABANDONED,
        id="caller gone during the greeting",
    ),
    pytest.param(
        ext("voicemail"),
        OPEN,
        [found("anna"), GONE],
        [Greeting(WELCOME, collect_extension=True), Ring("anna", 12, Stage.GREETING, "voicemail")],
        Disposition.ABANDONED,
        id="caller gone while an extension rings: no voicemail",
    ),
    pytest.param(
        crm("queue", queue="sales"),
        OPEN,
        [GONE],
        [CrmLookup()],
        Disposition.ABANDONED,
        id="caller gone during the crm lookup",
    ),
    pytest.param(
        crm("forward_to_mobile", queue="sales"),
        OPEN,
        [found("anna"), NO_ANSWER, GONE],
        [
            CrmLookup(),
            Ring("anna", 20, Stage.CRM, "forward_to_mobile"),
            Forward(ANNA_MOBILE, "anna", Stage.CRM),
        ],
        Disposition.ABANDONED,
        id="caller gone while the mobile rings: the queue is not tried",
    ),
    pytest.param(
        {"ivr": "main"},
        OPEN,
        [chose(HangupAction(action="hangup", message=GOODBYE)), GONE],
        [Menu("main"), Hangup(GOODBYE)],
        Disposition.MISSED,
        id="caller gone during a hangup message: missed, as the engine marks it",
    ),
]


@pytest.mark.parametrize(("routing", "facts", "replies", "steps", "expected"), WALKS)
def test_walk(
    routing: dict[str, Any] | Line,
    facts: Facts,
    replies: list[Reply | Outcome],
    steps: list[Step],
    expected: Disposition,
) -> None:
    """`routing` is the number's routing section, or a Line for other settings."""
    paris = routing if isinstance(routing, Line) else line(routing)
    number = paris.number if facts.known else None
    trail, verdict = run_script(
        number, facts, replies, employees=paris.employees, queues=paris.queues
    )
    assert [result.step for result in trail] == steps
    assert verdict is expected


# --- single rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(TO_SALES, SALES, id="queue: waits there, carrying its fallback"),
        pytest.param(MenuAction(action="menu", menu="other"), Menu("other"), id="menu: runs it"),
        pytest.param(
            EmployeeAction(action="employee", employee="boris"),
            Ring("boris", 20, Stage.END, "voicemail"),
            id="employee: 20 s then her voicemail, nothing continues",
        ),
        pytest.param(
            VoicemailAction(action="voicemail", employee="anna"), Voicemail("anna"), id="voicemail"
        ),
        pytest.param(
            ForwardAction(action="forward", to=OUTSIDE),
            Forward(OUTSIDE, None, Stage.END),
            id="forward: nobody's mobile, nothing continues",
        ),
        pytest.param(
            HangupAction(action="hangup", message=GOODBYE), Hangup(GOODBYE), id="hangup message"
        ),
        pytest.param(RepeatAction(action="repeat"), DONE, id="repeat outside a menu: done"),
    ],
)
def test_step_for_action(action: ActionLike, expected: Step) -> None:
    assert step_for_action(action, queues=line().queues) == expected


@dataclass(frozen=True)
class _Odd:
    action: str = "transfer"


def test_step_for_an_unknown_action_is_an_error() -> None:
    with pytest.raises(ValueError, match="transfer"):
        step_for_action(_Odd(), queues={})


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(Voicemail("anna"), id="voicemail ends the call"),
        pytest.param(Hangup(None), id="hangup ends the call"),
        pytest.param(Say(NOT_IN_SERVICE), id="not in service ends the call"),
        pytest.param(DONE, id="done stays done"),
    ],
)
def test_final_steps_lead_to_done(step: Step) -> None:
    paris = line({"queue": "sales", "ivr": "main"})
    assert paris.next(Result(step, Outcome.DONE)) == DONE


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(Outcome.TALKED, id="talked"),
        pytest.param(Outcome.VOICEMAIL, id="voicemail"),
        pytest.param(Outcome.CALLER_GONE, id="caller gone"),
        pytest.param(Outcome.CALLBACK_REQUESTED, id="virtual hold taken"),
    ],
)
@pytest.mark.parametrize(
    "step",
    [
        pytest.param(SipTo(), id="sip_to"),
        pytest.param(Say(RECORDING_WARNING), id="warning"),
        pytest.param(Ring("anna", 20, Stage.SIP_TO, "voicemail"), id="ring"),
        pytest.param(Forward(ANNA_MOBILE, "anna", Stage.GREETING), id="forward"),
        pytest.param(SALES, id="queue"),
        pytest.param(Menu("main"), id="menu"),
    ],
)
def test_final_outcomes_end_the_call_at_any_step(step: Step, outcome: Outcome) -> None:
    paris = line(EVERYTHING)
    assert paris.next(Result(step, outcome, employee="anna", action=TO_SALES)) == DONE


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(Outcome.NO_ANSWER, id="no answer"),
        pytest.param(Outcome.BUSY, id="busy"),
        pytest.param(Outcome.REFUSED, id="refused"),
        pytest.param(Outcome.FAILED, id="failed"),
    ],
)
def test_every_unanswered_ring_applies_no_answer(outcome: Outcome) -> None:
    paris = line(ext("voicemail"))
    ring = Ring("anna", 12, Stage.GREETING, "voicemail")
    assert paris.next(Result(ring, outcome)) == Voicemail("anna")


def test_a_menu_must_return_an_action() -> None:
    paris = line({"ivr": "main"})
    with pytest.raises(ValueError, match="main"):
        paris.next(Result(Menu("main"), Outcome.DONE))


def test_ring_no_answer_is_validated_and_compares_as_its_config_string() -> None:
    ring = Ring("anna", 20, Stage.CRM, "forward_to_mobile")
    assert ring.no_answer is NoAnswer.FORWARD_TO_MOBILE
    assert ring == Ring("anna", 20, Stage.CRM, NoAnswer.FORWARD_TO_MOBILE)
    with pytest.raises(ValueError):
        Ring("anna", 20, Stage.CRM, "queue")  # crm's word, mapped before a Ring is made


def test_stages_follow_spec_steps_4_to_8() -> None:
    assert list(Stage) == sorted(Stage)
    assert [s.name for s in Stage] == ["SIP_TO", "GREETING", "IVR", "CRM", "QUEUE", "END"]


def test_steps_are_frozen_values() -> None:
    with pytest.raises(AttributeError):
        Say(NOT_IN_SERVICE).prompt = "other"  # type: ignore[misc]
    assert hash(SALES) == hash(QueueStep("sales", SALES_FALLBACK))
    assert Done() == DONE


# --- disposition, directly -----------------------------------------------------------------


def _r(step: Step, outcome: Outcome = Outcome.DONE) -> Result:
    return Result(step, outcome)


RING = Ring("anna", 20, Stage.QUEUE, "continue")
MOBILE = Forward(ANNA_MOBILE, "anna", Stage.CRM)


@pytest.mark.parametrize(
    ("facts", "trail", "expected"),
    [
        pytest.param(UNKNOWN, [], Disposition.FAILED, id="unknown number: failed"),
        pytest.param(
            DISCONNECTED,
            [_r(RING, TALKED)],
            Disposition.FAILED,
            id="not in service wins over anything",
        ),
        pytest.param(
            Facts(known=True, in_service=False, open=False, will_record=False),
            [],
            Disposition.FAILED,
            id="not in service is checked before the hours",
        ),
        pytest.param(
            CLOSED, [_r(RING, TALKED)], Disposition.AFTER_HOURS, id="closed wins over talked"
        ),
        pytest.param(
            CLOSED, [_r(Voicemail(None))], Disposition.AFTER_HOURS, id="closed wins over voicemail"
        ),
        pytest.param(
            CLOSED, [_r(SALES, GONE)], Disposition.AFTER_HOURS, id="closed wins over gone"
        ),
        pytest.param(OPEN, [_r(SipTo()), _r(RING, TALKED)], Disposition.ANSWERED, id="ring talked"),
        pytest.param(OPEN, [_r(SALES, TALKED)], Disposition.ANSWERED, id="queue talked"),
        pytest.param(OPEN, [_r(MOBILE, TALKED)], Disposition.FORWARDED, id="mobile talked"),
        pytest.param(
            OPEN,
            [_r(Forward(OUTSIDE, None, Stage.END), TALKED)],
            Disposition.FORWARDED,
            id="forward talked",
        ),
        pytest.param(
            OPEN,
            [_r(RING, NO_ANSWER), _r(Voicemail("anna"))],
            Disposition.VOICEMAIL,
            id="voicemail reached",
        ),
        pytest.param(
            OPEN,
            [_r(Voicemail("anna"), GONE)],
            Disposition.VOICEMAIL,
            id="voicemail reached then the caller left: still voicemail",
        ),
        pytest.param(OPEN, [_r(RING, GONE)], Disposition.ABANDONED, id="gone while ringing"),
        pytest.param(
            OPEN,
            [_r(SALES, Outcome.CALLBACK_REQUESTED)],
            Disposition.CALLBACK_REQUESTED,
            id="virtual hold taken in the queue",
        ),
        pytest.param(
            OPEN,
            [_r(Say(RECORDING_WARNING)), _r(SALES, Outcome.CALLBACK_REQUESTED)],
            Disposition.CALLBACK_REQUESTED,
            id="virtual hold after the warning: not abandoned, not missed",
        ),
        pytest.param(
            CLOSED,
            [_r(SALES, Outcome.CALLBACK_REQUESTED)],
            Disposition.AFTER_HOURS,
            id="after hours wins over virtual hold (an after_hours queue)",
        ),
        pytest.param(
            OPEN,
            [_r(RING, NO_ANSWER), _r(MOBILE, GONE)],
            Disposition.ABANDONED,
            id="gone while the mobile rings",
        ),
        pytest.param(OPEN, [], Disposition.MISSED, id="nothing ran: missed"),
        pytest.param(
            OPEN,
            [
                _r(RING, NO_ANSWER),
                _r(SALES, NO_ANSWER),
                _r(Forward(OUTSIDE, None, Stage.END), Outcome.REFUSED),
            ],
            Disposition.MISSED,
            id="nobody answered anything: missed",
        ),
        pytest.param(OPEN, [_r(Hangup(None))], Disposition.MISSED, id="hangup action: missed"),
        pytest.param(
            OPEN,
            [_r(Hangup(GOODBYE), GONE)],
            Disposition.MISSED,
            id="hangup action with the caller gone: still missed",
        ),
        pytest.param(
            OPEN,
            [_r(Say(RECORDING_WARNING)), _r(Greeting(WELCOME, True), Outcome.DONE)],
            Disposition.MISSED,
            id="a greeting with nobody dialed: missed",
        ),
    ],
)
def test_disposition(facts: Facts, trail: list[Result], expected: Disposition) -> None:
    assert disposition(facts, trail) is expected


# --- callbacks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "verdict", "expected"),
    [
        pytest.param(Direction.INCOMING, Disposition.MISSED, True, id="incoming missed"),
        pytest.param(Direction.INCOMING, Disposition.ABANDONED, True, id="incoming abandoned"),
        pytest.param("incoming", "missed", True, id="as stored strings"),
        pytest.param(Direction.INCOMING, Disposition.ANSWERED, False, id="answered: no"),
        pytest.param(Direction.INCOMING, Disposition.VOICEMAIL, False, id="voicemail: no"),
        pytest.param(Direction.INCOMING, Disposition.FORWARDED, False, id="forwarded: no"),
        pytest.param(Direction.INCOMING, Disposition.AFTER_HOURS, False, id="after hours: no"),
        pytest.param(Direction.INCOMING, Disposition.FAILED, False, id="failed: no"),
        pytest.param(Direction.OUTGOING, Disposition.MISSED, False, id="outgoing missed: no"),
        pytest.param(Direction.CALLBACK, Disposition.MISSED, False, id="a missed callback: no"),
        pytest.param(
            Direction.INCOMING,
            Disposition.CALLBACK_REQUESTED,
            False,
            id="virtual hold already has its callback: no second one",
        ),
        pytest.param("incoming", "callback_requested", False, id="virtual hold as stored"),
    ],
)
def test_wants_callback(
    direction: Direction | str, verdict: Disposition | str, expected: bool
) -> None:
    assert wants_callback(direction, verdict) is expected


def test_disposition_and_direction_values_are_the_spec_strings() -> None:
    assert {d.value for d in Disposition} == {
        "answered",
        "missed",
        "abandoned",
        "voicemail",
        "forwarded",
        "after_hours",
        "failed",
        "callback_requested",
    }
    assert {d.value for d in Direction} == {"incoming", "outgoing", "callback"}


# --- the script runner itself ------------------------------------------------------------


def test_run_script_fails_when_replies_run_out() -> None:
    paris = line({"queue": "sales"})
    with pytest.raises(ValueError, match="no reply left"):
        paris.walk(OPEN, [NO_ANSWER])


def test_run_script_fails_when_replies_are_left_over() -> None:
    paris = line({"queue": "sales"})
    with pytest.raises(ValueError, match="left over"):
        paris.walk(OPEN, [TALKED, ok])
