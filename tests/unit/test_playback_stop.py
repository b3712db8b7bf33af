"""Which ARI answers to stopping the ringback mean "Asterisk refused it while the tone was
starting, send it again" (ari/playback_stop.py). The answers are built the way the
client builds them from Asterisk's replies (ari/errors.py error_for_status)."""

from __future__ import annotations

from asterisk_bridge.ari.errors import AriError, AriUnavailable, error_for_status
from asterisk_bridge.ari.playback_stop import stop_refused_while_starting

PATH = "/playbacks/pb-1"


def answer(status: int, message: str) -> AriError:
    return error_for_status(status, message, method="DELETE", path=PATH)


def test_asterisks_could_not_stop_playback_is_the_race_and_is_retried() -> None:
    # res/ari/resource_playbacks.c: STASIS_PLAYBACK_OPER_FAILED -> 500 "Could not stop playback"
    assert stop_refused_while_starting(answer(500, "Could not stop playback"))


def test_a_playback_already_over_is_not_retried() -> None:
    assert not stop_refused_while_starting(answer(404, "Playback not found"))


def test_another_server_error_is_not_retried() -> None:
    assert not stop_refused_while_starting(answer(500, "Internal Server Error"))


def test_no_answer_from_asterisk_is_not_retried() -> None:
    gone = AriUnavailable(0, "event websocket closed", method="DELETE", path=PATH)
    assert not stop_refused_while_starting(gone)
