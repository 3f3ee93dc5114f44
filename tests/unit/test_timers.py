from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.core.errors import EngineError
from engine.core.timers import (
    CronSchedule,
    Duration,
    TimerDefinition,
    TimerError,
    parse_cron,
    parse_datetime,
    parse_duration,
    parse_timer,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# A Tuesday.
START = utc(2030, 1, 1, 10, 2, 30)


def firings(timer: TimerDefinition, start: datetime, limit: int = 10) -> list[datetime]:
    """Every due time first_due/next_due produce, up to ``limit``."""
    due = timer.first_due(start)
    out: list[datetime] = []
    while due is not None and len(out) < limit:
        out.append(due)
        due = timer.next_due(due, len(out))
    return out


def cron_run(text: str, start: datetime, count: int) -> list[datetime | None]:
    schedule = parse_cron(text)
    out: list[datetime | None] = []
    current: datetime | None = start
    for _ in range(count):
        current = None if current is None else schedule.next_after(current)
        out.append(current)
    return out


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "years", "months", "rest"),
    [
        ("P1Y2M3DT4H5M6.5S", 1, 2, timedelta(days=3, hours=4, minutes=5, seconds=6.5)),
        ("P2W", 0, 0, timedelta(weeks=2)),
        ("PT0S", 0, 0, timedelta(0)),
        ("PT1H", 0, 0, timedelta(hours=1)),
        ("PT90M", 0, 0, timedelta(minutes=90)),
        ("P1M", 0, 1, timedelta(0)),
        ("PT1M", 0, 0, timedelta(minutes=1)),
        ("P1DT12H", 0, 0, timedelta(days=1, hours=12)),
        ("PT0,5S", 0, 0, timedelta(seconds=0.5)),
        ("P1.5D", 0, 0, timedelta(hours=36)),
        ("pt5m", 0, 0, timedelta(minutes=5)),
        ('"PT5M"', 0, 0, timedelta(minutes=5)),
        ("'PT5M'", 0, 0, timedelta(minutes=5)),
        ("  PT5M\n", 0, 0, timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: str, years: int, months: int, rest: timedelta) -> None:
    assert parse_duration(text) == Duration(years, months, rest)


@pytest.mark.parametrize(
    ("duration", "start", "expected"),
    [
        ("P1M", utc(2030, 1, 31, 9), utc(2030, 2, 28, 9)),
        ("P1M", utc(2032, 1, 31), utc(2032, 2, 29)),
        ("P1M", utc(2030, 3, 31), utc(2030, 4, 30)),
        ("P13M", utc(2030, 12, 15), utc(2032, 1, 15)),
        ("P1Y", utc(2028, 2, 29), utc(2029, 2, 28)),
        ("P4Y", utc(2028, 2, 29), utc(2032, 2, 29)),
        ("P1M1D", utc(2030, 1, 31), utc(2030, 3, 1)),
        ("P1DT1H", utc(2030, 12, 31, 23), utc(2031, 1, 2, 0)),
        ("PT0S", START, START),
    ],
)
def test_duration_add_to(duration: str, start: datetime, expected: datetime) -> None:
    assert parse_duration(duration).add_to(start) == expected


def test_duration_add_to_converts_to_utc_and_takes_naive_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = parse_duration("PT1H").add_to(datetime(2030, 1, 1, 12, tzinfo=plus_two))
    assert result == utc(2030, 1, 1, 11)
    assert result.tzinfo is UTC
    assert parse_duration("PT1H").add_to(datetime(2030, 1, 1, 12)) == utc(2030, 1, 1, 13)


def test_duration_helpers() -> None:
    assert parse_duration("PT1H30M").total_seconds_approx() == 5400.0
    assert parse_duration("P1Y").total_seconds_approx() == pytest.approx(365.2425 * 86400)
    assert parse_duration("P2M").scaled(3) == Duration(months=6)
    with pytest.raises(TimerError, match="out of range"):
        parse_duration("P9000Y").add_to(utc(2030, 1, 1))
    with pytest.raises(TimerError, match="negative"):
        Duration(rest=timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "ISO-8601 duration"),
        ("P", "at least one component"),
        ("PT", "ISO-8601 duration"),
        ("-PT5M", "negative"),
        ("P-1D", "ISO-8601 duration"),
        ("5M", "ISO-8601 duration"),
        ("PT5", "ISO-8601 duration"),
        ("P1H", "ISO-8601 duration"),
        ("PT1D", "ISO-8601 duration"),
        ("P1.5Y", "ISO-8601 duration"),
        ("P1M1Y", "ISO-8601 duration"),
        ("PT5M 1S", "ISO-8601 duration"),
        ("P999999999W", "too large"),
        ("\"PT5M'", "ISO-8601 duration"),
        ("P" + "1" * 300 + "D", "longer than 200"),
    ],
)
def test_parse_duration_errors(text: str, reason: str) -> None:
    with pytest.raises(TimerError, match=reason) as info:
        parse_duration(text)
    assert "duration" in str(info.value)


