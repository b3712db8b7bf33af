"""IVR menus on the real rig (issue 4): valid, invalid, timeout, sub-menu, repeat,
multi-digit options, forwarding inside the allowlist."""

from __future__ import annotations

import pytest
import yaml

from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MAIN = "sound:numcfg/en/ivr-main"
SUPPORT = "sound:numcfg/en/transfer"
INVALID = "sound:numcfg/en/ivr-invalid"
GOODBYE = "sound:numcfg/en/goodbye"

IVR_CONFIG = {
    "ivr_menus": {
        "main": {
            "prompt": MAIN,
            "first_digit_timeout": 2,
            "inter_digit_timeout": 1,
            "retries": 2,
            "options": {
                "1": {"action": "employee", "employee": "anna"},
                "2": {"action": "menu", "menu": "support"},
                "3": {"action": "forward", "to": "+33611111111"},
                "41": {"action": "voicemail", "employee": "boris"},
                "9": {"action": "repeat"},
                "0": {"action": "hangup"},
            },
            "on_failure": {"action": "hangup", "message": GOODBYE},
        },
        "support": {
            "prompt": SUPPORT,
            "first_digit_timeout": 2,
            "options": {"1": {"action": "employee", "employee": "boris"}},
        },
    },
    "numbers": {
        "paris": {"number": "+33185000000", "routing": {"greeting": None, "ivr": "main"}},
    },
}


async def test_valid_choice_rings_the_employee(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "1")
    await harness.bridged(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:1", "employee:anna"]
    assert call["disposition"] == "answered"


async def test_invalid_choice_hears_retry_then_menu_again(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "7")
    await harness.heard(leg, INVALID)
    await harness.wait_for(
        lambda e: (
            e.get("type") == "PlaybackStarted"
            and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
            and len(harness.media_heard(leg)) >= 3
        ),
        what="the menu a second time",
    )
    await harness.press(leg, "0")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.media_heard(leg) == [MAIN, INVALID, MAIN]
    assert call["route"] == ["ivr:main:0", "hangup"]
    assert call["disposition"] == "missed"


async def test_silence_repeats_the_menu_then_on_failure(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    leg = await harness.call("+33185000000")
    await harness.ended(leg, timeout=40)
    (call,) = await calls_done(app)
    assert harness.media_heard(leg) == [MAIN, MAIN, GOODBYE]
    assert call["route"] == ["hangup"]


async def test_sub_menu_then_its_option(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "2")
    await harness.heard(leg, SUPPORT)
    await harness.press(leg, "1")
    await harness.bridged(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:2", "ivr:support:1", "employee:boris"]


async def test_repeat_plays_the_menu_again(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "9")
    await harness.wait_for(lambda e: harness.media_heard(leg).count(MAIN) >= 2, what="repeat")
    await harness.press(leg, "0")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:9", "ivr:main:0", "hangup"]


async def test_multi_digit_option_leads_to_voicemail(harness: Harness, numcfg) -> None:
    app = await numcfg(IVR_CONFIG)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "41")
    await harness.heard(leg, "sound:numcfg/en/voicemail-intro")
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:41", "voicemail:boris"]
    assert call["disposition"] == "voicemail"


async def test_forward_inside_the_allowlist_goes_out_through_the_trunk(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(IVR_CONFIG)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "3")
    trunk = await harness.trunk_rung("+33611111111")
    # The called party sees the number the client called (forward_caller_id: null).
    assert trunk["channel"]["caller"]["number"] == "+33185000000"
    await harness.bridged(leg)
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:3", "forward:+33611111111"]
    assert call["disposition"] == "forwarded"


async def test_forward_outside_a_narrowed_allowlist_is_refused_at_call_time(
    harness: Harness, numcfg
) -> None:
    """The allowlist is checked when the call forwards, not only at load time: a reload
    that narrows it applies to a caller already in the menu."""
    config = {
        **IVR_CONFIG,
        "ivr_menus": {
            "main": {
                **IVR_CONFIG["ivr_menus"]["main"],
                "options": {"3": {"action": "forward", "to": "+33159000000"}},
            }
        },
    }
    app = await numcfg(config)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    path = app.config_holder.path
    narrowed = yaml.safe_load(path.read_text())
    narrowed["account"]["external_allowlist"] = ["+336*"]
    narrowed["ivr_menus"]["main"]["options"] = {"3": {"action": "hangup"}}
    path.write_text(yaml.safe_dump(narrowed, sort_keys=False))
    assert app.reload() is True
    await harness.press(leg, "3")  # the call's own menu still says: forward
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.trunk_reached == []
    assert call["route"] == ["ivr:main:3", "hangup"]
    assert call["disposition"] == "missed"


# -- digits typed ahead during the greeting (issue 11, SPEC section 9) -----------------------

GREETING = "sound:numcfg/en/welcome"


def typed_ahead_config(*, extension_dialing: bool) -> dict:
    config = yaml.safe_load(yaml.safe_dump(IVR_CONFIG))
    config["numbers"]["paris"]["routing"] = {
        "greeting": GREETING,
        "extension_dialing": {"enabled": extension_dialing},
        "ivr": "main",
    }
    return config


@pytest.mark.parametrize("extension_dialing", [True, False])
async def test_an_option_typed_during_the_greeting_is_taken_without_the_menu(
    harness: Harness, numcfg, extension_dialing: bool
) -> None:
    app = await numcfg(typed_ahead_config(extension_dialing=extension_dialing))
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, GREETING)
    await harness.press(leg, "2")  # "2" starts no extension: no need to wait
    await harness.heard(leg, SUPPORT)
    await harness.press(leg, "1")
    await harness.bridged(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["greeting", "ivr:main:2", "ivr:support:1", "employee:boris"]
    assert MAIN not in harness.media_heard(leg)  # no menu prompt, no retry


async def test_an_extension_typed_during_the_greeting_still_rings_it(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(typed_ahead_config(extension_dialing=True))
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, GREETING)
    await harness.press(leg, "102")
    await harness.bridged(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["greeting", "extension:102", "employee:boris"]


@pytest.mark.parametrize("extension_dialing", [True, False])
async def test_digit_1_during_the_greeting_selects_option_1(
    harness: Harness, numcfg, extension_dialing: bool
) -> None:
    """Issue 11's case: "1" starts extensions 101-103 too, so with extension dialing on it
    is taken after the inter-digit pause; either way option 1, with no menu retry."""
    app = await numcfg(typed_ahead_config(extension_dialing=extension_dialing))
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, GREETING)
    await harness.press(leg, "1")
    await harness.bridged(leg, timeout=20)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["greeting", "ivr:main:1", "employee:anna"]
    assert MAIN not in harness.media_heard(leg) and INVALID not in harness.media_heard(leg)
