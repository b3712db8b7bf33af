"""The configuration file as pydantic models (SPEC section 3).

Every model forbids unknown keys, so a typo fails at load time instead of silently
falling back to a default during a live call. Models are frozen: a call in progress
keeps the Config object it started with, and a reload swaps in a new one.

Checks that need more than one value (references, cycles, uniqueness, allowlist) are
in checks.py; this module only knows the shape and the format of each value.
"""

from __future__ import annotations

import datetime as dt
import functools
import grp
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    model_validator,
)

from ..policy import hours, transfer
from ..policy.hours import Schedule as HoursSchedule
from ..policy.types import Distribution
from . import formats


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1; "ring_time: true" is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


Seconds = Annotated[float, BeforeValidator(_not_bool), Field(gt=0)]
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]
E164 = Annotated[str, AfterValidator(formats.e164)]
Keypad = Annotated[str, AfterValidator(formats.keypad)]
Ident = Annotated[str, AfterValidator(formats.identifier)]
SoundRef = Annotated[str, AfterValidator(formats.sound_ref)]
TimeZone = Annotated[str, AfterValidator(formats.timezone)]
Extension = Annotated[str, Field(pattern=r"^[0-9]{1,4}$")]
DigitKey = Annotated[str, AfterValidator(formats.keypad)]
HttpUrl = Annotated[str, AfterValidator(formats.http_url)]
ListenAddress = Annotated[str, AfterValidator(formats.listen_address)]
StoreUrl = Annotated[str, AfterValidator(formats.store_url)]
AllowPattern = Annotated[str, AfterValidator(formats.allow_pattern)]
EmailAddress = Annotated[str, AfterValidator(formats.email_address)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _parsable_by(parse: Callable[[str], object]) -> Callable[[str], str]:
    """Validate with the same parser policy code uses, but keep the text as written."""

    def check(value: str) -> str:
        parse(value)
        return value

    return check


Windows = Annotated[str, AfterValidator(_parsable_by(hours.parse_windows))]
Holiday = Annotated[
    str,
    # YAML reads an unquoted 2027-04-05 as a date; accept it as the ISO text it was.
    BeforeValidator(lambda v: v.isoformat() if isinstance(v, dt.date) else v),
    AfterValidator(_parsable_by(hours.parse_holiday)),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- actions -------------------------------------------------------------------------


class QueueAction(_Model):
    action: Literal["queue"]
    queue: Ident


class MenuAction(_Model):
    action: Literal["menu"]
    menu: Ident


class EmployeeAction(_Model):
    action: Literal["employee"]
    employee: Ident


class VoicemailAction(_Model):
    action: Literal["voicemail"]
    employee: Ident | None = None  # None: the number's own mailbox


class ForwardAction(_Model):
    action: Literal["forward"]
    to: E164


class RepeatAction(_Model):
    """Replays the menu; meaningful only as an IVR option (checked in checks.py)."""

    action: Literal["repeat"]


class HangupAction(_Model):
    action: Literal["hangup"]
    message: SoundRef | None = None


Action = Annotated[
    QueueAction
    | MenuAction
    | EmployeeAction
    | VoicemailAction
    | ForwardAction
    | RepeatAction
    | HangupAction,
    Field(discriminator="action"),
]

_HANGUP = HangupAction(action="hangup")


# --- top-level sections ----------------------------------------------------------------


class WorkdayCodes(_Model):
    """Feature codes dialed from an employee's phone (Stasis(numcfg,workday,...))."""

    start: Keypad = "*71"
    pause: Keypad = "*72"
    resume: Keypad = "*73"
    end: Keypad = "*74"


class TransferCodes(_Model):
    """Keypad codes an employee presses during a conversation (SPEC section 8): listened
    to on employees' legs only, never on the caller's."""

    blind: str = "##"
    attended: str = "*2"
    cancel: str = "*0"

    @model_validator(mode="after")
    def _usable(self) -> TransferCodes:
        problem = transfer.codes_problem(
            transfer.TransferCodes(blind=self.blind, attended=self.attended, cancel=self.cancel)
        )
        if problem:
            raise ValueError(problem)
        return self


class AsteriskSettings(_Model):
    ari_url: HttpUrl
    username: str
    password: str = Field(repr=False)  # repr=False keeps it out of logs and tracebacks
    app: Ident = "numcfg"
    trunk: str = "PJSIP/{number}@provider"  # {number} is replaced by an E.164 number
    workday_codes: WorkdayCodes = WorkdayCodes()
    transfer_codes: TransferCodes = TransferCodes()
    # The other numcfg of an active pair on this Asterisk (its asterisk.app): calls this
    # one cannot take (down, draining) go to it before the backup number.
    partner_app: Ident | None = None

    @model_validator(mode="after")
    def _partner_is_another_app(self) -> AsteriskSettings:
        if self.partner_app is not None and self.partner_app == self.app:
            raise ValueError(f"partner_app: {self.partner_app!r} is this node's own app")
        return self

    # How long a transfer's target rings before the caller goes back (SPEC section 8).
    transfer_ring_time: Seconds = 20


class ApiSettings(_Model):
    listen: ListenAddress = "127.0.0.1:8090"
    token: str | None = Field(default=None, repr=False)


Plan = Literal["free", "project_plus", "start_plus", "crm_plus", "standard", "professional"]


class AccountSettings(_Model):
    plan: Plan = "professional"
    timezone: TimeZone = "UTC"
    admin_email: str | None = None
    smtp: str | None = None
    # From: of numcfg's emails (a relay may only accept its own domain); None: admin_email.
    mail_from: EmailAddress | None = None
    # fnmatch patterns; empty means no external destination at all, the safe default.
    external_allowlist: list[AllowPattern] = []


def _asterisk_path(value: str) -> str:
    # Written into numcfg-moh.conf as `directory=`: Asterisk resolves a relative path against
    # its own working directory, and a newline or ';' would inject or cut a config line.
    if not value.startswith("/"):
        raise ValueError(f"{value!r}: must be an absolute path (as Asterisk sees it)")
    if ";" in value or not value.isprintable():
        raise ValueError(f"{value!r}: must not contain ';' or control characters")
    return value


def _existing_group(value: object) -> int:
    # A name is looked up once, at load: a typo is a config error at its line, not a
    # failed upload later. A number is taken as it is (a group of Asterisk's container or
    # chroot that this host does not name).
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value}: a group id is not negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r}: a group name or id")
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"{value!r}: no such group on this host (a group id also works)") from None