def test_timer_error_is_an_engine_error() -> None:
    assert issubclass(TimerError, EngineError)


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T10:00:00Z", utc(2030, 1, 1, 10)),
        ("2030-01-01T10:00:00+02:00", utc(2030, 1, 1, 8)),
        ("2030-01-01T10:00:00-05:30", utc(2030, 1, 1, 15, 30)),
        ("2030-01-01T10:00:00.250Z", utc(2030, 1, 1, 10, 0, 0, 250_000)),
        ("2030-01-01T10:00:00", utc(2030, 1, 1, 10)),
        ("2030-01-01", utc(2030, 1, 1)),
        ("2030-01-01T00:30:00+01:00", utc(2029, 12, 31, 23, 30)),
        ("'2030-01-01T10:00:00Z'", utc(2030, 1, 1, 10)),
        ('"2030-01-01T10:00:00Z"', utc(2030, 1, 1, 10)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    result = parse_datetime(text)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["", "tomorrow", "2030-13-01", "2030-02-30", "2030-01-01T25:00:00Z", "PT5M", "+2030-01-01"],
)
def test_parse_datetime_errors(text: str) -> None:
    with pytest.raises(TimerError, match="invalid date"):
        parse_datetime(text)


# --- timeDate / timeDuration -------------------------------------------------------------------


def test_time_date() -> None:
    timer = parse_timer("timeDate", "2030-01-01T10:00:00Z")
    assert timer.kind == "date"
    assert timer.repetitions == 1
    assert timer.first_due(utc(2029, 6, 1)) == utc(2030, 1, 1, 10)
    # A date already past is still the due date: the caller fires it at once.
    assert timer.first_due(utc(2031, 1, 1)) == utc(2030, 1, 1, 10)
    assert timer.next_due(utc(2030, 1, 1, 10), 1) is None


def test_time_duration() -> None:
    timer = parse_timer("timeDuration", "PT1H")
    assert timer.kind == "duration"
    assert timer.first_due(START) == START + timedelta(hours=1)
    assert timer.next_due(START + timedelta(hours=1), 1) is None
    assert parse_timer("timeDuration", "P1M").first_due(utc(2030, 1, 31)) == utc(2030, 2, 28)
    assert parse_timer("timeDuration", "PT0S").first_due(START) == START


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("timeDuration", '"PT5M"', START + timedelta(minutes=5)),
        ("timeDuration", "'PT5M'", START + timedelta(minutes=5)),
        ("timeDate", "'2030-01-01T10:00:00Z'", utc(2030, 1, 1, 10)),
        ("timeCycle", '"R3/PT10M"', START + timedelta(minutes=10)),
        ("timeCycle", "'0 0/5 * * * ?'", utc(2030, 1, 1, 10, 5)),
        ("timeDuration", "  \n PT5M \n ", START + timedelta(minutes=5)),
    ],
)
def test_spiff_quoted_text(kind: str, text: str, expected: datetime) -> None:
    timer = parse_timer(kind, text)
    assert timer.first_due(START) == expected
    assert "'" not in timer.text
    assert '"' not in timer.text


def test_naive_start_is_taken_as_utc() -> None:
    timer = parse_timer("timeDuration", "PT1H")
    assert timer.first_due(datetime(2030, 1, 1, 10)) == utc(2030, 1, 1, 11)


# --- ISO cycles --------------------------------------------------------------------------------


def test_cycle_repeat_count() -> None:
    timer = parse_timer("timeCycle", "R3/PT10M")
    assert (timer.kind, timer.repetitions, timer.cron) == ("cycle", 3, None)
    assert firings(timer, START) == [START + timedelta(minutes=m) for m in (10, 20, 30)]


