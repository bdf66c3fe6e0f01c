"""Business hours: when the service-level clock runs, per team, in the team's own time zone.

A `BusinessHours` is a weekly schedule of opening windows in local time (Monday 09:00-17:00, ...),
a set of holidays (local dates on which the clock stands still all day) and a time zone from the
IANA database (`zoneinfo`), so daylight-saving changes move the windows with the wall clock. Two
questions are asked of it, both on aware datetimes:

- `between(a, b)`: how much business time lies between two moments;
- `add(start, amount)`: the moment at which `amount` of business time has passed since `start`.

`BusinessHours.always()` is the 24/7 schedule used when nothing is configured: every second counts.

Config shape (see docs/service-levels.md)::

    timezone: Europe/Amsterdam
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-12:00, 13:00-17:00", sat: closed}
    holidays: ["2026-12-25", "2026-12-26"]

`hours` also takes `weekdays:` (Monday to Friday) and `every_day:` as shorthands; a day that is
not named is closed. `"24h"` (or `"00:00-24:00"`) opens a whole day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHORTHANDS = {"weekdays": DAYS[:5], "weekend": DAYS[5:], "every_day": DAYS}
#: How far `add` looks ahead for enough open time before deciding the schedule is unusable.
MAX_SEARCH_DAYS = 3 * 366
_ZERO = dt.timedelta(0)

Window = tuple[dt.time, dt.time | None]  # end None = midnight at the end of the day


class BusinessHoursError(ValueError):
    """A business-hours setting that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class BusinessHours:
    """A weekly schedule in one time zone, with holidays."""

    timezone: str = "UTC"
    #: Opening windows per weekday (0 = Monday), each (start, end) in local time, sorted.
    weekly: tuple[tuple[Window, ...], ...] = ((),) * 7
    holidays: frozenset[dt.date] = frozenset()
    always_open: bool = False
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "tz", ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BusinessHoursError(f"unknown time zone {self.timezone!r}") from exc
        if not self.always_open and not any(self.weekly):
            raise BusinessHoursError("no opening hours on any day of the week")

    @classmethod
    def always(cls, timezone: str = "UTC") -> BusinessHours:
        """Open around the clock: business time is wall-clock time."""
        return cls(timezone=timezone, always_open=True)

    # Questions -----------------------------------------------------------------------------------

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Business time from `start` to `end` (zero when `end` is not after `start`)."""
        _aware(start, end)
        if end <= start:
            return _ZERO
        if self.always_open:
            return end - start
        total = _ZERO
        for open_at, close_at in self._windows(start, end):
            total += min(close_at, end) - max(open_at, start)
        return total

    def add(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The moment at which `amount` of business time has passed since `start`.

        A start outside business hours counts from the next opening. Zero or less returns `start`.
        """
        _aware(start)
        if amount <= _ZERO:
            return start
        if self.always_open:
            return start + amount
        remaining = amount
        for open_at, close_at in self._windows(start, None):
            begin = max(open_at, start)
            available = close_at - begin
            if available >= remaining:
                return begin + remaining
            remaining -= available
        raise BusinessHoursError(f"no {amount} of business time within {MAX_SEARCH_DAYS} days of {start}")

    def is_open(self, moment: dt.datetime) -> bool:
        _aware(moment)
        if self.always_open:
            return True
        return any(open_at <= moment < close_at
                   for open_at, close_at in self._windows(moment, moment + dt.timedelta(microseconds=1)))

    # Inside --------------------------------------------------------------------------------------

    def _windows(self, start: dt.datetime, end: dt.datetime | None) -> Iterable[tuple[dt.datetime, dt.datetime]]:
        """Opening windows (as aware UTC datetimes) overlapping [start, end), in order."""
        # From the day before: a local day can begin before `start`'s UTC date.
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        last = end.astimezone(self.tz).date() if end is not None else day + dt.timedelta(days=MAX_SEARCH_DAYS)
        while day <= last:
            if day not in self.holidays:
                for begin, finish in self.weekly[day.weekday()]:
                    open_at = _local(day, begin, self.tz)
                    close_at = (_local(day + dt.timedelta(days=1), dt.time(0), self.tz) if finish is None
                                else _local(day, finish, self.tz))
                    if close_at <= start or (end is not None and open_at >= end) or close_at <= open_at:
                        continue
                    yield open_at, close_at
            day += dt.timedelta(days=1)


