"""The worker: the scheduler that polls every channel, and the lease that keeps it single.

APScheduler (3.x, `BackgroundScheduler`, UTC) runs one job per polled channel plus housekeeping.
Each job has a fixed id, `max_instances=1` (a poll slower than its interval is skipped and logged,
never stacked), `coalesce=True` (a clock jump or a busy machine does not fire a burst of catch-up
runs) and an explicit `misfire_grace_time` (APScheduler's default of 1 s silently drops late runs).

APScheduler knows nothing of other processes, so two `mainland worker`s (or a worker inside each
web process) would poll every channel twice. A row in the database decides instead: the worker
that holds the lease `"scheduler"` polls, every other one waits on standby. The holder renews the
lease every `renew_every` seconds; a standby tries to take it at the same pace and succeeds once
the holder released it (clean stop) or stopped renewing it (killed) and it expired. Every job
checks the lease in the database before it touches a channel, so a worker that lost the lease
(a long pause of its process) stops polling before its next run. On PostgreSQL the holder also
holds an advisory lock on a session of its own (inbox/store/pg_lease.py), which the server lets go
of when the process ends however it ends: a standby that gets it takes the lease at its next try,
without waiting for a killed holder's lease to expire.

Besides the polls, the lease holder sends the replies that are due (`inbox.outbox.send_due`,
every `outbox_every` seconds), sends outbound webhooks (`inbox.webhooks_out.deliver_due`) and
checkpoints the write-ahead log.

Progress can be watched without guessing at times: `Worker.runs` counts the finished runs of each
job by its id (`poll:<channel>`, `lease`, `outbox`, `housekeeping`, ...; runs on standby included),
`Worker.polls` the polls actually done per channel, and `Worker.wait_until(condition, timeout)`
blocks until `condition()` holds, checking it again each time a job finishes. Waiting for "the
standby tried for the lease twice" or "mail was polled five times" holds on a busy machine too,
where waiting a number of seconds does not.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from inbox import clock, storage_errors
from inbox.poller import PollOutcome, backoff_delay, poll_channel
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso, parse_iso

if TYPE_CHECKING:
    from inbox.store.pg_lease import SessionLock

log = logging.getLogger("mainland.worker")

LEASE_NAME = "scheduler"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_RENEW_EVERY = 20.0
DEFAULT_CHECKPOINT_EVERY = 300.0
DEFAULT_OUTBOX_EVERY = 10.0
#: Seconds between service-level checks (due times, lead notifications) and survey runs; and
#: between checks whether the weekly digest is due (inbox/service_levels.py, csat.py, digest.py).
SLA_EVERY = 60.0
SURVEYS_EVERY = 60.0
DIGEST_EVERY = 300.0
#: Seconds between notification runs: customer replies, batch mails due (inbox/notifications.py).
NOTIFICATIONS_EVERY = 15.0
#: Seconds between acknowledgement runs: receipts for new conversations (inbox/acknowledgements.py).
ACKNOWLEDGEMENTS_EVERY = 15.0
#: Seconds between outbound webhook runs: new events fanned out, due deliveries sent (inbox/webhooks_out.py).
WEBHOOKS_EVERY = 5.0
#: Seconds between checks for snoozed conversations to wake up.
DEFAULT_SNOOZE_EVERY = 30.0
#: Seconds between routing runs (inactivity, flowing on, pulling the backlog).
ROUTING_EVERY = 15.0
#: How often unread website-chat answers are looked for, to follow their visitor by email (#18).
CHAT_FOLLOWUP_EVERY = 30.0
#: How often a worker looks for channels and settings an admin changed in the browser; shorter than any
#: channel's poll interval, so a change is in force within one poll interval.
SETTINGS_EVERY = 5.0
#: Temporary attachment files younger than this may belong to a write in progress (a web form
#: upload in the web process); only older ones are crash leftovers.
ORPHAN_MIN_AGE_SECONDS = 3600.0


@dataclass(frozen=True)
class PollPlan:
    """One channel the worker polls, and how often."""

    channel: str
    every: float

    @property
    def job_id(self) -> str:
        return f"poll:{self.channel}"


def _utcnow() -> dt.datetime:
    return clock.now()


def poll_plans(mainland: Mainland) -> list[PollPlan]:
    """Every enabled channel whose connector can be polled, with its interval in seconds."""
    plans = []
    for name in mainland.channel_names():
        cls = mainland.connector_class(name)
        if cls.push_only or mainland.config.channels[name].paused:
            continue
        every = mainland.config.channels[name].poll_every or float(cls.default_poll_every)
        plans.append(PollPlan(name, every))
    return plans


class Worker:
    """Polls the configured channels on a schedule while it holds the database lease.

    `start()` returns at once (the jobs run in background threads); `run_forever()` starts, waits
    for SIGTERM or SIGINT and stops cleanly; `stop()` waits for running jobs and releases the lease.
    Durations come from the `worker:` config section unless given here.
    """

    def __init__(
        self,
        mainland: Mainland,
        *,
        lease_seconds: float | None = None,
        renew_every: float | None = None,
        checkpoint_every: float | None = None,
        outbox_every: float | None = None,
    ) -> None:
        settings = mainland.config.extra.get("worker") or {}
        self.mainland = mainland
        self.lease_seconds = float(lease_seconds or settings.get("lease_seconds") or DEFAULT_LEASE_SECONDS)
        self.renew_every = float(renew_every or settings.get("renew_every") or DEFAULT_RENEW_EVERY)
        self.checkpoint_every = float(
            checkpoint_every or settings.get("checkpoint_every") or DEFAULT_CHECKPOINT_EVERY)
        self.outbox_every = float(outbox_every or settings.get("outbox_every") or DEFAULT_OUTBOX_EVERY)
        if self.renew_every >= self.lease_seconds:
            # A lease renewed less often than it lasts would lapse between renewals.
            self.renew_every = self.lease_seconds / 3
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}"
        self.plans = poll_plans(mainland)
        self._config_in_force = mainland.config
        #: Finished polls per channel in this process (for logs, tests and `status()`).
        self.polls: Counter[str] = Counter()
        #: Finished runs per job id, on standby too (a standby's poll job runs but does not poll).
        self.runs: Counter[str] = Counter()
        self._progress = threading.Condition()
        self._leader = False
        self._started = False
        self._local = threading.local()
        self._stores: list[Store] = []
        self._stores_lock = threading.Lock()
        self._own_store: Store | None = None
        self._session_lock: SessionLock | None = None
        #: One outbox round at a time.
        self._outbox_running = threading.Lock()
        #: When the one-off round for the next due reply is set (the machine's clock), if one is.
        self._outbox_wake_at: dt.datetime | None = None
        self._outbox_wake_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(
                max(4, min(len(self.plans) + 2, 16)),
                pool_kwargs={"thread_name_prefix": f"mainland-worker-{self.holder.rsplit(':', 1)[-1][:8]}"},
            )},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # Life cycle ---------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this worker holds the scheduler lease (as of its last renewal)."""
        return self._leader

    def start(self) -> None:
        """Take the lease if free, schedule every job, and return (jobs run in the background)."""
        if self._started:
            return
        self._own_store = self.mainland.open_store(migrate=True)
        #: On PostgreSQL, held with the lease: the server lets go of it when this process ends, however.
        self._session_lock = self._own_store.session_lock(LEASE_NAME)
        # Opening took in the channels stored in the browser: poll those too from the start.
        self.plans = poll_plans(self.mainland)
        self._config_in_force = self.mainland.config
        self._renew_lease(self._own_store)
        # The scheduler runs on the machine's clock, whatever clock the domain reads: first runs are
        # real moments (a frozen or shifted domain clock would make APScheduler replay or wait).
        now = clock.SYSTEM.now()
        self._add_job(self._lease_job, "lease", self.renew_every, first_run=now + dt.timedelta(seconds=self.renew_every))
        self._add_job(self._housekeeping_job, "housekeeping", self.checkpoint_every,
                      first_run=now + dt.timedelta(seconds=self.checkpoint_every))
        self._add_job(self._outbox_job, "outbox", self.outbox_every, first_run=now)
        self._add_job(self._leader_task, "service_levels", SLA_EVERY, first_run=now, args=("service_levels",))
        self._add_job(self._leader_task, "surveys", SURVEYS_EVERY, first_run=now + dt.timedelta(seconds=20),
                      args=("surveys",))
        self._add_job(self._leader_task, "digest", DIGEST_EVERY, first_run=now + dt.timedelta(seconds=40),
                      args=("digest",))
        self._add_job(self._leader_task, "notifications", NOTIFICATIONS_EVERY,
                      first_run=now + dt.timedelta(seconds=5), args=("notifications",))
        self._add_job(self._leader_task, "acknowledgements", ACKNOWLEDGEMENTS_EVERY,
                      first_run=now + dt.timedelta(seconds=3), args=("acknowledgements",))
        self._add_job(self._leader_task, "webhooks", WEBHOOKS_EVERY, first_run=now + dt.timedelta(seconds=2),
                      args=("webhooks",))
        self._add_job(self._snooze_job, "snooze", DEFAULT_SNOOZE_EVERY, first_run=now)
        self._add_job(self._routing_job, "routing", ROUTING_EVERY, first_run=now)
        self._add_job(self._chat_followup_job, "chat_followup", CHAT_FOLLOWUP_EVERY, first_run=now)
        self._add_job(self._settings_job, "settings", SETTINGS_EVERY,
                      first_run=now + dt.timedelta(seconds=SETTINGS_EVERY))
        for plan in self.plans:
            self._add_job(self._poll_job, plan.job_id, plan.every, first_run=now, args=(plan.channel,))
        self.scheduler.start()
        self._started = True
        from inbox import outbox

        outbox.due_listeners.append(self.wake_outbox_at)
        described = ", ".join(f"{p.channel} every {p.every:g} s" for p in self.plans) or "no pollable channels"
        if self._leader:
            log.info("worker %s holds the scheduler lease; polling %s", self.holder, described)
        else:
            log.info("worker %s on standby: the scheduler lease is held by %s", self.holder,
                     self._own_store.lease_holder(LEASE_NAME, iso(_utcnow())))

    def stop(self) -> None:
        """Wait for running jobs, release the lease (so a standby takes over at once) and close."""
        if not self._started:
            return
        self._started = False
        from inbox import outbox

        if self.wake_outbox_at in outbox.due_listeners:
            outbox.due_listeners.remove(self.wake_outbox_at)
        self.scheduler.shutdown(wait=True)
        store = self._own_store
        if store is not None:
            try:
                with store.write():
                    store.release_lease(LEASE_NAME, self.holder)
            except Exception:
                log.exception("could not release the scheduler lease; it expires in %.0f s", self.lease_seconds)
            if self._session_lock is not None:
                self._session_lock.release()
        self._leader = False
        with self._stores_lock:
            stores, self._stores = self._stores, []
        for s in [*stores, *([store] if store else [])]:
            s.close()
        self._own_store = None
        log.info("worker %s stopped", self.holder)

    def run_forever(self, *, on_start: Callable[[Worker], None] | None = None) -> None:
        """Start, then block until SIGTERM or SIGINT (Ctrl-C), then stop cleanly."""
        stopping = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: stopping.set())
        try:
            self.start()
            if on_start:
                on_start(self)
            # wait() with a timeout so that signals are handled promptly on every platform.
            while not stopping.wait(0.5):
                pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def status(self) -> dict[str, Any]:
        """What this worker does right now, for logs and the command line."""
        return {
            "holder": self.holder,
            "leader": self._leader,
            "channels": {p.channel: p.every for p in self.plans},
            "polls": dict(self.polls),
            "runs": dict(self.runs),
        }

    def wait_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until `condition()` is true, checked now and whenever a job finishes; False on timeout.

        `condition` runs under the lock that guards `runs`, so it must be quick and must not wait itself.
        """
        with self._progress:
            return self._progress.wait_for(condition, timeout)

    # Jobs ---------------------------------------------------------------------------------------

    def _add_job(self, func: Callable[..., Any], job_id: str, every: float, *, first_run: dt.datetime,
                 args: tuple = ()) -> None:
        self.scheduler.add_job(
            self._tracked, "interval", seconds=every, args=(job_id, func, *args), id=job_id, name=job_id,
            replace_existing=True, next_run_time=first_run, max_instances=1, coalesce=True,
            # Half the interval: a run that is late by more than that is skipped (coalesce keeps
            # it to one), so a slow machine does not poll twice in quick succession.
            misfire_grace_time=max(1, int(every / 2)),
        )

    def _tracked(self, job_id: str, func: Callable[..., Any], *args: Any) -> None:
        """Run one job, then count the run and wake whoever is in `wait_until`."""
        try:
            func(*args)
        finally:
            with self._progress:
                self.runs[job_id] += 1
                self._progress.notify_all()

    def _store(self) -> Store:
        """This thread's store: SQLite connections are opened one per thread, never shared."""
        store = getattr(self._local, "store", None)
        if store is None:
            # The worker's own store checked the file at start; job threads need not read it all again.
            store = self.mainland.open_store(check=False)
            self._local.store = store
            with self._stores_lock:
                self._stores.append(store)
        return store

    def _lease_job(self) -> None:
        self._renew_lease(self._store())

    def _renew_lease(self, store: Store) -> None:
        now = _utcnow()
        try:
            # With a session lock (PostgreSQL) only its holder may lead, and it may take the lease at
            # once: no other worker's session holds the lock, so none leads, whatever the row says.
            locked = self._session_lock.hold() if self._session_lock is not None else None
            if locked is False:
                held = False
            else:
                with store.write():
                    held = store.acquire_lease(LEASE_NAME, self.holder, iso(now),
                                               iso(now + dt.timedelta(seconds=self.lease_seconds)),
                                               take_over=bool(locked))
        except Exception:
            # Without the database we cannot know who leads: stop polling until it answers again.
            log.exception("could not renew the scheduler lease")
            held = False
        if held and not self._leader:
            log.info("worker %s took the scheduler lease", self.holder)
            self._leader = True
            self._on_lead()
        elif not held and self._leader:
            log.warning("worker %s lost the scheduler lease; standing by", self.holder)
            self._leader = False

    def _on_lead(self) -> None:
        try:
            removed = self.mainland.attachment_store().remove_orphaned_temp_files(
                min_age_seconds=ORPHAN_MIN_AGE_SECONDS)
            if removed:
                log.info("removed %d temporary attachment file(s) left by a crash", removed)
        except Exception:
            log.exception("could not clean up temporary attachment files")

    def _holds_lease(self, store: Store) -> bool:
        """Ask the database, not our memory: a paused process may have lost the lease meanwhile."""
        if not self._leader:
            return False
        try:
            return store.lease_holder(LEASE_NAME, iso(_utcnow())) == self.holder
        except Exception:
            log.exception("could not read the scheduler lease")
            return False

    def _settings_job(self) -> None:
        """Take in channels and settings changed in the browser; poll what is new, stop polling what went."""
        self.mainland.refresh(self._store())
        # Compared by identity: in `mainland serve` the web app shares this Mainland and may have taken
        # the change in first.
        if self.mainland.config is not self._config_in_force:
            self._config_in_force = self.mainland.config
            self.reschedule_polls()

    def reschedule_polls(self) -> None:
        """Make the poll jobs match the channels in force: added, removed, paused, or with a new interval."""
        plans = {plan.channel: plan for plan in poll_plans(self.mainland)}
        current = {plan.channel: plan for plan in self.plans}
        now = clock.SYSTEM.now()
        for name, plan in current.items():
            if name not in plans:
                self.scheduler.remove_job(plan.job_id)
                log.info("stopped polling %s (removed, paused or disabled)", name)
            elif plans[name].every != plan.every:
                self.scheduler.reschedule_job(plan.job_id, trigger="interval", seconds=plans[name].every)
                log.info("polling %s every %g s now", name, plans[name].every)
        for name, plan in plans.items():
            if name not in current:
                self._add_job(self._poll_job, plan.job_id, plan.every, first_run=now, args=(plan.channel,))
                log.info("polling %s every %g s (new or enabled)", name, plan.every)
        self.plans = list(plans.values())

    def _poll_job(self, channel: str) -> None:
        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            outcome = poll_channel(self.mainland, store, channel)
        except Exception as exc:  # a poll must never take the scheduler down with it
            explained = storage_errors.explain(exc)
            if explained is None:
                log.exception("poll of %s crashed", channel)
            else:  # not a bug: say what the operator should do, no traceback
                log.error("poll of %s failed: %s (%s)", channel, explained, exc)
            self._record_crash(channel, exc)
            self.polls[channel] += 1
            return
        self.polls[channel] += 1
        _log_outcome(outcome)

    def _record_crash(self, channel: str, exc: BaseException) -> None:
        """Put an unexpected failure on the channel's health record and back off like any error."""
        message = f"{type(exc).__name__}: {exc}"
        try:
            connector = self.mainland.connector(channel)
            message = connector.redact(message)
            connector.close()
        except Exception:
            message = f"{type(exc).__name__} (details in the worker log)"
        try:
            store = self._store()
            failures = int(store.channel_health().get(channel, {}).get("failures") or 0) + 1
            moment = _utcnow()
            until = moment + dt.timedelta(seconds=backoff_delay(failures))
            with store.write():
                store.record_poll(channel, iso(moment), error=message[:2000], paused_until=iso(until))
        except Exception:
            log.exception("could not record the failed poll of %s", channel)

    def _routing_job(self) -> None:
        """Routing (inbox/routing.py): inactivity makes agents away, their waiting conversations flow
        on, and the backlog is handed out as capacity frees up."""
        from inbox.routing import rebalance

        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            report = rebalance(store)
        except Exception:
            log.exception("routing run failed; trying again in %.0f s", ROUTING_EVERY)
            return
        if report.assigned or report.moved or report.returned_to_queue:
            log.info("routing: %d assigned from the queue, %d passed on, %d back to the queue", report.assigned,
                     report.moved, report.returned_to_queue)

    def _chat_followup_job(self) -> None:
        """Website chat (inbox/chat_followup.py): replies left unread in the chat follow the visitor by email."""
        from inbox import chat_followup

        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            report = chat_followup.run(self.mainland, store)
        except Exception:
            log.exception("chat follow-up run failed; trying again in %.0f s", CHAT_FOLLOWUP_EVERY)
            return
        if report.queued:
            log.info("chat: %d unread answer(s) follow their visitor by email", report.queued)

    def _outbox_job(self) -> None:
        """Send the replies that are due (inbox/outbox.py claims each under its own row lease), then
        set a round for when the next waiting reply falls due, if that comes before the next round."""
        # One round at a time (a one-off round for a due reply may come during a scheduled one): the
        # later waits and then looks again, so every counted run did a whole round after it began.
        with self._outbox_running:
            self._outbox_round()

    def _outbox_round(self) -> None:
        from inbox.outbox import send_due

        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            report = send_due(self.mainland, store)
            due = parse_iso(store.next_outbox_due() or "")
        except Exception:
            log.exception("sending replies failed; trying again in %.0f s", self.outbox_every)
            return
        if report.retrying or report.failed:
            log.info("replies: %d sent, %d to retry, %d failed", report.sent, report.retrying, report.failed)
        elif report.sent:  # a busy team's rounds come several a second: only trouble is news
            log.debug("replies: %d sent", report.sent)
        if due is not None:
            self.wake_outbox_at(due)

    def wake_outbox_at(self, due: dt.datetime) -> None:
        """Send the replies due at `due` (the domain's clock) then, not at the next round: an undo
        window that ends just after a round would otherwise wait `outbox_every` more (a chat's reply
        arriving 10 s late). The outbox's `due_listeners` call this for replies queued in this process."""
        if not self._started:
            return
        # The scheduler runs on the machine's clock, the reply's time is the domain's (see `start`).
        delay = max(0.0, (due - clock.now()).total_seconds())
        machine_now = clock.SYSTEM.now()
        at = machine_now + dt.timedelta(seconds=delay)
        job = self.scheduler.get_job("outbox")
        if job is not None and job.next_run_time is not None and job.next_run_time <= at:
            return  # the next round comes first anyway
        with self._outbox_wake_lock:
            set_at = self._outbox_wake_at
            if set_at is not None and machine_now <= set_at <= at:
                return  # an earlier one-off round is set; it sets the next one
            self._outbox_wake_at = at
            try:
                self.scheduler.add_job(
                    self._tracked, "date", run_date=at, args=("outbox", self._outbox_job), id="outbox_due",
                    name="outbox_due", replace_existing=True, misfire_grace_time=None,
                    # The one set by a running one-off round (for the next reply) must not be
                    # skipped as a second instance of it: the rounds wait for each other instead.
                    max_instances=3)
            except Exception:  # the scheduler is shutting down: the reply waits for the next worker
                log.debug("could not set a round for the next due reply", exc_info=True)

    def _snooze_job(self) -> None:
        """Reopen snoozed conversations whose wake-up time has come (inbox/lifecycle.py)."""
        from inbox.lifecycle import wake_snoozed

        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            woken = wake_snoozed(store)
        except Exception:
            log.exception("waking snoozed conversations failed; trying again in %.0f s", DEFAULT_SNOOZE_EVERY)
            return
        if woken:
            log.info("woke %d snoozed conversation(s)", len(woken))

    def _leader_task(self, name: str) -> None:
        """Service levels (due times, lead notifications), surveys after resolve, the weekly digest,
        notifications (customer replies, batch mails), acknowledgements of new conversations, outbound webhooks."""
        from inbox import acknowledgements, csat, digest, notifications, service_levels, webhooks_out

        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            if name == "service_levels":
                # The policy in force now, not as of the last settings check: due times computed
                # with the one an admin just replaced would be recomputed once more.
                self.mainland.refresh(store)
                refreshed, notified = service_levels.run_checks(
                    store, service_levels.for_config(self.mainland.config),
                    policy_changed_at=service_levels.stored_policy_changed_at(store, self.mainland.bootstrap))
                if notified:
                    log.info("service levels: %d conversation(s) updated, %d lead notification(s)", refreshed,
                             notified)
                # Due times fresh: automation rules on service levels about to pass and long waits (#15).
                from inbox import rules

                fired = rules.run_timed(self.mainland, store)
                if fired:
                    log.info("rules: %d firing(s) on service levels and waiting times", fired)
            elif name == "surveys":
                run = csat.send_due_surveys(self.mainland, store)
                if run.asked:
                    log.info("satisfaction surveys: %d asked, %d skipped", run.asked, run.skipped)
            elif name == "digest":
                week = digest.run_if_due(self.mainland, store)
                if week:
                    log.info("weekly digest %s handled", week)
            elif name == "notifications":
                done = notifications.run(self.mainland, store)
                if done.notified or done.queued or done.sent:
                    log.info("notifications: %d made, %d mail(s) queued, %d sent", done.notified, done.queued,
                             done.sent)
            elif name == "acknowledgements":
                acked = acknowledgements.run(self.mainland, store)
                if acked.sent:
                    log.info("acknowledgements: %d queued, %d skipped", acked.sent, acked.skipped)
            elif name == "webhooks":
                sent = webhooks_out.deliver_due(self.mainland, store)
                if sent.delivered or sent.retrying or sent.dead:
                    log.info("webhooks: %d delivered, %d to retry, %d dead, %d subscription(s) paused",
                             sent.delivered, sent.retrying, sent.dead, sent.paused)
        except Exception:
            log.exception("%s job failed; trying again at its next run", name)

    def _housekeeping_job(self) -> None:
        try:
            store = self._store()
            if not self._holds_lease(store):
                return
            busy, log_pages, moved = store.checkpoint()
            store.api_idempotency.expire(clock.now())  # REST API v1 replays are kept a day
            log.debug("checkpoint: busy=%s wal_pages=%s checkpointed=%s", busy, log_pages, moved)
            self._delete_old_spam(store)
            # The planner's statistics, kept fresh as the inbox grows (nothing else gathers them).
            store.optimize()
        except Exception:
            log.exception("housekeeping failed")

    def _delete_old_spam(self, store: Store) -> None:
        """Spam kept longer than `triage.keep_spam_days` goes (inbox/triage_flow.py)."""
        from inbox import triage_flow

        keep = triage_flow.settings_for(self.mainland.config).keep_spam_days
        deleted = triage_flow.delete_old_spam(store, self.mainland.attachment_store(), keep)
        if deleted:
            log.info("housekeeping: %d spam conversation(s) older than %d days deleted", deleted, keep)


def _log_outcome(outcome: PollOutcome) -> None:
    if outcome.skipped:
        log.debug("poll of %s skipped: %s", outcome.channel, outcome.skipped)
    elif outcome.error:
        log.warning("poll of %s failed: %s; next try in %.0f s", outcome.channel, outcome.error,
                    outcome.retry_after or 0)
    else:
        r = outcome.report
        level = logging.INFO if (r.stored or r.quarantined) else logging.DEBUG
        log.log(level, "polled %s: %d stored, %d duplicate(s), %d quarantined in %d page(s)",
                outcome.channel, r.stored, r.duplicates, r.quarantined, outcome.pages)