def test_cycle_unbounded() -> None:
    timer = parse_timer("timeCycle", "R/PT1H")
    assert timer.repetitions is None
    assert firings(timer, START, limit=50)[-1] == START + timedelta(hours=50)


def test_cycle_with_start_date() -> None:
    timer = parse_timer("timeCycle", "R3/2030-01-01T10:00:00Z/PT1H")
    assert firings(timer, utc(2029, 1, 1)) == [utc(2030, 1, 1, h) for h in (10, 11, 12)]


def test_cycle_with_start_date_keeps_month_ends() -> None:
    timer = parse_timer("timeCycle", "R4/2030-01-31T08:00:00Z/P1M")
    assert firings(timer, utc(2030, 1, 1)) == [
        utc(2030, 1, 31, 8),
        utc(2030, 2, 28, 8),
        utc(2030, 3, 31, 8),
        utc(2030, 4, 30, 8),
    ]


def test_cycle_with_end_date() -> None:
    timer = parse_timer("timeCycle", "R/PT1H/2030-01-01T13:00:00Z")
    assert timer.end == utc(2030, 1, 1, 13)
    assert firings(timer, utc(2030, 1, 1, 10)) == [utc(2030, 1, 1, h) for h in (11, 12, 13)]
    assert timer.first_due(utc(2030, 1, 1, 12, 30)) is None


def test_cycle_with_count_and_end_stops_at_whichever_comes_first() -> None:
    timer = parse_timer("timeCycle", "R2/PT1H/2030-01-01T23:00:00Z")
    assert firings(timer, utc(2030, 1, 1, 10)) == [utc(2030, 1, 1, 11), utc(2030, 1, 1, 12)]


def test_cycle_start_and_end_give_the_interval() -> None:
    timer = parse_timer("timeCycle", "R3/2030-01-01T00:00:00Z/2030-01-02T00:00:00Z")
    assert timer.duration == Duration(rest=timedelta(days=1))
    assert firings(timer, utc(2029, 1, 1)) == [utc(2030, 1, d) for d in (1, 2, 3)]


def test_cycle_with_zero_repetitions_never_fires() -> None:
    assert parse_timer("timeCycle", "R0/PT1M").first_due(START) is None
    assert parse_timer("timeCycle", "R0/2030-01-01T00:00:00Z/PT1M").first_due(START) is None


def test_cycle_lowercase_r() -> None:
    assert parse_timer("timeCycle", "r2/PT1M").repetitions == 2


def test_next_due_rejects_fired_below_one() -> None:
    with pytest.raises(TimerError, match="fired"):
        parse_timer("timeCycle", "R3/PT1M").next_due(START, 0)


# --- cron --------------------------------------------------------------------------------------


def test_cron_every_five_minutes() -> None:
    assert cron_run("0 0/5 * * * ?", START, 4) == [utc(2030, 1, 1, 10, m) for m in (5, 10, 15, 20)]


def test_cron_daily_at_eight() -> None:
    assert cron_run("0 0 8 * * ?", START, 3) == [utc(2030, 1, d, 8) for d in (2, 3, 4)]
    # Before 8:00 the same day's 8:00 comes first.
    assert cron_run("0 0 8 * * ?", utc(2030, 1, 1, 7, 59, 59), 1) == [utc(2030, 1, 1, 8)]


def test_cron_weekdays() -> None:
    # 2030-01-04 is a Friday; the weekend is skipped.
    assert cron_run("0 0 9 ? * MON-FRI", utc(2030, 1, 3, 9), 3) == [
        utc(2030, 1, 4, 9),
        utc(2030, 1, 7, 9),
        utc(2030, 1, 8, 9),
    ]
    # Quartz numbers weekdays 1=SUN..7=SAT, so 2-6 is MON-FRI as well.
    assert cron_run("0 0 9 ? * 2-6", utc(2030, 1, 3, 9), 3) == cron_run(
        "0 0 9 ? * mon-fri", utc(2030, 1, 3, 9), 3
    )