class StorageSettings(_Model):
    # The loader fills the relative ones beside the config file (see Config._defaults).
    recordings: str = "recordings"
    voicemail: str = "voicemail"
    # Converted hold music, one folder per number: <hold_music>/<number-id>/music.wav.
    hold_music: str = "hold-music"
    # The same folder as Asterisk sees it (a chroot, container or NFS mount may differ);
    # None: Asterisk sees the same path as numcfg.
    hold_music_asterisk: Annotated[str, AfterValidator(_asterisk_path)] | None = None
    # Where numcfg writes numcfg-moh.conf (musiconhold.conf #tryincludes it);
    # None: <hold_music>/numcfg-moh.conf, for a symlink from /etc/asterisk.
    moh_conf: str | None = None
    # The group Asterisk runs with (a name or a gid): hold-music uploads and numcfg-moh.conf
    # are then readable by that group only (0640, folders 0750). None: readable by every
    # user (0644), as Asterisk, running as its own user, must read them.
    group: Annotated[int, BeforeValidator(_existing_group)] | None = None
    # Call details and callback jobs the store could not take yet (it was locked, full or
    # unreachable), one file per node, written to the store once it answers again.
    spool: str = "spool"
    # Recordings, voicemail and transcripts older than this many days are deleted (the call
    # details keep a note: `purged`); None keeps them for ever.
    keep_days: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None


class CrmRateLimit(_Model):
    # A Bitrix24 portal's leaky bucket: `burst` requests at once, then `per_second`
    # (the defaults are the cloud plans'; Enterprise plans allow 5/s and bursts of 250).
    per_second: Seconds = 2.0
    burst: Count = 50


