"""What a party rung through the trunk sees as the caller (SPEC: forward caller ID)."""

from __future__ import annotations

from .call import Call


def forward_caller_id(call: Call) -> str:
    """`forward_caller_id` (a number id or E.164), else the number the client called."""
    number = call.config.numbers[call.record.number]
    shown = number.forward_caller_id
    if shown and shown in call.config.numbers:
        return call.config.numbers[shown].number
    return shown or number.number