def test_cron_is_strictly_after() -> None:
    assert cron_run("0 0 8 * * ?", utc(2030, 1, 1, 8), 1) == [utc(2030, 1, 2, 8)]
    # A sub-second start just after a match does not fire that match again.
    assert cron_run("0 0 8 * * ?", utc(2030, 1, 1, 8, 0, 0, 500), 1) == [utc(2030, 1, 2, 8)]


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("0 0 12 ? * 1", START, [utc(2030, 1, 6, 12), utc(2030, 1, 13, 12)]),  # Sundays
        ("0 0 12 ? * SAT,SUN", START, [utc(2030, 1, 5, 12), utc(2030, 1, 6, 12)]),
        ("0 0 12 ? * L", START, [utc(2030, 1, 5, 12), utc(2030, 1, 12, 12)]),  # L = SAT
        ("0 0 12 ? * 6L", START, [utc(2030, 1, 25, 12), utc(2030, 2, 22, 12)]),  # last Friday
        ("0 0 12 L * ?", START, [utc(2030, 1, 31, 12), utc(2030, 2, 28, 12)]),
        ("0 0 0 29 2 ?", START, [utc(2032, 2, 29), utc(2036, 2, 29)]),
        ("0 0 0 1 JAN,jul ?", START, [utc(2030, 7, 1), utc(2031, 1, 1)]),
        ("0 0 22-2 * * ?", START, [utc(2030, 1, 1, 22), utc(2030, 1, 1, 23)]),
        ("*/20 * * * * ?", START, [utc(2030, 1, 1, 10, 2, 40), utc(2030, 1, 1, 10, 3)]),
        ("15,45 30 10-11 * * ?", START, [utc(2030, 1, 1, 10, 30, 15), utc(2030, 1, 1, 10, 30, 45)]),
        ("0 10-50/20 * * * ?", START, [utc(2030, 1, 1, 10, 10), utc(2030, 1, 1, 10, 30)]),
        ("0 0 0 1 1 ? 2031-2032", START, [utc(2031, 1, 1), utc(2032, 1, 1)]),
        ("0 0 0 1 1 ? 2031/2", START, [utc(2031, 1, 1), utc(2033, 1, 1)]),
        ("0 0 0 1 1 ? *", START, [utc(2031, 1, 1), utc(2032, 1, 1)]),
        ("59 59 23 31 12 ?", START, [utc(2030, 12, 31, 23, 59, 59), utc(2031, 12, 31, 23, 59, 59)]),
        ("0 0 0 ? * *", START, [utc(2030, 1, 2), utc(2030, 1, 3)]),
        ("0 0 0 * * MON", START, [utc(2030, 1, 7), utc(2030, 1, 14)]),
    ],
)
def test_cron_table(text: str, start: datetime, expected: list[datetime]) -> None:
    assert cron_run(text, start, len(expected)) == expected


def test_cron_year_field_runs_out() -> None:
    assert cron_run("0 0 0 1 1 ? 2031", START, 2) == [utc(2031, 1, 1), None]
    assert parse_cron("0 0 0 1 1 ? 2020").next_after(START) is None
    # Feb 29 never falls in 2031: exhausted, not an endless search.
    assert parse_cron("0 0 0 29 2 ? 2031").next_after(START) is None


def test_cron_that_can_never_fire_is_an_error() -> None:
    # parse_cron refuses Feb 30 up front; built directly, the search horizon must stop it.
    schedule = CronSchedule(
        text="impossible",
        seconds=frozenset({0}),
        minutes=frozenset({0}),
        hours=frozenset({0}),
        months=frozenset({2}),
        days=frozenset({30}),
    )
    with pytest.raises(TimerError, match="never fires"):
        schedule.next_after(START)


def test_cron_timer_definition() -> None:
    timer = parse_timer("timeCycle", "0 0/5 * * * ?")
    assert (timer.kind, timer.repetitions) == ("cycle", None)
    assert isinstance(timer.cron, CronSchedule)
    assert firings(timer, START, limit=3) == [utc(2030, 1, 1, 10, m) for m in (5, 10, 15)]


def test_cron_timer_with_years_is_exhausted() -> None:
    timer = parse_timer("timeCycle", "0 0 0 1 1 ? 2031-2032")
    assert firings(timer, START) == [utc(2031, 1, 1), utc(2032, 1, 1)]