def _local(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    # A wall time that does not exist (the hour skipped in spring) lands after the gap, as clocks do.
    local = dt.datetime.combine(day, at, tzinfo=tz)
    return local.astimezone(dt.UTC)


def _aware(*moments: dt.datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None:
            raise ValueError("business hours need aware datetimes (with a time zone)")


# Config ------------------------------------------------------------------------------------------

def parse_window(text: str) -> list[Window]:
    """`"09:00-17:00"`, `"09:00-12:00, 13:00-17:00"`, `"24h"` or `"closed"` -> windows."""
    text = str(text).strip().lower()
    if text in {"", "closed", "none", "off"}:
        return []
    if text in {"24h", "all day", "open"}:
        return [(dt.time(0), None)]
    windows: list[Window] = []
    for part in text.split(","):
        begin_text, sep, end_text = part.strip().partition("-")
        if not sep:
            raise BusinessHoursError(f"{part.strip()!r} is not a window like 09:00-17:00")
        begin = _clock(begin_text)
        finish = None if end_text.strip() in {"24:00", "24"} else _clock(end_text)
        if finish is not None and finish <= begin:
            raise BusinessHoursError(f"{part.strip()!r} ends before it begins (overnight windows: split at 24:00)")
        windows.append((begin, finish))
    windows.sort(key=lambda w: w[0])
    for (_, first_end), (second_begin, _) in zip(windows, windows[1:], strict=False):
        if first_end is None or first_end > second_begin:
            raise BusinessHoursError(f"windows overlap in {text!r}")
    return windows


def _clock(text: str) -> dt.time:
    text = text.strip()
    try:
        hours, _, minutes = text.partition(":")
        return dt.time(int(hours), int(minutes or 0))
    except ValueError as exc:
        raise BusinessHoursError(f"{text!r} is not a time like 09:00") from exc


def from_config(data: Mapping[str, Any] | None) -> BusinessHours:
    """Business hours from a config mapping (None or {} -> open around the clock, in UTC)."""
    if not data:
        return BusinessHours.always()
    if not isinstance(data, Mapping):
        raise BusinessHoursError("must be a mapping with timezone, hours and holidays")
    unknown = set(data) - {"timezone", "hours", "holidays"}
    if unknown:
        raise BusinessHoursError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                                 "(known: timezone, hours, holidays)")
    timezone = str(data.get("timezone") or "UTC")
    hours = data.get("hours")
    holidays = frozenset(_date(d) for d in (data.get("holidays") or ()))
    if hours is None:
        return BusinessHours(timezone=timezone, always_open=True, holidays=holidays)
    if not isinstance(hours, Mapping):
        raise BusinessHoursError("hours: must map days (mon..sun, weekdays, every_day) to windows like 09:00-17:00")
    weekly: list[tuple[Window, ...]] = [()] * 7
    # Shorthands first, so that a named day overrides them ("weekdays: 9-17" plus "fri: 9-15").
    for key in sorted(hours, key=lambda k: 0 if str(k).lower() in _SHORTHANDS else 1):
        name = str(key).lower()
        days = _SHORTHANDS.get(name) or ((name,) if name in DAYS else None)
        if days is None:
            raise BusinessHoursError(f"hours: unknown day {key!r} (use mon..sun, weekdays, weekend, every_day)")
        value = hours[key]
        windows = tuple(parse_window("closed" if value in (None, False) else value))
        for day in days:
            weekly[DAYS.index(day)] = windows
    return BusinessHours(timezone=timezone, weekly=tuple(weekly), holidays=holidays)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise BusinessHoursError(f"holidays: {value!r} is not a date like 2026-12-25") from exc
