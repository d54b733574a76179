"""Prometheus metrics: a collector that asks the registry at scrape time, and the job timings.

Names follow Prometheus conventions (``_seconds``, ``_total``, base units). Counts come from
``queries.CountsCache`` (at most ``[metrics] cache_s`` old), so a busy scraper cannot load the
database. No label carries a record or a subject: only states, categories and job names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from retentiond import __version__
from retentiond.daemon.health import Health
from retentiond.daemon.queries import CountsCache
from retentiond.logs import get_logger

log = get_logger("retentiond.daemon.metrics")

class RegistryCollector(Collector):
    """Records and disposals by state, due, overdue, failed, needing attention; job state."""

    def __init__(self, counts: CountsCache, health: Health,
                 info: Callable[[], dict[str, str]]) -> None:
        self.counts, self.health, self.info = counts, health, info
        self.job_counts: dict[str, dict[str, int]] = {}

    def collect(self) -> Iterable[Metric]:
        yield InfoMetricFamily("retentiond", "Version of retentiond and the policy in force",
                               value={"version": __version__, **self.info()})
        up = GaugeMetricFamily("retentiond_registry_up",
                               "1 when the last query of the registry succeeded")
        try:
            c = self.counts.get()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics_query_failed", error_type=type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from self._registry(c)
        yield from self._jobs()

    def _registry(self, c: object) -> Iterable[Metric]:
        from retentiond.daemon.queries import RegistryCounts

        assert isinstance(c, RegistryCounts)
        records = GaugeMetricFamily(
            "retentiond_records", "Records by the state of their latest disposal case "
            "('retained' when none)", labels=["state"])
        for state, n in sorted(c.records.items()):
            records.add_metric([state], n)
        yield records
        disposals = GaugeMetricFamily("retentiond_disposals", "Disposal cases by state",
                                      labels=["state"])
        for state, n in sorted(c.disposals.items()):
            disposals.add_metric([state], n)
        yield disposals
        for name, doc, value in (
            ("retentiond_records_due", "Records due on or before today and not yet disposed of",
             c.due),
            ("retentiond_records_overdue", "Records due longer ago than the grace period, not "
             "disposed of, and neither held, deferred nor rejected", c.overdue),
            ("retentiond_disposals_failed", "Disposal cases that failed and need a person",
             c.failed),
            ("retentiond_disposals_pending_review", "Disposal cases awaiting review",
             c.pending_review),
            ("retentiond_records_needing_attention", "Records that cannot be decided (a "
             "trigger date is missing, ...)", c.needs_attention),
            ("retentiond_overdue_grace_days", "The grace period of the overdue count, in days",
             c.grace_days),
            ("retentiond_notifications_dead", "Notices given up (dead letters)",
             c.notifications_dead),
            ("retentiond_webhooks_refused", "Dead notices whose webhook address may not be sent "
             "to (link-local, metadata, private, http to another host); nothing was sent",
             c.webhooks_refused),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        pending = GaugeMetricFamily("retentiond_pending_review_by_category",
                                    "Disposal cases awaiting review, by record category",
                                    labels=["category"])
        for category, n in sorted(c.pending_by_category.items()):
            pending.add_metric([category], n)
        yield pending
        yield from _sources(c)

    def _jobs(self) -> Iterable[Metric]:
        jobs = self.health.jobs()
        success = GaugeMetricFamily("retentiond_job_last_success_timestamp_seconds",
                                    "When each job last finished without error (Unix time)",
                                    labels=["job"])
        finished = GaugeMetricFamily("retentiond_job_last_run_timestamp_seconds",
                                     "When each job last finished, whatever the outcome",
                                     labels=["job"])
        running = GaugeMetricFamily("retentiond_job_running", "1 while the job runs",
                                    labels=["job"])
        available = GaugeMetricFamily("retentiond_job_available", "0 when the last run found "
                                      "the job's code not installed (execution)", labels=["job"])
        counts = GaugeMetricFamily("retentiond_job_last_count", "The counts the last run of "
                                   "each job reported (the digest's are what awaits review)",
                                   labels=["job", "count"])
        for name, j in sorted(jobs.items()):
            if j.last_success_at:
                success.add_metric([name], j.last_success_at.timestamp())
            if j.last_finished_at:
                finished.add_metric([name], j.last_finished_at.timestamp())
            running.add_metric([name], 1 if j.running_since is not None else 0)
            available.add_metric([name], 0 if j.last_outcome == "unavailable" else 1)
            for key, n in sorted(self.job_counts.get(name, {}).items()):
                counts.add_metric([name, key], n)
        yield success
        yield finished
        yield running
        yield available
        yield counts


def _sources(c: object) -> Iterable[Metric]:
    """Each source's latest run, and the records gone at source (retentiond/sources)."""
    from retentiond.daemon.queries import RegistryCounts

    assert isinstance(c, RegistryCounts)
    gone = GaugeMetricFamily("retentiond_records_gone_at_source", "Records a full extract of "
                             "their source no longer lists (kept, flagged for review)",
                             labels=["source"])
    for source, n in sorted(c.gone_by_source.items()):
        gone.add_metric([source or ""], n)
    yield gone
    finished = GaugeMetricFamily("retentiond_source_last_run_timestamp_seconds",
                                 "When each source's latest run finished (Unix time)",
                                 labels=["source"])
    ok = GaugeMetricFamily("retentiond_source_last_run_ok", "1 when the source's latest run "
                           "applied everything it read; 0 when refused or failed",
                           labels=["source"])
    counts = GaugeMetricFamily("retentiond_source_last_run_count", "The counts of each "
                               "source's latest run (rows, created, updated, unchanged, gone, "
                               "back, files_done, files_refused ...)", labels=["source", "count"])
    for source, run in sorted(c.sources.items()):
        finished.add_metric([source], float(run["finished_at"]))  # type: ignore[arg-type]
        ok.add_metric([source], 1 if run["outcome"] == "ok" else 0)
        for key, n in sorted(dict(run["counts"]).items()):  # type: ignore[call-overload]
            counts.add_metric([source, key], n)
    yield finished
    yield ok
    yield counts


class Metrics:
    """The daemon's Prometheus registry: the collector, job durations and outcomes."""

    def __init__(self, counts: CountsCache, health: Health,
                 info: Callable[[], dict[str, str]]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.collector = RegistryCollector(counts, health, info)
        self.registry.register(self.collector)
        self.duration = Histogram(
            "retentiond_job_duration_seconds", "How long job runs take", ["job"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")),
            registry=self.registry)
        self.runs = Counter("retentiond_job_runs", "Job runs by outcome (ok, skipped, "
                            "unavailable, failed)", ["job", "outcome"], registry=self.registry)

    def job_done(self, job: str, outcome: str, duration_s: float,
                 counts: dict[str, int] | None) -> None:
        self.duration.labels(job).observe(duration_s)
        self.runs.labels(job, outcome).inc()
        if counts is not None:
            self.collector.job_counts[job] = dict(counts)