def test_cron_takes_other_offsets() -> None:
    plus_one = timezone(timedelta(hours=1))
    start = datetime(2030, 1, 1, 9, 30, tzinfo=plus_one)  # 08:30 UTC
    assert cron_run("0 0 9 * * ?", start, 1) == [utc(2030, 1, 1, 9)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*/5 * * * *", "6 or 7 fields"),  # Unix cron
        ("0 0 0 * * ? * *", "6 or 7 fields"),
        ("0 0 0 ? * ?", "not both"),
        ("0 0 0 1 * MON", "'\\?' in the other"),
        ("0 0 0 30 2 ?", "no month"),
        ("0 0 0 31 4,6,9,11 ?", "no month"),
        ("60 * * * * ?", "outside 0-59"),
        ("* 60 * * * ?", "outside 0-59"),
        ("* * 24 * * ?", "outside 0-23"),
        ("* * * 0 * ?", "outside 1-31"),
        ("* * * * 13 ?", "outside 1-12"),
        ("* * * ? * 8", "outside 1-7"),
        ("* * * ? * 0", "outside 1-7"),
        ("0 0 0 1 1 ? 1969", "outside 1970-2199"),
        ("0/0 * * * * ?", "increment"),
        ("0/61 * * * * ?", "increment"),
        ("0/x * * * * ?", "increment"),
        ("a * * * * ?", "not a number"),
        ("1,,2 * * * * ?", "not a number"),
        ("-5 * * * * ?", "not a number"),
        ("? * * * * ?", "not a number"),
        ("0 0 0 15W * ?", "'W'"),
        ("0 0 0 ? * 6#3", "'#'"),
        ("0 0 0 L-2 * ?", "alone"),
        ("0 0 0 ? * XL", "not a number"),
        ("0 0 0 ? FOO * ", "not a number"),
        ("0 0 0 ? * JAN", "not a number"),
    ],
)
def test_cron_errors(text: str, reason: str) -> None:
    with pytest.raises(TimerError, match=reason) as info:
        parse_cron(text)
    assert "cron" in str(info.value)
    with pytest.raises(TimerError, match=r"invalid timeCycle"):
        parse_timer("timeCycle", text)


# --- parse_timer errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        ("timeDate", "", "empty"),
        ("timeDate", "''", "empty"),
        ("timeDate", "PT5M", "ISO-8601 date"),
        ("timeDate", "2030-02-30", "ISO-8601 date"),
        ("timeDuration", "2030-01-01", "ISO-8601 duration"),
        ("timeDuration", "-PT5M", "negative"),
        ("timeDuration", "P", "at least one"),
        ("timeCycle", "PT5M", "R\\[n\\]"),
        ("timeCycle", "every hour", "6 or 7 fields"),
        ("timeCycle", "R/", "duration"),
        ("timeCycle", "R3", "expected R"),
        ("timeCycle", "Rx/PT1M", "expected R"),
        ("timeCycle", "R-1/PT1M", "expected R"),
        ("timeCycle", "R3/PT1M/PT2M", "at most one duration"),
        ("timeCycle", "R3/2030-01-01/2030-01-01", "after its start"),
        ("timeCycle", "R3/2030-01-01/nonsense", "ISO-8601 date"),
        ("timeCycle", "R3/2030-01-01", "needs a duration"),
        ("timeCycle", "R3/PT0S", "longer than zero"),
        ("timeCycle", "R/PT0S/2030-01-01", "longer than zero"),
        ("timeCycle", "R3/a/b/c", "expected R"),
        ("timeCycle", "R3/P1X", "ISO-8601 duration"),
        ("timeCycle", "R3/" + "1" * 250, "longer than 200"),
    ],
)
def test_parse_timer_errors_name_kind_and_text(kind: str, text: str, reason: str) -> None:
    with pytest.raises(TimerError, match=reason) as info:
        parse_timer(kind, text)
    message = str(info.value)
    assert kind in message
    assert repr(text)[:20] in message


def test_parse_timer_unknown_kind() -> None:
    with pytest.raises(TimerError, match="unknown timer kind 'timeSpan'"):
        parse_timer("timeSpan", "PT5M")


def test_timer_definition_is_frozen_and_hashable() -> None:
    timer = parse_timer("timeCycle", "R3/PT10M")
    assert timer == parse_timer("timeCycle", "R3/PT10M")
    assert hash(timer) == hash(parse_timer("timeCycle", "R3/PT10M"))
    assert hash(parse_timer("timeCycle", "0 0 8 * * ?")) == hash(
        parse_timer("timeCycle", "0 0 8 * * ?")
    )
