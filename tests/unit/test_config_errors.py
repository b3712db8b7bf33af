"""Every broken config names the file, line, column and key path of its mistake."""

from __future__ import annotations

import textwrap

import pytest

from asterisk_bridge.config import ConfigError, load_config_text

# 12 lines; the cases below append from line 13 on, so their positions are easy to read.
BASE = """\
version: 1
asterisk:
  ari_url: http://127.0.0.1:8088/ari
  username: numcfg
  password: secret
account:
  external_allowlist: ["+33*"]
employees:
  anna: {name: Anna, extension: "101", endpoint: PJSIP/101}
  boris: {name: Boris, extension: "102", endpoint: PJSIP/102}
queues:
  sales: {members: [anna, boris]}
"""

NUMBER = """\
numbers:
  paris:
    number: "+33185000000"
"""  # lines 13-15


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env=env or {}, base_dir="/srv/numcfg")
    return [str(issue) for issue in caught.value.issues]


def more(extra: str) -> str:
    return BASE + textwrap.dedent(extra)


# (case id, config text, expected issue: "file:line:col: path: start of the message")
CASES: list[tuple[str, str, str]] = [
    (
        "yaml-unclosed-flow",
        more("numbers: [paris\n"),
        "numcfg.yaml:14:1: YAML syntax error: while parsing a flow sequence",
    ),
    (
        "yaml-bad-indent",
        BASE.replace("  username: numcfg", " username: numcfg"),
        "numcfg.yaml:4:2: YAML syntax error: while parsing a block mapping expected <block end>",
    ),
    (
        "yaml-empty",
        "# nothing here\n",
        "numcfg.yaml:1:1: the file is empty",
    ),
    (
        "root-not-mapping",
        "- version\n- 1\n",
        "numcfg.yaml:1:1: the file must be a mapping of keys",
    ),
    (
        "duplicate-top-level-key",
        more("queues: {}\n"),
        "numcfg.yaml:13:1: queues: duplicate key 'queues' (first at line 11)",
    ),
    (
        "duplicate-nested-key",
        more(NUMBER + '    number: "+33185000001"\n'),
        "numcfg.yaml:16:5: numbers.paris.number: duplicate key 'number' (first at line 15)",
    ),
    (
        "unknown-top-level-key",
        more("numbres: {}\n"),
        "numcfg.yaml:13:1: numbres: unknown key 'numbres'",
    ),
    (
        "unknown-nested-key",
        more(NUMBER + "    rooting: {queue: sales}\n"),
        "numcfg.yaml:16:5: numbers.paris.rooting: unknown key 'rooting' (did you mean 'routing'?)",
    ),
    (
        "unknown-key-inside-action",
        more(
            """\
            numbers:
              paris:
                number: "+33185000000"
                working_hours: {after_hours: {action: queue, queue: sales, loud: true}}
            """
        ),
        "numcfg.yaml:16:64: numbers.paris.working_hours.after_hours.loud: unknown key 'loud'",
    ),
    (
        "missing-number",
        more("numbers:\n  paris:\n    name: Paris\n"),
        "numcfg.yaml:15:5: numbers.paris.number: missing required key 'number'",
    ),
    (
        "missing-version",
        BASE.replace("version: 1\n", "# no version\n"),
        "numcfg.yaml:2:1: version: missing required key 'version'",
    ),
    (
        "wrong-version",
        BASE.replace("version: 1", "version: 2"),
        "numcfg.yaml:1:10: version: expected 1",
    ),
    (
        "missing-password",
        BASE.replace("  password: secret\n", ""),
        "numcfg.yaml:3:3: asterisk.password: missing required key 'password'",
    ),
    (
        "wrong-type-duration",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], ring_time: soon}"),
        "numcfg.yaml:12:39: queues.sales.ring_time: expected a number",
    ),
    (
        "duration-not-positive",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], max_wait: 0}"),
        "numcfg.yaml:12:38: queues.sales.max_wait: must be greater than 0",
    ),
    (
        "wrong-type-bool",
        more(NUMBER + "    rating: maybe\n"),
        "numcfg.yaml:16:13: numbers.paris.rating: expected true or false",
    ),
    (
        "wrong-type-mapping",
        more("numbers: paris\n"),
        "numcfg.yaml:13:10: numbers: expected a mapping of keys",
    ),
    (
        "extension-unquoted",
        BASE.replace('extension: "101"', "extension: 101"),
        "numcfg.yaml:9:33: employees.anna.extension: expected a string (YAML read a number",
    ),
    (
        "extension-too-long",
        BASE.replace('extension: "101"', 'extension: "10101"'),
        "numcfg.yaml:9:33: employees.anna.extension: an extension is 1 to 4 digits",
    ),
    (
        "extension-duplicate",
        BASE.replace('extension: "102"', 'extension: "101"'),
        "numcfg.yaml:10:35: employees.boris.extension: extension '101' is already employees.anna",
    ),
    (
        "bad-id",
        BASE.replace("  boris:", "  2boris:"),
        "numcfg.yaml:10:3: employees.2boris: invalid id '2boris'",
    ),
    (
        "distribution-literal",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], distribution: random}"),
        "numcfg.yaml:12:42: queues.sales.distribution: expected 'evenly', 'in_order' or",
    ),
    (
        "unknown-action",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], fallback: {action: dance}}"),
        "numcfg.yaml:12:47: queues.sales.fallback.action: unknown action 'dance'",
    ),
    (
        "missing-action",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], fallback: {queue: sales}}"),
        "numcfg.yaml:12:38: queues.sales.fallback.action: missing 'action'",
    ),
    (
        "action-missing-field",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], fallback: {action: queue}}"),
        "numcfg.yaml:12:38: queues.sales.fallback.queue: missing required key 'queue'",
    ),
    (
        "action-as-string",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], fallback: voicemail}"),
        "numcfg.yaml:12:38: queues.sales.fallback: expected a mapping",
    ),
    (
        "repeat-outside-ivr",
        BASE.replace("{members: [anna, boris]}", "{members: [anna], fallback: {action: repeat}}"),
        "numcfg.yaml:12:47: queues.sales.fallback.action: 'repeat' is only allowed as an IVR",
    ),
    (
        "unknown-queue-in-routing",
        more(NUMBER + "    routing: {queue: sales2}\n"),
        "numcfg.yaml:16:22: numbers.paris.routing.queue: unknown queue 'sales2'",
    ),
    (
        "unknown-queue-member",
        BASE.replace("[anna, boris]", "[anna, bob]"),
        "numcfg.yaml:12:27: queues.sales.members[1]: unknown employee 'bob'",
    ),
    (
        "unknown-ivr",
        more(NUMBER + "    routing: {ivr: main}\n"),
        "numcfg.yaml:16:20: numbers.paris.routing.ivr: unknown IVR menu 'main'",
    ),
    (
        "unknown-schedule",
        more(NUMBER + "    working_hours: {schedule: office}\n"),
        "numcfg.yaml:16:31: numbers.paris.working_hours.schedule: unknown schedule 'office'",
    ),
    (
        "unknown-menu-in-option",
        more('ivr_menus:\n  main:\n    options: {"2": {action: menu, menu: support}}\n'),
        "numcfg.yaml:15:41: ivr_menus.main.options.2.menu: unknown IVR menu 'support'",
    ),
    (
        "unknown-employee-in-voicemail",
        more(NUMBER + "    working_hours: {after_hours: {action: voicemail, employee: zoe}}\n"),
        "numcfg.yaml:16:64: numbers.paris.working_hours.after_hours.employee: unknown employee",
    ),
    (
        "menu-cycle",
        more(
            """\
            ivr_menus:
              a: {on_failure: {action: menu, menu: b}}
              b: {on_failure: {action: menu, menu: a}}
            """
        ),
        "numcfg.yaml:14:19: ivr_menus.a.on_failure: loop without a caller choice: menu a -> menu b",
    ),
    (
        "menu-queue-cycle",
        BASE.replace(
            "{members: [anna, boris]}", "{members: [anna], fallback: {action: menu, menu: m}}"
        )
        + "ivr_menus:\n  m: {on_failure: {action: queue, queue: sales}}\n",
        "numcfg.yaml:14:19: ivr_menus.m.on_failure: loop without a caller choice: menu m -> queue",
    ),
    (
        "ivr-option-key-not-keypad",
        more('ivr_menus:\n  main:\n    options: {"1a": {action: hangup}}\n'),
        "numcfg.yaml:15:15: ivr_menus.main.options.1a: '1a' may use only the keypad symbols",
    ),
    (
        "ivr-option-key-unquoted",
        more("ivr_menus:\n  main:\n    options: {1: {action: hangup}}\n"),
        "numcfg.yaml:15:15: ivr_menus.main.options.1: expected a string",
    ),
    (
        "extension-dialing-needs-greeting",
        more(NUMBER + "    routing: {extension_dialing: {enabled: true}}\n"),
        "numcfg.yaml:16:44: numbers.paris.routing.extension_dialing.enabled: extension dialing "
        "needs a greeting",
    ),
    (
        "sip-to-header-not-sip-pbx",
        more(NUMBER + "    routing: {sip_to_header: true}\n"),
        "numcfg.yaml:16:30: numbers.paris.routing.sip_to_header: sip_to_header needs connection: "
        "sip_pbx",
    ),
    (
        "prefix-plus",
        more(NUMBER + '    outbound: {prefix: "+33"}\n'),
        "numcfg.yaml:16:24: numbers.paris.outbound.prefix: '+33' may use only the keypad symbols",
    ),
    (
        "prefix-country-code",
        more(NUMBER + '    outbound: {prefix: "33"}\n'),
        "numcfg.yaml:16:24: numbers.paris.outbound.prefix: prefix '33' starts with the country "
        "calling code +33",
    ),
    (
        "prefix-country-code-long",
        more(NUMBER + '    outbound: {prefix: "1234"}\n'),
        "numcfg.yaml:16:24: numbers.paris.outbound.prefix: prefix '1234' starts with the country "
        "calling code +1",
    ),
    (
        "prefix-duplicate",
        more(
            NUMBER
            + '    outbound: {prefix: "*1*"}\n'
            + '  lyon:\n    number: "+33472000000"\n    outbound: {prefix: "*1*"}\n'
        ),
        "numcfg.yaml:19:24: numbers.lyon.outbound.prefix: prefix '*1*' is already used by "
        "numbers.paris",
    ),
    (
        "number-not-e164",
        more('numbers:\n  paris:\n    number: "0185000000"\n'),
        "numcfg.yaml:15:13: numbers.paris.number: '0185000000' is not an E.164 number: expected "
        "+<country><number>",
    ),
    (
        "number-impossible",
        more('numbers:\n  paris:\n    number: "+33123"\n'),
        "numcfg.yaml:15:13: numbers.paris.number: '+33123' is not a possible phone number",
    ),
    (
        "number-twice",
        more(NUMBER + '  lyon:\n    number: "+33185000000"\n'),
        "numcfg.yaml:17:13: numbers.lyon.number: +33185000000 is already the number of "
        "numbers.paris",
    ),
    (
        "mobile-outside-allowlist",
        BASE.replace("endpoint: PJSIP/101}", 'endpoint: PJSIP/101, mobile: "+4915112345678"}'),
        "numcfg.yaml:9:69: employees.anna.mobile: mobile +4915112345678 is not in "
        "account.external_allowlist",
    ),
    (
        "forward-outside-allowlist",
        more(NUMBER + '    working_hours: {after_hours: {action: forward, to: "+4930123456"}}\n'),
        "numcfg.yaml:16:56: numbers.paris.working_hours.after_hours.to: forward destination "
        "+4930123456 is not in account.external_allowlist",
    ),
    (
        "backup-outside-allowlist",
        more(NUMBER + '    backup_number: "+3225000000"\n'),
        "numcfg.yaml:16:20: numbers.paris.backup_number: backup number +3225000000 is not in "
        "account.external_allowlist",
    ),
    (
        "timezone",
        BASE.replace("account:\n", "account:\n  timezone: Europe/Pariss\n"),
        "numcfg.yaml:7:13: account.timezone: unknown time zone 'Europe/Pariss'",
    ),
    (
        "holiday-invalid-day",
        more('schedules:\n  office:\n    holidays: ["31.02"]\n'),
        "numcfg.yaml:15:16: schedules.office.holidays[0]: holiday '31.02' is not a real day DD.MM",
    ),
    (
        "holiday-format",
        more('schedules:\n  office:\n    holidays: ["12/25"]\n'),
        "numcfg.yaml:15:16: schedules.office.holidays[0]: holiday '12/25' is neither DD.MM",
    ),
    (
        "window-backwards",
        more('schedules:\n  office:\n    week: {mon: "18:00-09:00"}\n'),
        "numcfg.yaml:15:17: schedules.office.week.mon: window '18:00-09:00' ends before it starts",
    ),
    (
        "window-overlap",
        more('schedules:\n  office:\n    week: {mon: "09:00-13:00,12:00-18:00"}\n'),
        "numcfg.yaml:15:17: schedules.office.week.mon: windows in '09:00-13:00,12:00-18:00'",
    ),
    (
        "window-format",
        more('schedules:\n  office:\n    week: {mon: "9-18"}\n'),
        "numcfg.yaml:15:17: schedules.office.week.mon: start '9' is not a time of day HH:MM",
    ),
    (
        "day-key",
        more('schedules:\n  office:\n    week: {monday: "09:00-18:00"}\n'),
        "numcfg.yaml:15:12: schedules.office.week.monday: expected 'mon', 'tue'",
    ),
    (
        "allowed-employees-unknown",
        more(NUMBER + "    outbound: {allowed_employees: [anna, zoe]}\n"),
        "numcfg.yaml:16:42: numbers.paris.outbound.allowed_employees[1]: unknown employee 'zoe'",
    ),
    (
        "forward-caller-id",
        more(NUMBER + "    forward_caller_id: lyon\n"),
        "numcfg.yaml:16:24: numbers.paris.forward_caller_id: 'lyon' is neither a number id nor",
    ),
    (
        "greeting-not-sound-ref",
        more(NUMBER + "    routing: {greeting: welcome.wav}\n"),
        "numcfg.yaml:16:25: numbers.paris.routing.greeting: 'welcome.wav' is not a sound reference",
    ),
    (
        "hold-music-language",
        more(NUMBER + "    hold_music: {language: it}\n"),
        "numcfg.yaml:16:28: numbers.paris.hold_music.language: expected 'en', 'de'",
    ),
    (
        "missing-env-var",
        BASE.replace("password: secret", "password: ${NUMCFG_ARI_PASSWORD}"),
        "numcfg.yaml:5:13: asterisk.password: environment variable NUMCFG_ARI_PASSWORD is not set",
    ),
    (
        "trunk-without-number",
        BASE.replace("  password: secret\n", "  password: secret\n  trunk: PJSIP/provider\n"),
        "numcfg.yaml:6:10: asterisk.trunk: the trunk dial string needs {number}",
    ),
    (
        "allowed-employees-neither-all-nor-list",
        more(NUMBER + "    outbound: {allowed_employees: some}\n"),
        "numcfg.yaml:16:35: numbers.paris.outbound.allowed_employees: expected 'all' or a list",
    ),
    (
        "hold-music-not-mapping",
        more(NUMBER + "    hold_music: jazz\n"),
        "numcfg.yaml:16:17: numbers.paris.hold_music: expected a mapping of keys",
    ),
    (
        "count-at-least-one",
        more(NUMBER + "    callback: {attempts: 0}\n"),
        "numcfg.yaml:16:26: numbers.paris.callback.attempts: must be at least 1",
    ),
    (
        "ari-url-not-http",
        BASE.replace("http://127.0.0.1:8088/ari", "127.0.0.1:8088"),
        "numcfg.yaml:3:12: asterisk.ari_url: '127.0.0.1:8088' is not an http(s) URL",
    ),
    (
        "api-listen",
        more("api: {listen: '8090'}\n"),
        "numcfg.yaml:13:15: api.listen: '8090' is not HOST:PORT",
    ),
    (
        "store-url",
        more("store: /var/lib/numcfg.db\n"),
        "numcfg.yaml:13:8: store: '/var/lib/numcfg.db' is not a store URL",
    ),
    (
        "allowlist-pattern",
        BASE.replace('["+33*"]', '["33*"]'),
        "numcfg.yaml:7:24: account.external_allowlist[0]: '33*' is not a number pattern",
    ),
    (
        "crm-url-required",
        more("crm: {backend: webhook}\n"),
        "numcfg.yaml:13:6: crm.url: crm backend webhook needs a url",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_is_reported_at_its_position(text: str, expected: str) -> None:
    issues = issues_of(text)
    assert any(issue.startswith(expected) for issue in issues), "\n".join(issues)


def test_cases_cover_at_least_thirty_rules() -> None:
    assert len({case_id for case_id, _, _ in CASES}) >= 30


def test_base_config_is_valid() -> None:
    # Otherwise the cases above could pass for the wrong reason.
    load_config_text(BASE + NUMBER, env={}, base_dir="/srv/numcfg")


def test_all_issues_are_reported_at_once() -> None:
    text = more(NUMBER + "    routing: {queue: nope, ivr: nada}\n" + "    rooting: {}\n")
    # The unknown key does not hide the broken references: one pass shows all three.
    assert issues_of(text) == [
        "numcfg.yaml:16:22: numbers.paris.routing.queue: unknown queue 'nope'",
        "numcfg.yaml:16:33: numbers.paris.routing.ivr: unknown IVR menu 'nada'",
        "numcfg.yaml:17:5: numbers.paris.rooting: unknown key 'rooting' (did you mean 'routing'?)",
    ]


def test_a_bad_value_does_not_cause_follow_up_errors() -> None:
    # The bad greeting is dropped for the cross-checks, which must then not complain that
    # extension dialing lacks a greeting: the operator wrote one.
    text = more(
        NUMBER + "    routing: {greeting: welcome.wav, extension_dialing: {enabled: true}}\n"
    )
    assert issues_of(text) == [
        "numcfg.yaml:16:25: numbers.paris.routing.greeting: 'welcome.wav' is not a sound "
        "reference: expected sound:<name> or recording:<name>"
    ]


def test_cross_checks_elsewhere_still_run_after_a_bad_value() -> None:
    text = more(NUMBER + "    rating: maybe\n") + "  lyon:\n    number: '+33185000000'\n"
    assert issues_of(text) == [
        "numcfg.yaml:16:13: numbers.paris.rating: expected true or false",
        "numcfg.yaml:18:13: numbers.lyon.number: +33185000000 is already the number of "
        "numbers.paris",
    ]


def test_issue_fields_are_one_based_and_joined_by_newlines() -> None:
    text = BASE.replace("version: 1", "version: 2").replace("username: numcfg", "username: [x]")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="site.yaml", env={})
    first = caught.value.issues[0]
    assert (first.file, first.line, first.col, first.path) == ("site.yaml", 1, 10, "version")
    assert str(caught.value) == "\n".join(str(i) for i in caught.value.issues)
    assert len(caught.value.issues) == 2
