"""BPMN timer definitions: ISO-8601 dates, durations, repeating intervals and Quartz cron.

Accepted forms, as Camunda Modeler writes them (SpiffWorkflow-style files may wrap any of them in
one pair of Python quotes, which is stripped):

* ``timeDate``: ``2030-01-01T10:00:00Z``, offsets, fractions, ``2030-01-01`` (midnight UTC);
  naive values are taken as UTC.
* ``timeDuration``: ``P1Y2M3DT4H5M6.5S``, ``P2W``, ``PT0S``; years and months are calendar units.
* ``timeCycle``: ``R3/PT10M``, ``R/PT1H`` (unbounded), ``R3/<start>/PT1H``, ``R/PT1H/<end>``
  (no firing after end), ``R3/<start>/<end>`` (interval = end - start, as Camunda), or a Quartz
  cron expression ``sec min hour day-of-month month day-of-week [year]``.

Quartz subset: ``*``, ``?``, ``a-b`` (wrapping ``22-2`` too), ``a/n``, ``a-b/n``, lists, month and
weekday names, ``L`` as day-of-month, ``L`` / ``nL`` as day-of-week (Saturday / last weekday n of
the month). Weekdays are Quartz's 1=SUN..7=SAT. ``W``, ``#`` and ``L-n`` are refused, not guessed.

Dependencies: none, on purpose. ``isodate`` and ``aniso8601`` parse durations, but neither gives
"calendar months clamped to month end, everything UTC" without extra glue (aniso8601 turns months
into 30 days unless python-dateutil is installed) and the duration grammar is one regex here.
``croniter`` (maintained again under pallets-eco after being declared abandoned in 2024/2025) does
accept seconds-first six/seven-field expressions, but it numbers weekdays the Unix way (0/7=SUN,
1=MON), so Quartz's ``1`` silently means Monday, it ships no type information for ``mypy
--strict`` and it pulls in python-dateutil. ``cronsim`` has no seconds field. The Quartz subset
below is small, bounded and tested. SpiffWorkflow's own timer parser reads naive times as local
time and calls ``datetime.now``, so it is not used either.

Time is always an argument: nothing here reads the clock.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from typing import Literal

from engine.core.clock import ensure_utc
from engine.core.errors import EngineError

__all__ = [
    "CronSchedule",
    "Duration",
    "TimerDefinition",
    "TimerError",
    "TimerKind",
    "parse_cron",
    "parse_datetime",
    "parse_duration",
    "parse_timer",
]

TimerKind = Literal["date", "duration", "cycle"]

MAX_TEXT = 200
_KINDS: dict[str, TimerKind] = {
    "timeDate": "date",
    "timeDuration": "duration",
    "timeCycle": "cycle",
}


class TimerError(EngineError):
    """A timer definition that cannot be parsed or evaluated."""


def _name(text: str) -> str:
    # Long inputs are refused anyway; keep error messages readable.
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _clean(text: str) -> str:
    """Strip whitespace and one pair of matching quotes (SpiffWorkflow writes Python strings)."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"it is longer than {MAX_TEXT} characters")
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        stripped = stripped[1:-1].strip()
    return stripped


# --- durations ---------------------------------------------------------------------------------

