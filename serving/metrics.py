"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from serving.wal import Checkpoint

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.015, 0.03, 0.06, 0.125, 0.25, 0.5, 1.0, 2.5, 5.0)
_SCORE_BUCKETS = tuple(i / 20 for i in range(1, 21))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "dajia_http_request_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "dajia_http_responses_total",
            "HTTP responses by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "dajia_http_errors_total",
            "responses with status >= 400 by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.scores = Histogram(
            "dajia_score", "calibrated scores returned", ["tier"], buckets=_SCORE_BUCKETS, registry=self.registry
        )
        self.shadow_scores = Histogram(
            "dajia_shadow_score",
            "challenger scores (shadow, not returned)",
            buckets=_SCORE_BUCKETS,
            registry=self.registry,
        )
        self._score_children: dict[str, Any] = {}
        self.model_info = Info("dajia_model", "the model being served", registry=self.registry)
        self.model_reloads = Counter(
            "dajia_model_reloads_total", "model swaps after the alias moved", registry=self.registry
        )
        self.registry_errors = Counter(
            "dajia_registry_errors_total", "failed registry polls (last good model kept)", registry=self.registry
        )
        self.model_fallback = Gauge(
            "dajia_model_from_cache", "1 when the served model came from the on-disk cache", registry=self.registry
        )

        self.log_commit = Histogram(
            "dajia_prediction_log_commit_seconds",
            "time of one prediction-log group commit",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.log_rows = Counter(
            "dajia_prediction_log_rows_total", "rows committed to the prediction log", registry=self.registry
        )
        self.wal_checkpoints = Counter(
            "dajia_sqlite_wal_checkpoints_total",
            "background checkpoints of the SQLite write-ahead log, by mode (passive, restart, truncate) and "
            "result (done, busy, error)",
            ["mode", "result"],
            registry=self.registry,
        )
        self.wal_frames = Gauge(
            "dajia_sqlite_wal_frames",
            "frames in the SQLite write-ahead log at the last background checkpoint",
            registry=self.registry,
        )

        self.drift_score_psi = Gauge(
            "dajia_drift_score_psi",
            "PSI of the score: the training population vs today's (set when the monitor computes drift)",
            registry=self.registry,
        )
        self.drift_feature_psi = Gauge(
            "dajia_drift_feature_psi",
            "PSI of the features that moved most (top 10 by PSI), training population vs today's",
            ["feature"],
            registry=self.registry,
        )
        self.online_rows = Counter(
            "dajia_online_rows_total",
            "shops scored by id, by the state of their online feature row: fresh, stale (older than "
            "settings.online_max_age_hours; scored and reported), missing or other_version (not scored: 404)",
            ["status"],
            registry=self.registry,
        )
        self._online = {s: self.online_rows.labels(s) for s in ("fresh", "stale", "missing", "other_version")}
        self.online_refreshes = Counter(
            "dajia_online_refreshes_total",
            "shop event posts that refreshed (or confirmed) a shop's online feature row",
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "dajia_outbox_pending", "sanction outbox messages waiting to be delivered", registry=self.registry
        )
        self.outbox_oldest = Gauge(
            "dajia_outbox_oldest_pending_seconds",
            "age of the oldest undelivered sanction outbox message (0 when none)",
            registry=self.registry,
        )
        self.outbox_dead = Gauge(
            "dajia_outbox_dead", "sanction outbox messages given up after their last attempt", registry=self.registry
        )

    #: feature PSIs exported as gauges (the ones that moved most)
    DRIFT_TOP = 10

    def set_drift(self, report: Any) -> None:
        """Export a drift report (``serving.console.monitor.DriftReport``): the score PSI and the top features'."""
        if report.score.psi is not None:
            self.drift_score_psi.set(report.score.psi)
        self.drift_feature_psi.clear()
        for d in report.features[: self.DRIFT_TOP]:
            self.drift_feature_psi.labels(d.name).set(d.psi)

    def observe_outbox(self, backlog: Any) -> None:
        self.outbox_pending.set(backlog.pending)
        self.outbox_oldest.set(backlog.oldest_pending_seconds)
        self.outbox_dead.set(backlog.dead)

    def score_hist(self, tier: str) -> Any:
        """The score histogram's child for ``tier`` (cached: tiers are few)."""
        child = self._score_children.get(tier)
        if child is None:
            child = self._score_children[tier] = self.scores.labels(tier)
        return child

    def observe_scores(self, tiers: list[str], scores: list[float]) -> None:
        """``score_hist(tier).observe(score)`` for each pair, one counter update per bucket and tier
        rather than per score (a 1,000-shop batch took ~15 ms of the event loop one by one)."""
        by_tier: dict[str, list[float]] = {}
        for t, s in zip(tiers, scores, strict=True):
            by_tier.setdefault(t, []).append(s)
        for tier, values in by_tier.items():
            observe_many(self.score_hist(tier), values)

    def observe_online(self, info: list[dict[str, Any]]) -> None:
        """Count the online rows a by-id request scored, by status (fresh or stale)."""
        stale = sum(1 for i in info if i["status"] == "stale")
        if stale:
            self._online["stale"].inc(stale)
        if len(info) > stale:
            self._online["fresh"].inc(len(info) - stale)

    def observe_online_unavailable(self, missing: int, other_version: int) -> None:
        if missing:
            self._online["missing"].inc(missing)
        if other_version:
            self._online["other_version"].inc(other_version)

    def observe_commit(self, seconds: float, rows: int) -> None:
        self.log_commit.observe(seconds)
        self.log_rows.inc(rows)

    def observe_checkpoint(self, result: Checkpoint) -> None:
        self.wal_checkpoints.labels(result.mode.lower(), "busy" if result.busy else "done").inc()
        self.wal_frames.set(result.log_frames)

    def checkpoint_failed(self, mode: str, _exc: BaseException) -> None:
        self.wal_checkpoints.labels(mode.lower(), "error").inc()

    def set_model(self, name: str, version: str, source: str, shadow_version: str | None) -> None:
        self.model_info.info(
            {"name": name, "version": version, "source": source, "shadow_version": shadow_version or ""}
        )
        self.model_fallback.set(1 if source == "cache" else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: up to this many values are observed one by one (a request scoring one shop by id is the hot path)
_ONE_BY_ONE = 32


def observe_many(child: Any, values: list[float]) -> None:
    """``child.observe(v)`` for every value (a ``Histogram`` without labels, or a labelled child; no
    exemplars): the bucket each value falls in counted with numpy, then one ``inc`` per bucket and one for
    the sum. Reads the histogram's bucket bounds and counters (``_upper_bounds``, ``_buckets``, ``_sum``:
    prometheus-client is pinned; tests/serving/test_metrics_batch.py compares this with ``observe`` one by
    one)."""
    if len(values) <= _ONE_BY_ONE:  # a few values: numpy's per-call cost exceeds observe()'s
        for v in values:
            child.observe(v)
        return
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]  # observe() puts a NaN in no bucket (and NaN into the sum): leave them out
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    # observe() counts a value in the first bucket whose upper bound is >= the value
    counts = np.bincount(np.searchsorted(bounds, arr, side="left"), minlength=len(bounds))
    for i, n in enumerate(counts.tolist()):
        if n:
            child._buckets[i].inc(n)
    child._sum.inc(float(arr.sum()))
