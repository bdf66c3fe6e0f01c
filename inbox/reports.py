"""The figures managers read: volume, service levels met, satisfaction, people, backlog.

`build(store, levels, period, now)` computes every figure of one period from the rows of
inbox/store/reports.py; `rows_for(report, figure, ...)` returns the conversations behind any of
them, for the CSV export, from the very same rows. Times are business time (the service-level
clocks), shares are "met desired" and "met adequate" (adequate includes desired).

Counted: conversations people started in the period (no spam, no auto-replies). A first response
or resolution is *decided* once it happened, or once its adequate target passed without it (a
miss); conversations still inside their targets are left out of the shares until they are.
Satisfaction counts the answers given in the period.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from inbox import clock
from inbox.store.base import iso, parse_iso

#: Reports kept per process (ReportCache): a few weeks' pages with their charts.
CACHE_SIZE = 8

#: First-response bands for "satisfaction by waiting time", in business seconds: (key, upper bound).
WAIT_BANDS = (("15m", 15 * 60), ("1h", 3600), ("4h", 4 * 3600), ("24h", 24 * 3600), ("more", None))
#: Backlog age buckets by days since the conversation began: (key, upper bound in days).
AGE_BUCKETS = (("1d", 1), ("3d", 3), ("7d", 7), ("older", None))
FIGURES = ("volume", "first_response", "resolution", "csat", "agent", "team", "backlog", "breaches", "waiting")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


# Periods ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """An ISO week in a time zone: Monday 00:00 to the next Monday 00:00, local time."""

    year: int
    week: int
    timezone: str = "UTC"

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Period:
        match = _WEEK.match((text or "").strip().upper())
        if not match:
            raise ValueError(f"{text!r} is not a week like 2026-W47")
        year, week = int(match[1]), int(match[2])
        dt.date.fromisocalendar(year, week, 1)  # raises ValueError for a week the year does not have
        return cls(year, week, timezone)

    @classmethod
    def containing(cls, moment: dt.datetime, timezone: str = "UTC") -> Period:
        year, week, _ = moment.astimezone(ZoneInfo(timezone)).isocalendar()
        return cls(year, week, timezone)

    @property
    def key(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date.fromisocalendar(self.year, self.week, 1)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time(0), tzinfo=ZoneInfo(self.timezone)).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.next().start

    def previous(self) -> Period:
        year, week, _ = (self.first_day - dt.timedelta(days=7)).isocalendar()
        return Period(year, week, self.timezone)

    def next(self) -> Period:
        year, week, _ = (self.first_day + dt.timedelta(days=7)).isocalendar()
        return Period(year, week, self.timezone)

    @property
    def days(self) -> tuple[dt.date, dt.date]:
        return self.first_day, self.first_day + dt.timedelta(days=6)


# Figures ---------------------------------------------------------------------------------------------

@dataclass
class Report:
    period: Period
    now: dt.datetime
    conversations: list[dict[str, Any]]
    surveys: list[dict[str, Any]]
    asked: dict[str, int]
    replies: dict[int, int]
    agent_names: dict[int, str]
    team_names: dict[int, str]
    channels: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    csat_by_band: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    backlog: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """Every figure as plain JSON-able data (archived with the digest)."""
        return {"week": self.period.key, "channels": self.channels, "totals": self.totals,
                "csat_by_band": self.csat_by_band, "agents": self.agents, "teams": self.teams,
                "backlog": {k: v for k, v in self.backlog.items() if k != "rows"}}


def effective_level(row: Mapping[str, Any], metric: str, now: dt.datetime) -> str | None:
    """The stored result, or "missed" for a clock whose adequate time passed since it was stored."""
    level = row.get(f"{metric}_level")
    if level:
        return level
    due = row.get(f"{metric}_due_adequate")
    if due and row.get("status") in ("new", "open") and parse_iso(due) <= now:
        return "missed"
    return None


def breaches(row: Mapping[str, Any], now: dt.datetime) -> int:
    missed = sum(1 for metric in ("first_response", "resolution") if effective_level(row, metric, now) == "missed")
    return missed + int(row.get("next_response_breaches") or 0)


def first_responder(row: Mapping[str, Any]) -> int | None:
    """Who a conversation's first response counts for: its author once it was sent; until then (a
    miss in the making) the agent the conversation is with."""
    return row["first_responder_id"] if row.get("first_response_at") else row["agent_id"]


def _median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _service(rows: list[dict[str, Any]], metric: str, now: dt.datetime) -> dict[str, Any]:
    levels = [effective_level(r, metric, now) for r in rows]
    decided = [lv for lv in levels if lv]
    desired = sum(1 for lv in decided if lv == "desired")
    adequate = sum(1 for lv in decided if lv in ("desired", "adequate"))
    return {
        "decided": len(decided), "desired": desired, "adequate": adequate, "missed": len(decided) - adequate,
        "share_desired": desired / len(decided) if decided else None,
        "share_adequate": adequate / len(decided) if decided else None,
        "median_seconds": _median(r[f"{metric}_seconds"] for r in rows),
    }


def _csat(surveys: list[dict[str, Any]], asked: int | None = None) -> dict[str, Any]:
    scores = [s["csat_score"] for s in surveys if s["csat_score"] is not None]
    return {
        "answers": len(scores), "asked": asked,
        "average": sum(scores) / len(scores) if scores else None,
        "satisfied_share": sum(1 for s in scores if s >= 4) / len(scores) if scores else None,
        "response_rate": len(scores) / asked if asked else None,
    }


def wait_band(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    for key, bound in WAIT_BANDS:
        if bound is None or seconds <= bound:
            return key
    return None


def age_bucket(created_at: str, now: dt.datetime) -> str:
    days = (now - parse_iso(created_at)).total_seconds() / 86400
    for key, bound in AGE_BUCKETS:
        if bound is None or days < bound:
            return key
    return AGE_BUCKETS[-1][0]


def backlog_figures(store: Any, now: dt.datetime) -> dict[str, Any]:
    """The backlog as of `now`: counted in the database, so its cost does not grow with its size."""
    since = [(key, iso(now - dt.timedelta(days=bound))) for key, bound in AGE_BUCKETS if bound is not None]
    counts = store.report_backlog_counts(since, AGE_BUCKETS[-1][0])
    by_age = dict.fromkeys((key for key, _ in AGE_BUCKETS), 0)
    by_status = dict.fromkeys(("new", "open", "pending", "snoozed"), 0)
    by_channel: dict[str, int] = defaultdict(int)
    for row in counts:
        by_age[row["age"]] += row["conversations"]
        by_status[row["status"]] += row["conversations"]
        by_channel[row["channel"]] += row["conversations"]
    total = sum(by_status.values())
    longest = store.report_longest_waiting(5)
    return {
        "total": total,
        "by_status": by_status,
        "by_channel": dict(sorted(by_channel.items())),
        "by_age": by_age,
        "median_age_seconds": _median((now - parse_iso(created)).total_seconds()
                                      for created in store.report_backlog_middle(total)),
        "waiting": sum(row["conversations"] for row in counts if row["waiting"]),
        "longest_waiting": [
            {"id": r["id"], "channel": r["channel"], "customer_name": r["customer_name"], "subject": r["subject"],
             "waiting_since": r["waiting_since"],
             "waiting_seconds": (now - parse_iso(r["waiting_since"])).total_seconds()}
            for r in longest
        ],
    }


def _survey_wait(s: Mapping[str, Any]) -> float | None:
    value = s.get("survey_first_response_seconds")
    return value if value is not None else s.get("first_response_seconds")


def build(store: Any, period: Period, now: dt.datetime | None = None) -> Report:
    """Every figure of `period` (backlog: as of `now`)."""
    now = now or clock.now()
    start, end = iso(period.start), iso(period.end)
    agents, teams = store.report_people()
    report = Report(
        period=period, now=now, conversations=store.report_conversations(start, end),
        surveys=store.report_surveys(start, end),
        asked=store.report_surveys_asked(start, end), replies=store.report_replies(start, end),
        agent_names=agents, team_names=teams,
    )
    convs, surveys = report.conversations, report.surveys
    by_channel: dict[str, list] = defaultdict(list)
    for row in convs:
        by_channel[row["channel"]].append(row)
    surveys_by_channel: dict[str, list] = defaultdict(list)
    for s in surveys:
        surveys_by_channel[s["channel"]].append(s)
    for channel in sorted(set(by_channel) | set(surveys_by_channel) | set(report.asked)):
        rows = by_channel.get(channel, [])
        report.channels.append({
            "channel": channel, "volume": len(rows),
            "first_response": _service(rows, "first_response", now),
            "resolution": _service(rows, "resolution", now),
            "csat": _csat(surveys_by_channel.get(channel, []), report.asked.get(channel, 0)),
            "policies": sorted({r["sla_policy"] for r in rows if r["sla_policy"] and r["sla_policy"] != "default"}),
            "breaches": sum(breaches(r, now) for r in rows),
        })
    report.totals = {
        "volume": len(convs), "first_response": _service(convs, "first_response", now),
        "resolution": _service(convs, "resolution", now),
        "csat": _csat(surveys, sum(report.asked.values())), "breaches": sum(breaches(r, now) for r in convs),
    }

    # Satisfaction by first-response band, overall and per channel.
    for key, _bound in WAIT_BANDS:
        in_band = [s for s in surveys if wait_band(_survey_wait(s)) == key]
        report.csat_by_band.append({
            "band": key, **_csat(in_band),
            "channels": {ch: _csat([s for s in in_band if s["channel"] == ch])
                         for ch in sorted({s["channel"] for s in in_band})},
        })

    # People: conversations by their agent (assignee, else who replied first) and team. A first
    # response counts for whoever sent it, which need not be the agent the conversation is with.
    for kind, key, names, target in (("agent", "agent_id", agents, report.agents),
                                     ("team", "team_id", teams, report.teams)):
        groups: dict[int | None, list] = defaultdict(list)
        for row in convs:
            groups[row[key]].append(row)
        first_groups: dict[int | None, list] = defaultdict(list)
        for row in convs:
            first_groups[first_responder(row) if kind == "agent" else row[key]].append(row)
        survey_key = "survey_agent_id" if kind == "agent" else "survey_team_id"
        survey_groups: dict[int | None, list] = defaultdict(list)
        for s in surveys:
            survey_groups[s[survey_key]].append(s)
        idents = set(groups) | set(survey_groups) | {i for i, rows in first_groups.items()
                                                      if any(effective_level(r, "first_response", now) for r in rows)}
        for ident in sorted(idents, key=lambda i: (i is None, names.get(i, ""), i or 0)):
            rows = groups.get(ident, [])
            target.append({
                "id": ident, "name": names.get(ident) if ident is not None else None,
                "conversations": len(rows),
                "replies": report.replies.get(ident, 0) if kind == "agent" and ident is not None else None,
                "first_response": _service(first_groups.get(ident, []), "first_response", now),
                "resolution": _service(rows, "resolution", now),
                "breaches": sum(breaches(r, now) for r in rows),
                "csat": _csat(survey_groups.get(ident, [])),
            })

    report.backlog = backlog_figures(store, now)
    return report


# The conversations behind a figure -----------------------------------------------------------------------

def rows_for(report: Report, figure: str, *, channel: str | None = None, level: str | None = None,
             band: str | None = None, agent: int | None = None, team: int | None = None,
             age: str | None = None, store: Any = None) -> list[dict[str, Any]]:
    """The conversations a figure counts, filtered as its table cell is (channel, level, band, ...).

    The backlog's rows are read from `store` (needed for those figures), as they are now: the report
    holds only the backlog's counts."""
    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}")
    now = report.now
    if figure == "csat":
        rows = [s for s in report.surveys if band is None or wait_band(_survey_wait(s)) == band]
        if agent is not None:
            rows = [s for s in rows if s["survey_agent_id"] == agent]
        if team is not None:
            rows = [s for s in rows if s["survey_team_id"] == team]
    elif figure in ("backlog", "waiting"):
        if store is None:
            raise ValueError("the backlog's conversations are read from the store, as they are now")
        rows = store.report_backlog()
        if figure == "waiting":
            rows = sorted((r for r in rows if r["status"] in ("new", "open") and r["waiting_since"]),
                          key=lambda r: r["waiting_since"])
        if age is not None:
            rows = [r for r in rows if age_bucket(r["created_at"], now) == age]
    else:
        rows = list(report.conversations)
        if figure in ("first_response", "resolution"):
            rows = [r for r in rows if effective_level(r, figure, now)]
            if level == "adequate":  # "met adequate" includes those that met desired, as the share does
                rows = [r for r in rows if effective_level(r, figure, now) in ("desired", "adequate")]
            elif level is not None:
                rows = [r for r in rows if effective_level(r, figure, now) == level]
        elif figure == "breaches":
            rows = [r for r in rows if breaches(r, now)]
        if agent is not None or figure == "agent":
            rows = [r for r in rows if r["agent_id"] == agent]
        if team is not None or figure == "team":
            rows = [r for r in rows if r["team_id"] == team]
    if channel is not None:
        rows = [r for r in rows if r["channel"] == channel]
    return rows


