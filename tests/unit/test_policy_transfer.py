"""policy.transfer: transfer targets, keypad codes (SPEC section 8)."""

from __future__ import annotations

import pytest

from asterisk_bridge.config.schema import TransferCodes as TransferCodesSetting
from asterisk_bridge.policy.transfer import (
    KEYPAD_PAUSE_SECONDS,
    Directory,
    EmployeeTarget,
    ExternalTarget,
    KeypadAction,
    KeypadCommand,
    KeypadReader,
    QueueTarget,
    TargetError,
    TargetProblem,
    TransferCodes,
    codes_problem,
    resolve_target,
)

DIRECTORY = Directory(
    extensions={"anna": "101", "boris": "102"},
    queues=("sales",),
    allowlist=("+33*",),
    region="FR",
)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("boris", EmployeeTarget("boris")),
        ("102", EmployeeTarget("boris")),
        (" 101 ", EmployeeTarget("anna")),
        ("queue:sales", QueueTarget("sales")),
        ("+33612345678", ExternalTarget("+33612345678")),
        ("0612345678", ExternalTarget("+33612345678")),  # national, the number's region
        ("0033612345678", ExternalTarget("+33612345678")),
    ],
)
def test_targets_resolve_to_what_they_name(text: str, target: object) -> None:
    assert resolve_target(text, DIRECTORY) == target


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", TargetProblem.UNKNOWN),
        ("queue:nope", TargetProblem.UNKNOWN),
        ("zoe", TargetProblem.UNKNOWN),
        ("199", TargetProblem.UNKNOWN),  # no one's extension, and no phone number
        ("102&PJSIP/evil", TargetProblem.UNKNOWN),  # never reaches a dial string
        ("102@provider", TargetProblem.UNKNOWN),
        ("1" * 65, TargetProblem.UNKNOWN),
        ("+14155550100", TargetProblem.NOT_ALLOWED),  # outside the allowlist
    ],
)
def test_bad_targets_are_refused_with_a_reason(text: str, problem: TargetProblem) -> None:
    with pytest.raises(TargetError) as raised:
        resolve_target(text, DIRECTORY)
    assert raised.value.problem is problem


def test_an_empty_allowlist_allows_no_external_target() -> None:
    closed = Directory(extensions={}, queues=(), allowlist=(), region="FR")
    with pytest.raises(TargetError):
        resolve_target("+33612345678", closed)


def feed(reader: KeypadReader, digits: str, *, consulting: bool = False) -> list[KeypadCommand]:
    out = []
    for i, digit in enumerate(digits):
        command = reader.feed(digit, float(i), consulting=consulting)
        if command is not None:
            out.append(command)
    return out


@pytest.mark.parametrize(
    ("digits", "commands"),
    [
        ("##102#", [KeypadCommand(KeypadAction.BLIND, "102")]),
        ("*2102#", [KeypadCommand(KeypadAction.ATTENDED, "102")]),
        ("5##102#", [KeypadCommand(KeypadAction.BLIND, "102")]),  # a stray key first
        ("#*2103#", [KeypadCommand(KeypadAction.ATTENDED, "103")]),
        ("###102#", [KeypadCommand(KeypadAction.BLIND, "102")]),  # "#" with no target yet
        ("*5*2101#", [KeypadCommand(KeypadAction.ATTENDED, "101")]),
        ("1234", []),
        ("##102", []),  # not finished: the pause ends it (below)
    ],
)
def test_keypad_codes_in_conversation(digits: str, commands: list[KeypadCommand]) -> None:
    assert feed(KeypadReader(TransferCodes()), digits) == commands


def test_a_pause_ends_a_typed_target() -> None:
    reader = KeypadReader(TransferCodes())
    assert feed(reader, "##102") == []
    assert reader.deadline == 4.0 + KEYPAD_PAUSE_SECONDS  # the last digit came at t=4
    assert reader.expire(4.0 + KEYPAD_PAUSE_SECONDS - 0.1) is None
    assert reader.expire(4.0 + KEYPAD_PAUSE_SECONDS) == KeypadCommand(KeypadAction.BLIND, "102")
    assert reader.deadline is None


def test_consultation_codes_complete_and_cancel() -> None:
    reader = KeypadReader(TransferCodes())
    assert feed(reader, "*2", consulting=True) == [KeypadCommand(KeypadAction.COMPLETE)]
    assert feed(reader, "9*0", consulting=True) == [KeypadCommand(KeypadAction.CANCEL)]
    assert feed(reader, "##", consulting=True) == []  # no blind transfer from a consultation


def test_configured_codes_are_used() -> None:
    reader = KeypadReader(TransferCodes(blind="*9", attended="*8", cancel="*7"))
    assert feed(reader, "##102#") == []
    assert feed(reader, "*9102#") == [KeypadCommand(KeypadAction.BLIND, "102")]


@pytest.mark.parametrize(
    ("codes", "broken"),
    [
        (TransferCodes(), False),
        (TransferCodes(blind="*2"), True),  # same as attended
        (TransferCodes(attended="*", cancel="*0"), True),  # too short, and a prefix
        (TransferCodes(cancel="*2#"), True),  # attended is its prefix
        (TransferCodes(blind="AB"), True),
    ],
)
def test_codes_that_cannot_work_are_named(codes: TransferCodes, broken: bool) -> None:
    assert (codes_problem(codes) is not None) is broken


def test_the_config_refuses_unusable_codes() -> None:
    with pytest.raises(ValueError, match="prefix"):
        TransferCodesSetting(blind="*2")