class CrmSettings(_Model):
    backend: Literal["builtin", "bitrix24", "webhook"] = "builtin"
    url: str | None = None
    timeout: Seconds = 1.0
    # webhook: key of the X-Numcfg-Signature HMAC; usually ${NUMCFG_CRM_SECRET}.
    secret: str | None = Field(default=None, repr=False)
    # bitrix24: requests are paced client-side to stay inside the portal's limits.
    rate_limit: CrmRateLimit = CrmRateLimit()
    # bitrix24: whose work day `skip_absent_employees` follows: numcfg's own (CLI, API,
    # feature codes) or the portal's (timeman: the day opened, paused or closed there).
    workday: Literal["numcfg", "bitrix24"] = "numcfg"
    # bitrix24: `webhook` (url is an inbound webhook) or `app`, a local application: url is
    # the portal (https://yourcompany.bitrix24.com), OAuth tokens are kept in the store and
    # refreshed, and click-to-call (OnExternalCallStart) reaches numcfg at handler_url.
    auth: Literal["webhook", "app"] = "webhook"
    client_id: str | None = None
    client_secret: str | None = Field(default=None, repr=False)
    oauth_url: HttpUrl = "https://oauth.bitrix.info/oauth/token/"
    # The public URL of numcfg's /bitrix24/events (behind your reverse proxy), which the
    # local application's install and events are sent to.
    handler_url: HttpUrl | None = None
    # The portal user calls nobody was rung for are registered in (default: the
    # webhook's own user; with `app`, the user who installed it).
    default_user_id: str | None = None


Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]  # ISO 639-1, as STT servers take it


class TranscriptionSettings(_Model):
    """How recordings are transcribed after the call (SPEC section 10), off the call path."""

    # pocketsphinx: embedded and offline, English only (its wheel ships the en-us model);
    # openai: any OpenAI-compatible server (POST <url>/audio/transcriptions).
    backend: Literal["pocketsphinx", "openai"] = "pocketsphinx"
    url: HttpUrl | None = None  # openai: the API base, e.g. http://127.0.0.1:8000/v1
    model: str = "whisper-1"
    api_key: str | None = Field(default=None, repr=False)  # usually ${NUMCFG_STT_KEY}
    language: Language | None = None  # None: the number's language
    # The plan's paid add-on: minutes transcribed per calendar month (account timezone);
    # None: unlimited. A recording that would go past it is skipped_quota.
    monthly_minutes: Annotated[float, BeforeValidator(_not_bool), Field(ge=0)] | None = None
    # One try (a request, or a pocketsphinx decode) longer than this is a failure.
    timeout: Seconds = 300
    # Tries per recording (the first one included), `retry_delay` apart, doubling each time.
    attempts: Count = 3
    retry_delay: Seconds = 60


class JobSettings(_Model):
    """Background jobs shared by the nodes of one store (callbacks, transcriptions)."""

    # A node holds a job it took this long without renewing it (it renews every third of
    # this while it works): a node that dies, or loses the store that long, has its jobs
    # taken over by another node this long after its last renewal.
    lease: Seconds = 60


NodeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]


class Employee(_Model):
    name: str
    extension: Extension
    endpoint: str  # dial string of the desk phone, e.g. PJSIP/101
    mobile: E164 | None = None
    # bitrix24: her Bitrix24 user id, mapping CRM responsibles to her and back. Unset:
    # the portal user whose inner phone number (UF_PHONE_INNER) is her extension.
    crm_user_id: str | None = None
    # Her voicemail is emailed here, the message attached (needs account.smtp).
    email: EmailAddress | None = None


def _key_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _one_key(value: str) -> str:
    if len(value) != 1:
        raise ValueError(f"{value!r}: expected one key (0-9, * or #)")
    return value


class VirtualHold(_Model):
    """`queues.<id>.virtual_hold` (SPEC section 9): after `after` seconds of waiting the
    caller is offered, once a minute, to press `key` and be called back without losing
    their place in the line."""

    # `key: 1` unquoted is YAML's integer; it means the key "1" all the same.
    key: Annotated[Keypad, BeforeValidator(_key_text), AfterValidator(_one_key)] = "1"
    after: Seconds = 30


class Queue(_Model):
    members: Annotated[list[Ident], Field(min_length=1)]
    distribution: Distribution = Distribution.EVENLY
    ring_time: Seconds = 15
    max_wait: Seconds = 120
    fallback: Action = _HANGUP
    announce_position: bool = False
    # Pause a member who lets this many queue calls in a row ring out (SPEC section 9).
    auto_pause_after: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    virtual_hold: VirtualHold | None = None  # None: no callback offer while waiting


class IvrMenu(_Model):
    prompt: SoundRef | None = None
    first_digit_timeout: Seconds = 5
    inter_digit_timeout: Seconds = 3
    retries: Count = 3
    options: dict[DigitKey, Action] = {}
    on_failure: Action = _HANGUP