CSV_COLUMNS = (
    "conversation", "link", "channel", "subject", "customer", "status", "priority", "created_at",
    "first_response_at", "first_response_business_minutes", "first_response_level", "resolved_at",
    "resolution_business_minutes", "resolution_level", "next_response_breaches", "policy", "agent", "team",
    "csat_score", "csat_comment", "waiting_since",
)


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a formula-looking string gets a leading quote (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 1) if seconds is not None else None


def to_csv(report: Report, rows: Iterable[Mapping[str, Any]], base_url: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    now = report.now
    for r in rows:
        writer.writerow([csv_safe(v) for v in (
            r["id"], f"{base_url}/conversations/{r['id']}", r["channel"], r["subject"], r["customer_name"],
            r["status"], r["priority"], r["created_at"], r["first_response_at"],
            _minutes(r["first_response_seconds"]), effective_level(r, "first_response", now), r["resolved_at"],
            _minutes(r["resolution_seconds"]), effective_level(r, "resolution", now), r["next_response_breaches"],
            r["sla_policy"], report.agent_names.get(r["agent_id"], "") if r["agent_id"] else "",
            r["team_name"] or "", r["csat_score"], r["csat_comment"], r.get("waiting_since"),
        )])
    return buffer.getvalue()


# The spam check, measured on the audit samples (#14, inbox/triage_flow.py) ----------------------------

def spam_check_quality(store: Any) -> list[dict[str, Any]]:
    """Per channel, the machine's precision and recall on spam, measured against people's decisions on
    the audit samples (a random share of the items it decided alone, so the estimate is fair).

    precision: of the items it called spam, the share people agreed were spam; recall: of the sampled
    items people called spam, the share it had caught. None when there is nothing to divide by.
    """
    rows = []
    for row in store.triage.sample_outcomes():
        caught, wrong, missed = row.true_spam or 0, row.false_spam or 0, row.missed_spam or 0
        rows.append({
            "channel": row.channel,
            "decided": row.decided,
            "precision": caught / (caught + wrong) if caught + wrong else None,
            "recall": caught / (caught + missed) if caught + missed else None,
        })
    return rows
# Building a report once per view --------------------------------------------------------------------------

class ReportCache:
    """Reports and their chart images, built once and reused by the page, its charts and its CSVs.

    A report is keyed by the database, the period (week and time zone), the store's data version
    (`report_data_version`: messages, conversation changes, surveys, people) and the minute of
    `now`: a change anyone makes shows at once, and what the version does not see (service-level
    results the worker stores) at most a minute late. Thread-safe; the oldest entries go first.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def _entry(self, store: Any, period: Period, now: dt.datetime) -> dict[str, Any]:
        key = (str(store.path), period, store.report_data_version(), now.replace(second=0, microsecond=0))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        report = build(store, period, now)
        entry = {"report": report, "charts": {}}
        with self._lock:
            self.builds += 1
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def report(self, store: Any, period: Period, now: dt.datetime | None = None) -> Report:
        """The report of `period` as of `now`, built at most once per key."""
        return self._entry(store, period, now or clock.now())["report"]

    def chart(self, store: Any, period: Period, name: str, locale: str, draw: Callable[[Report], bytes],
              now: dt.datetime | None = None) -> bytes:
        """The chart `name` of that report in `locale`, drawn by `draw(report)` once per report."""
        entry = self._entry(store, period, now or clock.now())
        charts = entry["charts"]
        if (name, locale) not in charts:
            charts[(name, locale)] = draw(entry["report"])
        return charts[(name, locale)]

    def clear(self, *, charts_only: bool = False) -> None:
        """Forget every report (or only their drawn charts)."""
        with self._lock:
            if charts_only:
                for entry in self._entries.values():
                    entry["charts"].clear()
            else:
                self._entries.clear()
