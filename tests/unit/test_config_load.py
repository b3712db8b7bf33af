"""Loading good configs: examples, defaults, ${VAR} expansion, secrets kept out of messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from asterisk_bridge.config import (
    Config,
    ConfigError,
    config_json_schema,
    load_config,
    load_config_text,
)
from asterisk_bridge.config.schema import HoldMusicFile, QueueAction, VoicemailAction
from asterisk_bridge.policy.hours import is_open

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {"NUMCFG_ARI_PASSWORD": "ari-pass-123", "NUMCFG_API_TOKEN": "api-token-456"}

MINIMAL = """\
version: 1
asterisk:
  ari_url: http://127.0.0.1:8088/ari
  username: numcfg
  password: ${NUMCFG_ARI_PASSWORD}
numbers:
  paris:
    number: "+33185000000"
"""


def test_dev_rig_example_loads() -> None:
    config = load_config(EXAMPLES / "numcfg.yaml", env=ENV)
    assert config.asterisk.password == "ari-pass-123"
    assert config.asterisk.trunk == "Local/{number}@numcfg-test-trunk"
    assert config.numbers["paris"].backup_number == "+33600000001"
    assert config.numbers["paris"].routing.greeting == "sound:numcfg/en/welcome"
    assert set(config.employees) == {"anna", "boris"}
    assert config.source_path == (EXAMPLES / "numcfg.yaml").resolve()


def test_full_spec_example_loads() -> None:
    config = load_config(EXAMPLES / "full.yaml", env=ENV)
    paris = config.numbers["paris"]
    assert paris.routing.extension_dialing.enabled
    assert paris.outbound.prefix == "*123*"
    assert paris.working_hours.after_hours == VoicemailAction(action="voicemail", employee="anna")
    assert config.ivr_menus["main"].options["1"] == QueueAction(action="queue", queue="sales")
    assert config.api.token == "api-token-456"
    assert config.store == "sqlite:///var/lib/numcfg/numcfg.sqlite3"


def test_defaults_where_the_file_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text(MINIMAL)
    config = load_config(path, env=ENV)
    number = config.numbers["paris"]
    # Beside the config file, not in the service's working directory.
    assert config.store == f"sqlite:///{tmp_path}/numcfg.sqlite3"
    assert config.storage.recordings == str(tmp_path / "recordings")
    assert config.storage.voicemail == str(tmp_path / "voicemail")
    assert config.asterisk.app == "numcfg"
    assert config.asterisk.trunk == "PJSIP/{number}@provider"
    assert config.asterisk.workday_codes.model_dump() == {
        "start": "*71",
        "pause": "*72",
        "resume": "*73",
        "end": "*74",
    }
    assert config.api.listen == "127.0.0.1:8090"
    assert config.api.token is None
    assert config.account.plan == "professional"
    assert config.account.timezone == "UTC"
    assert config.account.external_allowlist == []
    assert config.crm.backend == "builtin"
    assert config.crm.timeout == 1.0
    assert number.connection == "rented"
    assert number.routing.greeting is None
    assert number.routing.ivr is None
    assert number.routing.queue is None
    assert not number.routing.extension_dialing.enabled
    assert number.routing.extension_dialing.ring_time == 20
    assert number.routing.extension_dialing.no_answer == "continue"
    assert not number.routing.crm_responsible.enabled
    assert number.routing.crm_responsible.no_answer == "queue"
    assert not number.routing.sip_to_header
    assert number.working_hours.schedule is None
    assert not number.recording.record_all
    assert not number.rating
    assert number.crm.create_lead == "never"
    assert number.callback is None
    assert number.hold_music.model_dump() == {"language": "en"}


def test_queue_and_menu_defaults() -> None:
    text = MINIMAL + (
        "employees:\n  anna: {name: Anna, extension: '101', endpoint: PJSIP/101}\n"
        "queues:\n  sales: {members: [anna]}\n"
        "ivr_menus:\n  main: {}\n"
    )
    config = load_config_text(text, env=ENV)
    queue, menu = config.queues["sales"], config.ivr_menus["main"]
    assert (queue.ring_time, queue.max_wait, queue.distribution) == (15, 120, "evenly")
    assert not queue.announce_position
    assert (menu.first_digit_timeout, menu.inter_digit_timeout, menu.retries) == (5, 3, 3)


def test_relative_paths_resolve_beside_the_config() -> None:
    text = MINIMAL + "    hold_music: {file: moh/paris.mp3}\nstorage: {recordings: rec}\n"
    config = load_config_text(text, env=ENV, base_dir="/etc/numcfg")
    assert config.numbers["paris"].hold_music == HoldMusicFile(file="/etc/numcfg/moh/paris.mp3")
    assert config.storage.recordings == "/etc/numcfg/rec"
    assert config.storage.voicemail == "/etc/numcfg/voicemail"


def test_a_schedule_is_parsed_once_by_the_policy_parser_it_is_checked_with() -> None:
    text = MINIMAL + (
        "schedules:\n  office:\n"
        '    week: {mon: "14:00-18:00,09:00-12:00", sat: "20:00-24:00"}\n'
        '    holidays: ["29.02", 2027-04-05]\n'  # unquoted: YAML makes it a date
    )
    schedule = load_config_text(text, env=ENV).schedules["office"]
    assert schedule.timezone == "UTC"
    assert schedule.hours is schedule.hours  # built once per loaded config
    assert schedule.hours.holidays == ("29.02", "2027-04-05")
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    assert [is_open(schedule.hours, monday.replace(hour=h)) for h in (8, 9, 12, 13, 17)] == [
        False,
        True,
        False,
        False,
        True,
    ]
    assert is_open(schedule.hours, datetime(2026, 12, 5, 23, 59, tzinfo=UTC))  # 24:00
    assert not is_open(schedule.hours, datetime(2027, 4, 5, 10, tzinfo=UTC))  # holiday


def test_schedule_timezone_defaults_to_the_account_one() -> None:
    text = MINIMAL + (
        "account: {timezone: Europe/Paris}\n"
        "schedules:\n  office: {}\n  tokyo: {timezone: Asia/Tokyo}\n"
    )
    schedules = load_config_text(text, env=ENV).schedules
    assert schedules["office"].timezone == "Europe/Paris"
    assert schedules["tokyo"].timezone == "Asia/Tokyo"


def test_env_expansion_inside_strings_with_default_and_escape() -> None:
    text = MINIMAL.replace(
        "username: numcfg", "username: ${USER_PREFIX}-numcfg\n  app: ${APP:-numcfg}"
    ).replace("ari_url: http://127.0.0.1:8088/ari", 'ari_url: "http://$${HOST}/ari"')
    config = load_config_text(text, env=ENV | {"USER_PREFIX": "node1"})
    assert config.asterisk.username == "node1-numcfg"
    assert config.asterisk.app == "numcfg"
    assert config.asterisk.ari_url == "http://${HOST}/ari"


def test_env_expansion_cannot_change_the_yaml_structure() -> None:
    # A secret with YAML syntax in it stays one string value.
    config = load_config_text(MINIMAL, env={"NUMCFG_ARI_PASSWORD": "a: b # [c]"})
    assert config.asterisk.password == "a: b # [c]"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMCFG_ARI_PASSWORD", "from-os-environ")
    assert load_config_text(MINIMAL).asterisk.password == "from-os-environ"


def test_secrets_never_appear_in_messages_or_reprs() -> None:
    secret = "Sup3r-S3cret-Value"
    text = MINIMAL.replace('number: "+33185000000"', "number: ${NUMCFG_ARI_PASSWORD}")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env={"NUMCFG_ARI_PASSWORD": secret})
    assert "numbers.paris.number: '***' is not an E.164 number" in str(caught.value)
    assert secret not in str(caught.value)
    config = load_config_text(MINIMAL, env={"NUMCFG_ARI_PASSWORD": secret})
    assert secret not in repr(config)
    assert secret not in str(config.asterisk)


def test_missing_env_var_names_the_variable_only() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(MINIMAL, env={})
    assert [str(i) for i in caught.value.issues] == [
        "numcfg.yaml:5:13: asterisk.password: environment variable NUMCFG_ARI_PASSWORD is not set"
    ]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'absent.yaml'}:1:1: cannot read")


def test_config_is_frozen() -> None:
    config = load_config_text(MINIMAL, env=ENV)
    with pytest.raises(pydantic.ValidationError):
        config.numbers["paris"].rating = True  # type: ignore[misc]


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = MINIMAL + (
        "employees:\n"
        "  anna: &desk {name: Anna, extension: '101', endpoint: PJSIP/101}\n"
        "  boris: {<<: *desk, name: Boris, extension: '102'}\n"
    )
    config = load_config_text(text, env=ENV)
    assert config.employees["boris"].endpoint == "PJSIP/101"


def test_json_schema_describes_the_file() -> None:
    schema = config_json_schema()
    assert isinstance(schema, dict)
    json.dumps(schema)  # `numcfg schema` prints it as JSON
    assert "numbers" in schema["properties"]
    assert set(schema["required"]) == {"version", "asterisk"}
    assert "source_path" not in schema["properties"]
    assert schema["additionalProperties"] is False
    assert Config.model_json_schema()["properties"].keys() == schema["properties"].keys()


def test_holidays_may_be_a_country_calendar_plus_the_companys_own_days() -> None:
    text = MINIMAL + (
        "schedules:\n  office:\n    timezone: Europe/Paris\n"
        '    week: {tue: "09:00-18:00"}\n'
        '    holidays: {country: fr, dates: ["2026-07-21"]}\n'
    )
    hours = load_config_text(text, env=ENV).schedules["office"].hours
    assert (hours.country, hours.holidays) == ("FR", ("2026-07-21",))
    assert not is_open(hours, datetime(2026, 7, 14, 10, tzinfo=UTC))  # public holiday
    assert not is_open(hours, datetime(2026, 7, 21, 10, tzinfo=UTC))  # the company's own
    assert is_open(hours, datetime(2026, 7, 7, 10, tzinfo=UTC))


def test_an_unknown_holiday_country_is_an_error_at_its_line() -> None:
    text = MINIMAL + "schedules:\n  office:\n    holidays: {country: XX}\n"
    with pytest.raises(ConfigError, match=r"schedules\.office\.holidays: .*Country XX"):
        load_config_text(text, env=ENV, filename="numcfg.yaml")