def _known_calendar(value: HolidayCalendar) -> HolidayCalendar:
    # Checked at load time (and the calendar of this year built once), not during a call.
    hours.public_holidays(value.country, value.subdivision, dt.date.today().year)
    return value


class HolidayCalendar(_Model):
    """`holidays: {country: FR, subdivision: null, dates: ["24.12"]}`: a country's public
    holidays (a maintained calendar), plus days of the company's own."""

    country: Annotated[str, AfterValidator(str.upper)]
    subdivision: str | None = None
    dates: list[Holiday] = []


def _holidays_kind(value: Any) -> str:
    return "calendar" if isinstance(value, dict | HolidayCalendar) else "days"


# Tagged, so an error in one day of a list is reported at that day (holidays[0]).
Holidays = Annotated[
    Annotated[list[Holiday], Tag("days")]
    | Annotated[HolidayCalendar, AfterValidator(_known_calendar), Tag("calendar")],
    Discriminator(_holidays_kind),
]


class Schedule(_Model):
    timezone: TimeZone = "UTC"  # the loader puts account.timezone here when absent
    week: dict[Day, Windows] = {}
    # A list of days (SPEC section 3), or a country's calendar plus days.
    holidays: Holidays = []

    @functools.cached_property
    def hours(self) -> HoursSchedule:
        """The schedule in policy.hours' terms, built once per loaded config (calls ask
        `is_open` with it; the config never changes under a call)."""
        calendar = self.holidays if isinstance(self.holidays, HolidayCalendar) else None
        days = calendar.dates if calendar is not None else self.holidays
        return HoursSchedule(
            timezone=self.timezone,
            week=dict(self.week),
            holidays=tuple(days),
            country=calendar.country if calendar else None,
            subdivision=calendar.subdivision if calendar else None,
        )


# --- numbers ---------------------------------------------------------------------------


class ExtensionDialing(_Model):
    enabled: bool = False
    ring_time: Seconds = 20
    no_answer: Literal["continue", "forward_to_mobile", "voicemail"] = "continue"


class CrmResponsible(_Model):
    enabled: bool = False
    no_answer: Literal["queue", "forward_to_mobile", "voicemail"] = "queue"


class Routing(_Model):
    sip_to_header: bool = False
    greeting: SoundRef | None = None
    extension_dialing: ExtensionDialing = ExtensionDialing()
    ivr: Ident | None = None
    crm_responsible: CrmResponsible = CrmResponsible()
    queue: Ident | None = None
    skip_absent_employees: bool = True


class WorkingHours(_Model):
    schedule: Ident | None = None  # None: always open
    after_hours: Action = _HANGUP


class NumberCrm(_Model):
    create_lead: Literal["incoming", "outgoing", "both", "never"] = "never"
    lead_source: str = "CALL"
    exceptions: list[E164] = []
    reassign_lead_on_transfer: bool = False
    # bitrix24: also post each call to the employee's chat (ADD_TO_CHAT); the call card and
    # the CRM timeline show it either way, so it is off unless wanted.
    add_to_chat: bool = False


class Recording(_Model):
    record_all: bool = False
    warning: bool = True  # announcing recording is the lawful default where it is on
    transcribe: bool = False


class Outbound(_Model):
    selectable: bool = False
    prefix: Keypad | None = None
    allowed_employees: Literal["all"] | list[Ident] = "all"


class Callback(_Model):
    attempts: Count = 3
    delay: Seconds = 300


HoldLanguage = Literal["en", "de", "ru", "uk", "es", "pt", "fr"]


class HoldMusicLanguage(_Model):
    language: HoldLanguage = "en"


class HoldMusicFile(_Model):
    file: str  # relative paths are resolved against the config file's folder


def _hold_music_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "file" if "file" in value else "language"
    return "file" if isinstance(value, HoldMusicFile) else "language"


HoldMusic = Annotated[
    Annotated[HoldMusicLanguage, Tag("language")] | Annotated[HoldMusicFile, Tag("file")],
    Discriminator(_hold_music_kind),
]


