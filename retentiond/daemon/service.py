"""The long-running service: start-up, the scheduler, signals, the watchdog, reload and stop.

Threads: the main thread waits for signals (through a wakeup fd, so a handler never runs
real code at an awkward moment), feeds the watchdog and writes STATUS. APScheduler's thread
fires jobs into three single-thread executors: ``default`` runs the real jobs one at a time
(the job in hand is always one), ``heartbeat`` proves the scheduler loop is alive, and
``observe`` refreshes the counts the status line shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, text

from retentiond.clock import LONDON, Clock, SystemClock
from retentiond.config import Config, ConfigError, load_config
from retentiond.daemon.health import READY, STOPPING, Health
from retentiond.daemon.httpd import MetricsServer
from retentiond.daemon.instance_lock import InstanceLock, acquire_instance_lock
from retentiond.daemon.jobs import JOBS, JobEnv, JobOutcome, Wiring, load_wiring
from retentiond.daemon.metrics import Metrics
from retentiond.daemon.queries import CountsCache
from retentiond.daemon.schedule import make_trigger
from retentiond.daemon.sdnotify import notify, watchdog_interval_s
from retentiond.daemon.settings import JOB_NAMES, DaemonSettings, is_loopback, load_settings
from retentiond.daemon.slots import SCHEDULER_ACTOR, evaluated_on
from retentiond.lifecycle.context import Context
from retentiond.logs import configure_logging, describe_error, get_logger
from retentiond.policy import PolicyError, PolicySet, load_policy_in_force
from retentiond.registry.db import (
    make_engine,
    require_current,
    require_exists,
    session_factory,
    upgrade,
)

log = get_logger("retentiond.daemon")

#: Jobs whose every run is news; the others log at info only when they did something.
_ALWAYS_LOGGED = {"evaluate", "digest", "expire_holds"}
_OUTCOMES = ("ok", "skipped", "unavailable", "failed")


class ListenError(RuntimeError):
    """An address the service must listen on cannot be used; the message names the address
    and the setting that chose it."""


class _ToStructlog(logging.Handler):
    """APScheduler logs through the standard library; send it out as JSON like the rest."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "maximum number of running instances reached" in message:
            return  # a long run makes its own next tick wait: expected, not news
        get_logger(record.name).log(record.levelno, "scheduler_message", message=message)


def route_scheduler_logs() -> None:
    """Once per process: APScheduler's warnings and errors as JSON log lines."""
    logger = logging.getLogger("apscheduler")
    if not any(isinstance(h, _ToStructlog) for h in logger.handlers):
        logger.addHandler(_ToStructlog())
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def load_policy(cfg: Config) -> PolicySet:
    """The same refusals as the commands (unsigned packs are not put in force)."""
    return load_policy_in_force(cfg.policy_paths)


