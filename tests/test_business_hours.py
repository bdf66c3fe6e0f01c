"""Business hours: the clock runs inside opening hours only, in the team's time zone, not on holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from inbox.business_hours import BusinessHours, BusinessHoursError, from_config, parse_window

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")
H = dt.timedelta(hours=1)

OFFICE = {"timezone": "Europe/Amsterdam", "hours": {"weekdays": "09:00-17:00"}, "holidays": ["2026-12-25"]}


def at(tz, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def test_friday_afternoon_plus_two_hours_is_monday_morning():
    hours = from_config(OFFICE)
    friday_4pm = at(AMS, 2026, 11, 20, 16, 0)
    assert hours.add(friday_4pm, 2 * H) == at(AMS, 2026, 11, 23, 10, 0)
    assert hours.between(friday_4pm, at(AMS, 2026, 11, 23, 10, 0)) == 2 * H


def test_a_weekend_counts_nothing():
    hours = from_config(OFFICE)
    assert hours.between(at(AMS, 2026, 11, 21, 8, 0), at(AMS, 2026, 11, 22, 23, 0)) == dt.timedelta(0)


def test_a_holiday_is_skipped_like_a_weekend():
    hours = from_config(OFFICE)
    thursday_before_christmas = at(AMS, 2026, 12, 24, 16, 0)
    # Thursday 24th: one hour left; Friday 25th is a holiday; the weekend; Monday 28th 09:00 + 1 h.
    assert hours.add(thursday_before_christmas, 2 * H) == at(AMS, 2026, 12, 28, 10, 0)
    assert hours.between(at(AMS, 2026, 12, 25, 0, 0), at(AMS, 2026, 12, 26, 0, 0)) == dt.timedelta(0)


def test_a_message_at_night_starts_counting_at_opening_time():
    hours = from_config(OFFICE)
    assert hours.add(at(AMS, 2026, 11, 24, 2, 30), 30 * dt.timedelta(minutes=1)) == at(AMS, 2026, 11, 24, 9, 30)


def test_the_same_moment_is_due_at_different_times_in_different_time_zones():
    amsterdam = from_config(OFFICE)
    new_york = from_config({**OFFICE, "timezone": "America/New_York"})
    moment = at(dt.UTC, 2026, 11, 24, 15, 0)  # 16:00 in Amsterdam, 10:00 in New York
    assert amsterdam.add(moment, 2 * H) == at(AMS, 2026, 11, 25, 10, 0)
    assert new_york.add(moment, 2 * H) == at(NYC, 2026, 11, 24, 12, 0)


def test_windows_follow_the_wall_clock_across_daylight_saving():
    hours = from_config(OFFICE)
    # 2026-03-30 is the Monday after the clocks went forward; 2026-10-26 the Monday after they went back.
    for monday in (dt.date(2026, 3, 30), dt.date(2026, 10, 26)):
        start = dt.datetime.combine(monday, dt.time(0), tzinfo=AMS)
        assert hours.between(start, start + dt.timedelta(days=1)) == 8 * H
        assert hours.add(start, H) == dt.datetime.combine(monday, dt.time(10), tzinfo=AMS)


def test_split_days_and_named_days_override_the_shorthand():
    hours = from_config({"timezone": "UTC", "hours": {"weekdays": "09:00-12:00, 13:00-17:00", "fri": "09:00-12:00"}})
    monday = at(dt.UTC, 2026, 11, 23, 0, 0)
    assert hours.between(monday, monday + dt.timedelta(days=1)) == 7 * H
    friday = at(dt.UTC, 2026, 11, 27, 0, 0)
    assert hours.between(friday, friday + dt.timedelta(days=1)) == 3 * H
    assert hours.add(at(dt.UTC, 2026, 11, 23, 11, 30), H) == at(dt.UTC, 2026, 11, 23, 13, 30)
    assert not hours.is_open(at(dt.UTC, 2026, 11, 23, 12, 30))


def test_nothing_configured_is_open_around_the_clock():
    hours = from_config(None)
    start = at(dt.UTC, 2026, 11, 21, 23, 0)  # a Saturday night
    assert hours.add(start, 4 * H) == start + 4 * H
    assert hours.between(start, start + 50 * H) == 50 * H


def test_whole_days_with_24h():
    hours = from_config({"timezone": "UTC", "hours": {"every_day": "24h"}, "holidays": ["2026-11-24"]})
    start = at(dt.UTC, 2026, 11, 23, 20, 0)
    assert hours.add(start, 6 * H) == at(dt.UTC, 2026, 11, 25, 2, 0)  # the 24th is a holiday


@pytest.mark.parametrize("data, problem", [
    ({"timezone": "Mars/Olympus", "hours": {"weekdays": "09:00-17:00"}}, "unknown time zone"),
    ({"hours": {"weekdays": "17:00-09:00"}}, "ends before it begins"),
    ({"hours": {"funday": "09:00-17:00"}}, "unknown day"),
    ({"hours": {"mon": "closed"}}, "no opening hours"),
    ({"hours": {"mon": "9-17"}, "holidays": ["Christmas"]}, "not a date"),
    ({"hours": {"mon": "09:00-12:00, 11:00-13:00"}}, "overlap"),
    ({"tz": "UTC"}, "unknown key"),
])
def test_unusable_settings_are_named(data, problem):
    with pytest.raises(BusinessHoursError, match=problem):
        from_config(data)


def test_windows_parse():
    assert parse_window("closed") == []
    assert parse_window("9-17") == [(dt.time(9), dt.time(17))]
    assert parse_window("20:00-24:00") == [(dt.time(20), None)]


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        BusinessHours.always().add(dt.datetime(2026, 1, 1), H)