class Number(_Model):
    number: E164
    name: str | None = None
    connection: Literal["rented", "sip_pbx", "sip_cloud"] = "rented"
    routing: Routing = Routing()
    working_hours: WorkingHours = WorkingHours()
    crm: NumberCrm = NumberCrm()
    recording: Recording = Recording()
    rating: bool = False
    outbound: Outbound = Outbound()
    callback: Callback | None = None  # None: missed calls create no callback job
    backup_number: E164 | None = None
    forward_caller_id: str | None = None  # a number id or an E.164 number (checks.py)
    hold_music: HoldMusic = HoldMusicLanguage()
    # Language of numcfg's own prompts (warning, not in service, rating...). None: the
    # hold-music language when set, else English.
    language: HoldLanguage | None = None

    @property
    def spoken_language(self) -> str:
        """The language callers speak on this number: its prompts' language, else its hold
        music's, else English (what transcription assumes when transcription.language is
        null; calls.inbound.flow.number_language picks prompts by the same rule)."""
        if self.language:
            return self.language
        if isinstance(self.hold_music, HoldMusicLanguage):
            return self.hold_music.language
        return "en"

    @model_validator(mode="before")
    @classmethod
    def _hold_music_beside_config(cls, data: Any, info: ValidationInfo) -> Any:
        base = (info.context or {}).get("base_dir")
        music = data.get("hold_music") if isinstance(data, dict) else None
        if base is None or not isinstance(music, dict) or not _relative(music.get("file")):
            return data
        return data | {"hold_music": music | {"file": str(Path(base) / music["file"])}}


# --- root ------------------------------------------------------------------------------


class Config(_Model):
    version: Literal[1]
    asterisk: AsteriskSettings
    store: StoreUrl = "sqlite:///numcfg.sqlite3"
    api: ApiSettings = ApiSettings()
    account: AccountSettings = AccountSettings()
    storage: StorageSettings = StorageSettings()
    crm: CrmSettings = CrmSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    jobs: JobSettings = JobSettings()
    # This numcfg's name in the shared store: its employee claims, jobs, open calls and
    # spool file. Read at start only. None: <hostname>/<asterisk.app>; two numcfg on one
    # host with the same app name (two Asterisks) need one each (e.g. ${NUMCFG_NODE}).
    node: NodeName | None = None
    employees: dict[Ident, Employee] = {}
    queues: dict[Ident, Queue] = {}
    ivr_menus: dict[Ident, IvrMenu] = {}
    schedules: dict[Ident, Schedule] = {}
    numbers: dict[Ident, Number] = {}

    # Where the config came from; not a key of the file, so not in the JSON Schema.
    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Place the defaults that depend on other values or on where the file is.

        A service started by systemd runs in '/', so paths relative to the working
        directory would land somewhere surprising; paths beside the file do not.
        """
        if not isinstance(data, dict):
            return data
        data = _schedules_in_account_zone(dict(data))  # a copy: the input stays as parsed
        base = (info.context or {}).get("base_dir")
        if base is None:
            return data
        base = Path(base)
        data.setdefault("store", f"sqlite:///{base}/numcfg.sqlite3")
        storage = data.get("storage", {})
        if isinstance(storage, dict):
            storage = dict(storage)
            for name, default in (
                ("recordings", "recordings"),
                ("voicemail", "voicemail"),
                ("hold_music", "hold-music"),
                ("moh_conf", None),
                ("spool", "spool"),
            ):
                value = storage.get(name, default)
                if _relative(value):
                    storage[name] = str(base / value)
            data["storage"] = storage
        return data

    def employee_by_extension(self, extension: str) -> str | None:
        for employee_id, employee in self.employees.items():
            if employee.extension == extension:
                return employee_id
        return None


def _schedules_in_account_zone(data: dict[str, Any]) -> dict[str, Any]:
    """A schedule without its own timezone follows the account's.

    Filled in here rather than left None so that policy code reads one field.
    """
    account, schedules = data.get("account"), data.get("schedules")
    zone = account.get("timezone", "UTC") if isinstance(account, dict) else "UTC"
    if not isinstance(schedules, dict) or not isinstance(zone, str):
        return data
    try:
        formats.timezone(zone)
    except ValueError:
        return data  # reported at account.timezone; repeating it per schedule is noise
    filled = {
        sid: ({"timezone": zone} | schedule) if isinstance(schedule, dict) else schedule
        for sid, schedule in schedules.items()
    }
    return data | {"schedules": filled}


def _relative(path: Any) -> bool:
    return isinstance(path, str) and not Path(path).is_absolute()