class Service:
    """One daemon process. ``serve()`` for the service, ``run_once()`` for ``--once``."""

    def __init__(self, cfg: Config, *, clock: Clock | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.settings: DaemonSettings = load_settings(cfg)
        # Read now so that a bad [web] section stops the start (exit 78), not a later thread.
        from retentiond.web.settings import load_web_settings

        self.web_enabled = load_web_settings(cfg).enabled
        self.web_app: Any = None
        self.web_stop = threading.Event()
        self.web_thread: threading.Thread | None = None
        self.clock = clock or SystemClock()
        self.environ = os.environ if environ is None else environ
        self.stop = threading.Event()
        #: Held while a reload swaps cfg, settings, ctx and wiring, so that a job never
        #: starts with half of the old state and half of the new.
        self._swap = threading.Lock()
        self.owner = self.settings.instance or f"{socket.gethostname()}:{os.getpid()}"
        # Three missed heartbeats and a second: a busy machine is not a dead loop.
        self.health = Health(heartbeat_max_age_s=3 * self.settings.heartbeat_s + 1,
                             stall_s={n: s.stall_s for n, s in self.settings.jobs.items()})
        self.lock: InstanceLock | None = None
        self.engine: Engine | None = None
        self.ctx: Context | None = None
        self.wiring = Wiring()
        #: Wirings replaced by a reload, closed once no job can be using them.
        self._retired: list[Wiring] = []
        self._closed = False
        self.counts: CountsCache | None = None
        self.metrics: Metrics | None = None
        self.http: MetricsServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.reload_error: str | None = None
        self._last_status = ""
        self._last_problems: list[str] = []
        self._signal_r: socket.socket | None = None
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1

    # --- notify ------------------------------------------------------------------------------

    def notify(self, *fields: str) -> None:
        notify(*fields, environ=self.environ)

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notify(f"STATUS={text}")

    # --- start-up ------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything before READY=1: lock, migrate, check the schema, load policies."""
        route_scheduler_logs()
        where = f" ({self.cfg.describe_database()})"
        if not self.settings.migrate_on_start:
            require_exists(self.cfg.database_url, where=where)
        self.lock = acquire_instance_lock(self.cfg.database_url)
        kwargs: dict[str, Any] = {}
        if not self.cfg.is_sqlite:
            kwargs["connect_args"] = {"connect_timeout": 10}
        engine = self.engine = make_engine(self.cfg.database_url, **kwargs)
        if self.settings.migrate_on_start:
            self.status("starting: migrating the database")
            upgrade(engine)
        require_current(engine, where=where)
        self.status("starting: loading policies")
        policy = load_policy(self.cfg)
        self.wiring = load_wiring(self.cfg)
        self.ctx = Context(sessions=session_factory(engine), policy=policy, clock=self.clock,
                           actor=SCHEDULER_ACTOR)
        self.counts = CountsCache(self.ctx.sessions, self.clock,
                                  grace_days=self.settings.overdue_grace_days,
                                  max_age_s=self.settings.metrics_cache_s)
        self.metrics = Metrics(self.counts, self.health, self._info)
        for name in JOB_NAMES:
            for outcome in _OUTCOMES:
                self.metrics.runs.labels(name, outcome)
        for feature, reason in self.wiring.unavailable().items():
            log.warning("unavailable", feature=feature, reason=reason)

    def _info(self) -> dict[str, str]:
        return {"policy_version": self.ctx.policy.version if self.ctx else "",
                "instance": self.owner}

    # --- jobs ----------------------------------------------------------------------------------

    def _job_env(self) -> JobEnv:
        with self._swap:
            assert self.ctx and self.engine and self.counts
            return JobEnv(ctx=self.ctx, engine=self.engine, settings=self.settings,
                          wiring=self.wiring, stop=self.stop, owner=self.owner,
                          counts=self.counts)

    def run_job(self, name: str) -> str:
        """Run one job now, in this thread; returns its outcome (ok, skipped, unavailable,
        failed). Never raises: a failed job is logged, counted and shown, and the service goes on."""
        if self.stop.is_set():
            return "skipped"
        env = self._job_env()
        self.health.job_started(name)
        with structlog.contextvars.bound_contextvars(job=name):
            try:
                outcome: JobOutcome = JOBS[name](env)
            except Exception as exc:
                error = describe_error(exc)
                duration = self.health.job_finished(name, "failed", error=error)
                if self.metrics:
                    self.metrics.job_done(name, "failed", duration, None)
                log.error("job_failed", error_type=type(exc).__name__, error=error,
                          duration_s=round(duration, 3))
                return "failed"
            duration = self.health.job_finished(name, outcome.status, note=outcome.note or None)
            if self.metrics:
                self.metrics.job_done(name, outcome.status, duration, outcome.counts)
            fields: dict[str, Any] = {"duration_s": round(duration, 3), **outcome.counts}
            if outcome.note:
                fields["note"] = outcome.note
            if outcome.status == "unavailable":
                log.debug("job_unavailable", **fields)
            elif outcome.status == "skipped":
                log.info("job_skipped", **fields)
            elif name in _ALWAYS_LOGGED or any(outcome.counts.values()):
                log.info("job_finished", **fields)
            else:
                log.debug("job_finished", **fields)
            return outcome.status

    def _schedule_job(self, name: str) -> None:
        assert self.scheduler is not None
        spec = self.settings.jobs[name]
        if self.scheduler.get_job(name) is not None:
            self.scheduler.remove_job(name)
        if not spec.enabled:
            return
        first: dict[str, Any] = {}
        if spec.interval_s is not None:  # reap and execute straight away after a restart
            first["next_run_time"] = dt.datetime.now(dt.UTC)
        self.scheduler.add_job(self.run_job, make_trigger(spec), args=[name], id=name,
                               name=name, executor="default", **first)

    def _make_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(1), "heartbeat": ThreadPoolExecutor(1),
                       "observe": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=LONDON,
        )
        self.scheduler = scheduler
        for name in JOB_NAMES:
            self._schedule_job(name)
        now = dt.datetime.now(dt.UTC)
        scheduler.add_job(self.health.beat, IntervalTrigger(seconds=self.settings.heartbeat_s),
                          id="heartbeat", executor="heartbeat", next_run_time=now)
        scheduler.add_job(self._refresh_counts, IntervalTrigger(seconds=30), id="status",
                          executor="observe", next_run_time=now)
        return scheduler

    def _refresh_counts(self) -> None:
        if self.counts is not None and not self.stop.is_set():
            try:
                self.counts.get()
            except Exception as exc:
                log.warning("registry_unreachable", error=describe_error(exc))

    def _catch_up(self) -> None:
        """A nightly tick missed while the service was down is run now."""
        assert self.scheduler and self.engine
        today = self.clock.today()
        spec = self.settings.jobs["evaluate"]
        if not spec.enabled:
            return
        if evaluated_on(self.engine, today):
            log.info("evaluation_up_to_date", as_of=today.isoformat())
            return
        log.info("evaluation_catch_up", as_of=today.isoformat(),
                 reason="no scheduler evaluation for today's London date yet")
        self.scheduler.modify_job("evaluate", next_run_time=dt.datetime.now(dt.UTC))

    # --- status, health ------------------------------------------------------------------------

    def status_line(self) -> str:
        """What ``systemctl status`` shows, e.g. 'idle; next evaluation 2026-11-23 03:30 GMT;
        812 pending review, 3 overdue, 0 failed; policy 1a2b3c4d5e6f7a8b'."""
        running = self.health.running()
        parts = [("running " + ", ".join(f"{n} ({s:.0f}s)" for n, s in running))
                 if running else "idle"]
        job = self.scheduler.get_job("evaluate") if self.scheduler else None
        if job is not None and job.next_run_time is not None:
            when = job.next_run_time.astimezone(LONDON)
            parts.append(f"next evaluation {when:%Y-%m-%d %H:%M %Z}")
        elif not self.settings.jobs["evaluate"].enabled:
            parts.append("evaluation disabled")
        counts = self.counts.peek() if self.counts else None
        if counts is not None:
            parts.append(f"{counts.pending_review} pending review, {counts.overdue} overdue, "
                         f"{counts.failed} failed")
        missing = self.wiring.unavailable()
        if missing:
            parts.append(f"not available: {', '.join(missing)}")
        failed = [n for n, j in self.health.jobs().items() if j.last_outcome == "failed"]
        if failed:
            parts.append(f"last run failed: {', '.join(failed)}")
        if self.ctx is not None:
            parts.append(f"policy {self.ctx.policy.version}")
        if self.reload_error:
            parts.append(self.reload_error)
        if self._last_problems:
            parts.append("UNHEALTHY: " + "; ".join(self._last_problems))
        return "; ".join(parts)

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: the loop is alive, nothing is stuck, and the registry answers."""
        problems = (self.health.loop_problems() if self.health.phase == READY
                    else [f"the service is {self.health.phase}"])
        try:
            assert self.engine is not None
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            problems.append(f"the registry database cannot be reached ({describe_error(exc)})")
        doc = {
            "status": "ok" if not problems else "unhealthy", "phase": self.health.phase,
            "problems": problems, "instance": self.owner,
            "policy_version": self.ctx.policy.version if self.ctx else None,
            "execution": self.wiring.pipeline.unavailable or "available",
            "unavailable": self.wiring.unavailable(),
            "reload_error": self.reload_error,
            "jobs": {n: j.as_json() for n, j in sorted(self.health.jobs().items())},
        }
        return not problems, doc

    def _tick(self, watchdog: float | None) -> None:
        problems = self.health.loop_problems()
        if problems != self._last_problems:
            if problems:
                log.error("unhealthy", problems=problems, watchdog="not fed")
            else:
                log.info("healthy_again")
            self._last_problems = problems
        if not problems and watchdog is not None:
            self.notify("WATCHDOG=1")
        if self._retired and not self.health.running():
            self._close_retired()
        self.status(self.status_line())

    # --- signals ------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._signal_r, self._signal_w = r, w
        self._old_wakeup = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, lambda *_: None)

    def _restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()
        if self._signal_r is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            self._signal_r.close()
            self._signal_w.close()
            self._signal_r = None

    def _wait_signals(self, timeout: float) -> list[int]:
        assert self._signal_r is not None
        ready, _, _ = select.select([self._signal_r], [], [], max(timeout, 0))
        if not ready:
            return []
        try:
            return list(self._signal_r.recv(64))
        except BlockingIOError:
            return []

    # --- reload -------------------------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: read the config and policies again. If anything is wrong, keep the running
        ones, log every problem and say so in STATUS; the service goes on either way."""
        assert self.ctx is not None
        old_version = self.ctx.policy.version
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                    "STATUS=reloading configuration and policies")
        log.info("reload_requested", config=self.cfg.source)
        problems: list[str]
        try:
            cfg = load_config(self.cfg.source)
            settings = load_settings(cfg)
            policy = load_policy(cfg)
            wiring = load_wiring(cfg)
        except PolicyError as exc:
            problems = list(exc.problems)
        except ConfigError as exc:
            problems = [str(exc)]
        except Exception as exc:  # whatever it is, the running service must not fall over
            problems = [describe_error(exc)]
        else:
            problems = []
        if problems:
            at = dt.datetime.now(LONDON)
            self.reload_error = (f"last reload refused at {at:%Y-%m-%d %H:%M} ({len(problems)} "
                                 f"problem(s), see the log); still on policy {old_version}")
            log.error("reload_refused", problems=problems, kept_policy_version=old_version)
            self.notify("READY=1", f"STATUS={self.status_line()}")
            return False
        for what, old, new in (("[database].url", self.cfg.database_url, cfg.database_url),
                               ("[metrics].listen", self.settings.metrics_listen,
                                settings.metrics_listen)):
            if old != new:
                log.warning("reload_needs_restart", key=what,
                            reason="this setting takes effect when the service restarts")
        settings = dataclasses.replace(settings, metrics_listen=self.settings.metrics_listen)
        previous = self.settings
        with self._swap:
            self._retired.append(self.wiring)
            self.cfg, self.settings, self.wiring = cfg, settings, wiring
            self.ctx = dataclasses.replace(self.ctx, policy=policy)
        if self.web_app is not None:
            from retentiond.web.app import set_policy

            # Pages and jobs act under the same policy version. A changed [web] section
            # takes effect at the next restart.
            set_policy(self.web_app, policy)
        configure_logging(cfg.log_level, cfg.log_format, cfg.pseudonym_key)
        self.health.stall_s = {n: s.stall_s for n, s in settings.jobs.items()}
        self.health.heartbeat_max_age_s = 3 * settings.heartbeat_s + 1
        if self.counts is not None:
            self.counts.grace_days = settings.overdue_grace_days
            self.counts.max_age_s = settings.metrics_cache_s
        if self.scheduler is not None:
            if previous.heartbeat_s != settings.heartbeat_s:
                self.scheduler.reschedule_job(
                    "heartbeat", trigger=IntervalTrigger(seconds=settings.heartbeat_s))
            for name in JOB_NAMES:
                if previous.jobs[name] != settings.jobs[name]:
                    self._schedule_job(name)
                    log.info("job_rescheduled", job_id=name,
                             schedule=settings.jobs[name].describe())
        self.reload_error = None
        log.info("reloaded", policy_version=policy.version, previous_policy_version=old_version,
                 unavailable=wiring.unavailable())
        self.notify("READY=1", f"STATUS={self.status_line()}")
        return True

    # --- the service ---------------------------------------------------------------------------

    def serve(self) -> int:
        """Run until SIGTERM or SIGINT. Returns the exit status."""
        self._install_signals()
        try:
            self.start()
            self._start_http()
            self._start_web()
            scheduler = self._make_scheduler()
            scheduler.start()
            self._catch_up()
            self.health.phase = READY
            watchdog = watchdog_interval_s(self.environ)
            log.info("daemon_started", pid=os.getpid(), instance=self.owner,
                     policy_version=self.ctx.policy.version if self.ctx else None,
                     database=self.engine.url.render_as_string(hide_password=True)
                     if self.engine else None,
                     jobs={n: s.describe() for n, s in self.settings.jobs.items()},
                     metrics=f"{self.http.address[0]}:{self.http.address[1]}" if self.http else None,
                     watchdog_s=watchdog, unavailable=self.wiring.unavailable())
            self.notify("READY=1", f"STATUS={self.status_line()}")
            tick = min(watchdog / 3, 5.0) if watchdog else 5.0
            return self._loop(tick, watchdog)
        finally:
            self._close()

    def _start_http(self) -> None:
        listen = self.settings.metrics_listen
        if listen is None or self.metrics is None:
            return
        host, port = listen
        if not is_loopback(host):
            log.warning("metrics_not_loopback", listen=f"{host}:{port}",
                        reason="metrics are counts only, but expose them beyond this host "
                        "only behind a firewall")
        try:
            self.http = MetricsServer(host, port, self.metrics.registry, self.healthz)
        except OSError as exc:
            if "metrics.listen" in self.cfg.overridden:
                chosen = "$RETENTIOND_METRICS_LISTEN chose it: set it to a free address"
            else:
                where = (f"[metrics] listen in {self.cfg.source}" if self.cfg.source
                         else "[metrics] listen (no config file: the default)")
                chosen = (f"{where} chose it: set it, or RETENTIOND_METRICS_LISTEN for this "
                          "instance, to a free address")
            raise ListenError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} (another "
                f"retentiond instance or another program may be using it). {chosen}; "
                'listen = "" turns metrics off') from None

    def _start_web(self) -> None:
        """Serve the review UI and API in a thread when ``[web] enabled = true``. A web server
        that cannot start is logged; the scheduled jobs, which keep the legal promise, go on."""
        if not self.web_enabled or self.ctx is None:
            return
        from retentiond.web.app import create_app, serve

        self.web_app = create_app(self.cfg, policy=self.ctx.policy, clock=self.clock)

        def run_web() -> None:
            try:
                serve(self.cfg, self.web_stop, app=self.web_app)
            except Exception as exc:
                log.error("web_failed", error=describe_error(exc))

        self.web_thread = threading.Thread(target=run_web, name="retentiond-web", daemon=True)
        self.web_thread.start()

    def _loop(self, tick: float, watchdog: float | None) -> int:
        next_tick = 0.0
        while True:
            for sig in self._wait_signals(next_tick - time.monotonic()):
                if sig in (signal.SIGTERM, signal.SIGINT):
                    return self._shutdown(signal.Signals(sig).name)
                if sig == signal.SIGHUP:
                    self.reload()
            if time.monotonic() >= next_tick:
                self._tick(watchdog)
                next_tick = time.monotonic() + tick

    def _shutdown(self, why: str) -> int:
        """Finish the job in hand, start no other, and exit within ``stop_timeout_s``."""
        self.health.phase = STOPPING
        self.stop.set()
        in_hand = [n for n, _ in self.health.running()]
        log.info("stopping", signal=why, finishing=in_hand,
                 stop_timeout_s=self.settings.stop_timeout_s)
        self.notify("STOPPING=1",
                    "STATUS=stopping" + (f": finishing {', '.join(in_hand)}" if in_hand else ""))
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while self.health.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [n for n, _ in self.health.running()]
        if left:
            # A job that ignores the stop request would keep the process alive past systemd's
            # stop timeout; its disposals are leased, and the lease reaper returns them.
            log.error("stop_timeout", jobs=left, stop_timeout_s=self.settings.stop_timeout_s)
            self._close()
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(1)
        log.info("stopped")
        return 0

    def _close_retired(self) -> None:
        while self._retired:
            wiring = self._retired.pop()
            try:
                wiring.close()
            except Exception as exc:
                log.warning("connectors_close_failed", error=describe_error(exc))

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._retired.append(self.wiring)
        self._close_retired()
        if self.web_thread is not None:
            self.web_stop.set()
            self.web_thread.join(timeout=5)
            self.web_thread = None
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.engine is not None:
            self.engine.dispose()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self._restore_signals()

    # --- --once --------------------------------------------------------------------------------

    def run_once(self, out: Callable[[str], None] = print) -> int:
        """One pass of every enabled job, in order; 0 when none failed."""
        self._install_signals()
        try:
            self.start()
            self.health.phase = READY
            outcomes: dict[str, str] = {}

            def one_pass() -> None:
                for name in JOB_NAMES:
                    if self.stop.is_set():
                        break
                    if not self.settings.jobs[name].enabled:
                        outcomes[name] = "disabled"
                        continue
                    outcomes[name] = self.run_job(name)

            worker = threading.Thread(target=one_pass, name="once", daemon=True)
            worker.start()
            deadline = float("inf")
            while worker.is_alive():
                for sig in self._wait_signals(0.2):
                    if sig in (signal.SIGTERM, signal.SIGINT) and not self.stop.is_set():
                        log.info("stopping", signal=signal.Signals(sig).name)
                        self.stop.set()
                        deadline = time.monotonic() + self.settings.stop_timeout_s
                if time.monotonic() > deadline:
                    log.error("stop_timeout", jobs=[n for n, _ in self.health.running()],
                              stop_timeout_s=self.settings.stop_timeout_s)
                    return 1
                worker.join(timeout=0)
            for name in JOB_NAMES:
                state = self.health.jobs()[name]
                detail = state.last_error or state.last_note or ""
                out(f"{name}: {outcomes.get(name, 'not run')}" + (f" ({detail})" if detail else ""))
            return 1 if "failed" in outcomes.values() or self.stop.is_set() else 0
        finally:
            self._close()
