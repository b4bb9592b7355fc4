"""Cron schedules as Kubernetes CronJobs and Vixie cron read them: five fields (minute, hour,
day of month, month, day of week) or one of the @ macros, in UTC.

A schedule is expanded once into the sets of values each field allows, so that msgen can say
how far apart two runs can be (the recovery point of a backup) and the compose scheduler can
match the current minute against plain lists.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from dataclasses import dataclass

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # words for low, low+1, ...


FIELDS = (
    FieldSpec("minute", 0, 59),
    FieldSpec("hour", 0, 23),
    FieldSpec("day of month", 1, 31),
    FieldSpec("month", 1, 12, MONTH_NAMES),
    FieldSpec("day of week", 0, 7, DAY_NAMES),
)
# the window searched for the longest gap: long enough to hold a leap day twice
WINDOW_START = datetime.date(2024, 1, 1)
WINDOW_DAYS = 8 * 366
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the text as written and each field's allowed values."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday (7 is folded into 0)
    day_restricted: bool  # the day-of-month field is not `*`
    weekday_restricted: bool

    @classmethod
    def parse(cls, value: object) -> Schedule:
        if isinstance(value, Schedule):
            return value
        if not isinstance(value, str):
            raise ValueError("a schedule is a cron expression in quotes, e.g. '0 3 * * *'")
        text = value.strip()
        fields = MACROS.get(text.lower(), text).split()
        if len(fields) != len(FIELDS):
            raise ValueError(
                f"{value!r} is not a cron schedule: five fields (minute hour day-of-month month day-of-week) or one of {', '.join(MACROS)}"
            )
        sets = [_expand(field, spec) for field, spec in zip(fields, FIELDS, strict=True)]
        weekdays = tuple(sorted({day % 7 for day in sets[4]}))
        schedule = cls(text, *(tuple(values) for values in sets[:4]), weekdays, not fields[2].startswith("*"), not fields[4].startswith("*"))
        every_day = not (schedule.day_restricted or schedule.weekday_restricted) and len(schedule.months) == 12
        if not every_day and not schedule.run_days():
            raise ValueError(f"{value!r} never runs: no day matches its day of month, month and day of week")
        return schedule

    def runs_on(self, month: int, day: int, weekday: int) -> bool:
        """Cron's rule: when both day fields are restricted, either may match."""
        if month not in self.months:
            return False
        by_date = day in self.days
        by_weekday = weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return by_date or by_weekday
        return by_date and by_weekday

    def run_days(self) -> list[int]:
        """The days (counted from the window's start) on which the schedule runs."""
        return [offset for offset, date in enumerate(_window()) if self.runs_on(*date)]

    def times_of_day(self) -> list[int]:
        return sorted(hour * 60 + minute for hour in self.hours for minute in self.minutes)

    def longest_gap_minutes(self) -> int:
        """The longest time between two consecutive runs, in minutes."""
        times = self.times_of_day()
        gap = max((later - earlier for earlier, later in itertools.pairwise(times)), default=0)
        days = self.run_days()
        if len(days) == 1:
            return WINDOW_DAYS * MINUTES_PER_DAY
        for earlier, later in itertools.pairwise(days):
            gap = max(gap, (later - earlier) * MINUTES_PER_DAY + times[0] - times[-1])
        return gap


@functools.cache
def _window() -> tuple[tuple[int, int, int], ...]:
    """(month, day, weekday with 0 = Sunday) of every day in the window."""
    days = (WINDOW_START + datetime.timedelta(days=offset) for offset in range(WINDOW_DAYS))
    return tuple((day.month, day.day, day.isoweekday() % 7) for day in days)


def _expand(field: str, spec: FieldSpec) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        values.update(_expand_part(part, spec))
    return values


def _expand_part(part: str, spec: FieldSpec) -> range:
    base, _, step_text = part.partition("/")
    step = _number(step_text, spec, step=True) if step_text else 1
    if base == "*":
        return range(spec.low, spec.high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _number(first_text, spec)
    last = _number(last_text, spec) if dash else (spec.high if step_text else first)
    if last < first:
        raise ValueError(f"{part!r} in the {spec.name} field runs backwards")
    return range(first, last + 1, step)


def _number(text: str, spec: FieldSpec, step: bool = False) -> int:
    lowered = text.lower()
    if not step and lowered in spec.names:
        return spec.low + spec.names.index(lowered)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number in the {spec.name} field")
    number = int(text)
    if step:
        if number < 1:
            raise ValueError(f"the step {text!r} in the {spec.name} field must be at least 1")
        return number
    if not spec.low <= number <= spec.high:
        raise ValueError(f"{number} is outside the {spec.name} field's range {spec.low}-{spec.high}")
    return number