_NUM = r"\d{1,9}(?:[.,]\d{1,9})?"
_DURATION_RE = re.compile(
    rf"P(?:(?P<years>\d{{1,4}})Y)?(?:(?P<months>\d{{1,6}})M)?"
    rf"(?:(?P<weeks>{_NUM})W)?(?:(?P<days>{_NUM})D)?"
    # The lookahead refuses a bare "T" with no time part.
    rf"(?:T(?=\d)(?:(?P<hours>{_NUM})H)?(?:(?P<minutes>{_NUM})M)?(?:(?P<seconds>{_NUM})S)?)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Duration:
    """An ISO-8601 duration: calendar years and months, plus an exact remainder."""

    years: int = 0
    months: int = 0
    rest: timedelta = field(default_factory=timedelta)

    def __post_init__(self) -> None:
        if self.years < 0 or self.months < 0 or self.rest < timedelta(0):
            raise TimerError(f"negative durations are not supported: {self!r}")

    def add_to(self, dt: datetime) -> datetime:
        """``dt`` plus this duration, in UTC; the day is clamped to the target month's end."""
        base = ensure_utc(dt)
        try:
            if self.years or self.months:
                index = base.month - 1 + self.months + 12 * self.years
                year, month = base.year + index // 12, index % 12 + 1
                if year > MAXYEAR:
                    raise OverflowError
                day = min(base.day, monthrange(year, month)[1])
                base = base.replace(year=year, month=month, day=day)
            return base + self.rest
        except OverflowError:
            raise TimerError(f"{base.isoformat()} plus {self!r} is out of range") from None

    def scaled(self, factor: int) -> Duration:
        """This duration ``factor`` times: anchored cycles use it so month ends do not drift."""
        return Duration(self.years * factor, self.months * factor, self.rest * factor)

    def total_seconds_approx(self) -> float:
        """Seconds with average calendar lengths; for validation and ordering only."""
        days = self.years * 365.2425 + self.months * 30.436875
        return days * 86400.0 + self.rest.total_seconds()


def _duration(text: str) -> Duration:
    """Parse a cleaned duration; raises ValueError with a reason (callers add the text)."""
    if text.startswith("-"):
        raise ValueError("negative durations are not supported")
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError("expected an ISO-8601 duration such as PT5M or P1DT2H")
    parts = match.groupdict()
    if all(value is None for value in parts.values()):
        raise ValueError("a duration needs at least one component")

    def num(key: str) -> float:
        value = parts[key]
        return float(value.replace(",", ".")) if value else 0.0

    try:
        rest = timedelta(
            weeks=num("weeks"),
            days=num("days"),
            hours=num("hours"),
            minutes=num("minutes"),
            seconds=num("seconds"),
        )
    except OverflowError:
        raise ValueError("duration is too large") from None
    return Duration(int(parts["years"] or 0), int(parts["months"] or 0), rest)


def parse_duration(text: str) -> Duration:
    """Parse an ISO-8601 duration (``P1Y2M3DT4H5M6.5S``, ``P2W``, ``PT0S``)."""
    try:
        return _duration(_clean(text))
    except ValueError as exc:
        raise TimerError(f"invalid duration {_name(text)}: {exc}") from None


# --- dates -------------------------------------------------------------------------------------


def _datetime(text: str) -> datetime:
    if not text or not text[0].isdigit():
        # fromisoformat would accept odd leading forms; an ISO date always starts with the year.
        raise ValueError("expected an ISO-8601 date or date-time")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an ISO-8601 date or date-time") from None
    return ensure_utc(value)


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 date-time (or date: midnight) as aware UTC; naive input is UTC."""
    try:
        return _datetime(_clean(text))
    except ValueError as exc:
        raise TimerError(f"invalid date {_name(text)}: {exc}") from None


# --- Quartz cron -------------------------------------------------------------------------------

_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_WEEKDAYS = {
    name: i + 1 for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
}
_YEAR_MIN, _YEAR_MAX = 1970, 2199
# Without a year field every satisfiable schedule fires within a few years (Feb 29 needs <= 8):
# the horizon only stops a search that can never succeed.
_HORIZON_YEARS = 100
_MAX_STEPS = 100_000


def _quartz_weekday(day: date) -> int:
    """Quartz numbering: 1=SUN .. 7=SAT (Python's weekday() is 0=MON .. 6=SUN)."""
    return (day.weekday() + 1) % 7 + 1


def _value(token: str, lo: int, hi: int, names: dict[str, int] | None) -> int:
    upper = token.upper()
    if names is not None and upper in names:
        return names[upper]
    if not token.isdigit() or len(token) > 4:
        raise ValueError(f"{token!r} is not a number")
    number = int(token)
    if not lo <= number <= hi:
        raise ValueError(f"{number} is outside {lo}-{hi}")
    return number


def _field(token: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """The values one comma-separated cron field allows."""
    values: set[int] = set()
    for part in token.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= hi - lo + 1:
                raise ValueError(f"bad increment in {part!r}")
            step = int(step_text)
        if base == "*":
            start, stop = lo, hi
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _value(first, lo, hi, names), _value(last, lo, hi, names)
            if stop < start:
                # Quartz wraps ranges such as 22-2 (hours) or FRI-MON.
                stop += hi - lo + 1
        else:
            start = _value(base, lo, hi, names)
            # "5/15" runs to the end of the range; a plain "5" is just 5.
            stop = hi if slash else start
        span = hi - lo + 1
        values.update(lo + (v - lo) % span for v in range(start, stop + 1, step))
    return frozenset(values)


def _next_in(values: frozenset[int], current: int) -> int | None:
    """The smallest allowed value >= current, or None."""
    candidates = [v for v in values if v >= current]
    return min(candidates) if candidates else None


@dataclass(frozen=True)
class CronSchedule:
    """A parsed Quartz cron expression; all times are UTC."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    days: frozenset[int] | None = None  # None: any day of the month
    last_day_of_month: bool = False
    weekdays: frozenset[int] | None = None  # Quartz numbers; None: any weekday
    last_weekday: int | None = None  # "6L": the month's last Friday
    years: frozenset[int] | None = None  # None: every year

    def _day_matches(self, day: date) -> bool:
        month_end = monthrange(day.year, day.month)[1]
        if self.last_day_of_month and day.day != month_end:
            return False
        if self.days is not None and day.day not in self.days:
            return False
        weekday = _quartz_weekday(day)
        if self.last_weekday is not None:
            return weekday == self.last_weekday and day.day + 7 > month_end
        return self.weekdays is None or weekday in self.weekdays

    def next_after(self, after: datetime) -> datetime | None:
        """The first matching second strictly after ``after``; None once the years run out."""
        t = ensure_utc(after).replace(microsecond=0) + timedelta(seconds=1)
        last_year = max(self.years) if self.years else t.year + _HORIZON_YEARS
        last_year = min(last_year, MAXYEAR - 1)  # datetime cannot step past year 9999
        for _ in range(_MAX_STEPS):
            if t.year > last_year:
                break
            if self.years is not None and t.year not in self.years:
                year = _next_in(self.years, t.year)
                if year is None:
                    return None
                t = datetime(year, 1, 1, tzinfo=UTC)
                continue
            if t.month not in self.months:
                month = _next_in(self.months, t.month)
                t = (
                    datetime(t.year + 1, 1, 1, tzinfo=UTC)
                    if month is None
                    else datetime(t.year, month, 1, tzinfo=UTC)
                )
                continue
            if not self._day_matches(t.date()):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
                continue
            hour = _next_in(self.hours, t.hour)
            if hour is None:
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0, second=0)
            minute = _next_in(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if minute != t.minute:
                t = t.replace(minute=minute, second=0)
            second = _next_in(self.seconds, t.second)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        if self.years is not None:
            return None
        raise TimerError(f"cron expression {_name(self.text)} never fires")


def _cron(text: str) -> CronSchedule:
    fields = text.split()
    if len(fields) == 5:
        raise ValueError("Quartz cron needs 6 or 7 fields (seconds first); got 5 (Unix cron?)")
    if len(fields) not in (6, 7):
        raise ValueError(f"Quartz cron needs 6 or 7 fields, got {len(fields)}")
    sec, minute, hour, dom, month, dow = fields[:6]
    dom_any, dow_any = dom in ("?", "*"), dow in ("?", "*")
    if dom == "?" and dow == "?":
        raise ValueError("'?' may stand in day-of-month or day-of-week, not both")
    if not dom_any and not dow_any:
        raise ValueError("give day-of-month or day-of-week, and '?' in the other")
    for special in ("W", "#"):
        if special in (dom + dow).upper():
            raise ValueError(f"'{special}' is not supported")

    days: frozenset[int] | None = None
    last_day = False
    if dom.upper() == "L":
        last_day = True
    elif not dom_any:
        if "L" in dom.upper():
            raise ValueError("'L' must stand alone in day-of-month")
        days = _field(dom, 1, 31)

    weekdays: frozenset[int] | None = None
    last_weekday: int | None = None
    if dow.upper() == "L":
        weekdays = frozenset({7})  # Quartz: a lone L in day-of-week is Saturday
    elif dow.upper().endswith("L"):
        last_weekday = _value(dow[:-1], 1, 7, _WEEKDAYS)
    elif not dow_any:
        weekdays = _field(dow, 1, 7, _WEEKDAYS)

    months = _field(month, 1, 12, _MONTHS)
    if days is not None and not any(min(days) <= monthrange(2000, m)[1] for m in months):
        raise ValueError("no month in the schedule has that day")
    years = (
        None if len(fields) == 6 or fields[6] == "*" else _field(fields[6], _YEAR_MIN, _YEAR_MAX)
    )
    return CronSchedule(
        text=text,
        seconds=_field(sec, 0, 59),
        minutes=_field(minute, 0, 59),
        hours=_field(hour, 0, 23),
        months=months,
        days=days,
        last_day_of_month=last_day,
        weekdays=weekdays,
        last_weekday=last_weekday,
        years=years,
    )


def parse_cron(text: str) -> CronSchedule:
    """Parse a Quartz cron expression (``0 0/5 * * * ?``)."""
    try:
        return _cron(_clean(text))
    except ValueError as exc:
        raise TimerError(f"invalid cron expression {_name(text)}: {exc}") from None


# --- timer definitions -------------------------------------------------------------------------

_REPEAT_RE = re.compile(r"R(\d{0,9})", re.IGNORECASE)


@dataclass(frozen=True)
class TimerDefinition:
    """One parsed BPMN timer event definition."""

    kind: TimerKind
    text: str
    date: datetime | None = None  # timeDate's moment, or a cycle's explicit first firing
    duration: Duration | None = None  # timeDuration's delay, or an ISO cycle's interval
    end: datetime | None = None  # ISO cycle interval/end: no firing after this
    repetitions: int | None = 1  # None: unbounded
    cron: CronSchedule | None = None

    def _past_end(self, due: datetime) -> bool:
        return self.end is not None and due > self.end

    def first_due(self, start: datetime) -> datetime | None:
        """When the timer first fires, for a timer started at ``start``; None if it never does."""
        start = ensure_utc(start)
        if self.kind == "date":
            return self.date
        if self.kind == "duration":
            return self._interval().add_to(start)
        if self.repetitions == 0:
            return None
        if self.cron is not None:
            return self.cron.next_after(start)
        due = self.date if self.date is not None else self._interval().add_to(start)
        return None if self._past_end(due) else due

    def next_due(self, previous_due: datetime, fired: int) -> datetime | None:
        """The firing after the ``fired``-th one (at ``previous_due``); None when exhausted."""
        if fired < 1:
            raise TimerError(f"fired counts firings so far and must be >= 1, got {fired}")
        if self.kind != "cycle":
            return None
        if self.repetitions is not None and fired >= self.repetitions:
            return None
        if self.cron is not None:
            return self.cron.next_after(previous_due)
        interval = self._interval()
        # From an explicit start, count from the anchor so P1M from Jan 31 keeps month ends.
        due = (
            interval.scaled(fired).add_to(self.date)
            if self.date is not None
            else interval.add_to(previous_due)
        )
        return None if self._past_end(due) else due

    def _interval(self) -> Duration:
        if self.duration is None:
            raise TimerError(f"timer {_name(self.text)} has no duration")
        return self.duration


def _positive(interval: Duration) -> Duration:
    if interval.total_seconds_approx() <= 0:
        raise ValueError("a cycle's interval must be longer than zero")
    return interval


def _cycle(text: str) -> TimerDefinition:
    if text[:1].upper() != "R":
        if len(text.split()) > 1:
            return TimerDefinition("cycle", text, repetitions=None, cron=_cron(text))
        raise ValueError("expected R[n]/... (ISO-8601 repeating interval) or a Quartz cron")
    parts = text.split("/")
    head = _REPEAT_RE.fullmatch(parts[0])
    if head is None or len(parts) not in (2, 3):
        raise ValueError("expected R[n]/duration, R[n]/start/duration, R[n]/duration/end")
    repetitions = int(head.group(1)) if head.group(1) else None

    def is_duration(part: str) -> bool:
        return part[:1].upper() == "P"

    if len(parts) == 2:
        if not is_duration(parts[1]):
            raise ValueError("a repeating interval needs a duration")
        return TimerDefinition(
            "cycle", text, duration=_positive(_duration(parts[1])), repetitions=repetitions
        )
    first, second = parts[1], parts[2]
    if is_duration(first) and is_duration(second):
        raise ValueError("a repeating interval has at most one duration")
    if is_duration(first):
        return TimerDefinition(
            "cycle",
            text,
            duration=_positive(_duration(first)),
            end=_datetime(second),
            repetitions=repetitions,
        )
    start = _datetime(first)
    if is_duration(second):
        interval = _duration(second)
    else:
        end = _datetime(second)
        if end <= start:
            raise ValueError("the interval's end must be after its start")
        interval = Duration(rest=end - start)  # Camunda: start/end gives the period
    return TimerDefinition(
        "cycle", text, date=start, duration=_positive(interval), repetitions=repetitions
    )


def parse_timer(kind: str, text: str) -> TimerDefinition:
    """Parse a timer event definition; ``kind`` is the BPMN element's local name."""
    timer_kind = _KINDS.get(kind)
    if timer_kind is None:
        raise TimerError(f"unknown timer kind {kind!r}: expected one of {', '.join(_KINDS)}")
    try:
        cleaned = _clean(text)
        if not cleaned:
            raise ValueError("it is empty")
        if timer_kind == "date":
            return TimerDefinition("date", cleaned, date=_datetime(cleaned))
        if timer_kind == "duration":
            return TimerDefinition("duration", cleaned, duration=_duration(cleaned))
        return _cycle(cleaned)
    except (ValueError, TimerError) as exc:
        raise TimerError(f"invalid {kind} {_name(text)}: {exc}") from None
