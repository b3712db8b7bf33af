"""IVR menus: prompt, digits with first/inter-digit timeouts, retries, on_failure."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from ...ari.media import Status, wait_digits
from ...config.schema import Action, MenuAction, RepeatAction
from ...policy.digits import Match, MatchStatus, match_menu, match_on_timeout
from ..core.call import Call

log = logging.getLogger("numcfg.calls")


def digits_done(matcher: Callable[[str], Match]) -> Callable[[str], Status | None]:
    """Adapt a pure digit matcher (policy.digits) to wait_digits' done callback."""

    def done(buffer: str) -> Status | None:
        verdict = matcher(buffer)
        if verdict.status is MatchStatus.COMPLETE:
            return Status.FINISHED
        if verdict.status is MatchStatus.INVALID:
            return Status.FAILED
        return None

    return done


async def run_menu(
    call: Call, menu_id: str, *, typed: str | None = None, prompt_played: bool = False
) -> Action | None:
    """Run a menu until the caller picks an option or fails `retries` times; return the
    action to execute (the option's, or `on_failure`), None when the caller hung up.
    Sub-menus replace the current menu, so a caller may walk between menus indefinitely,
    but only by choosing. `typed`: an option the caller already typed during the
    greeting, taken without playing the prompt (SPEC section 9). `prompt_played`: the
    greeting's playback carried the prompt to its end, so the first ask does not replay it."""
    if not await call.answer():
        return None
    failures = 0
    while True:
        menu = call.config.ivr_menus[menu_id]
        if failures >= menu.retries:
            log.info("call %s: menu %s failed %d times", call.record.id, menu_id, failures)
            return menu.on_failure
        choice: str | None
        if typed is not None and typed in menu.options:
            choice, typed = typed, None
        else:
            typed = None
            asked = await _ask(call, menu_id, play_prompt=not prompt_played)
            prompt_played = False
            if asked is None:
                return None
            choice, pressed = asked
            if choice is None:
                failures += 1
                if pressed:  # pressed something wrong (a silent caller just hears it again)
                    await call.play_prompt("ivr-invalid")
                continue
        action = menu.options[choice]
        call.step(f"ivr:{menu_id}:{choice}")
        match action:
            case RepeatAction():
                continue
            case MenuAction(menu=next_menu):
                menu_id, failures = next_menu, 0
                continue
        return action


async def _ask(
    call: Call, menu_id: str, *, play_prompt: bool = True
) -> tuple[str | None, bool] | None:
    """The prompt (unless `play_prompt` is False: just played), then the caller's digits:
    (the option chosen or None, whether anything was pressed); None when the caller hung
    up."""
    menu = call.config.ivr_menus[menu_id]
    if menu.prompt and play_prompt:
        result = await call.play(menu.prompt, interrupt_on_digit=True)
        if result.status is Status.HANGUP:
            return None
    options = list(menu.options)
    status, buffer = await wait_digits(
        call.inbox,
        first_timeout=menu.first_digit_timeout,
        inter_timeout=menu.inter_digit_timeout,
        done=digits_done(functools.partial(match_menu, options=options)),
    )
    if status is Status.HANGUP:
        return None
    if status is Status.FINISHED:
        return match_menu(buffer, options).value, True
    if status is Status.TIMEOUT and buffer:
        verdict = match_on_timeout(buffer, options)
        return (verdict.value if verdict.status is MatchStatus.COMPLETE else None), True
    return None, bool(buffer)
