"""Scores observed in one pass (``serving.metrics.observe_many``) give the same exposition as
``Histogram.observe`` one value at a time: every bucket count (values on a bound included), the count and
the sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from serving.metrics import Metrics, observe_many

BUCKETS = tuple(i / 20 for i in range(1, 21))


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    one, many = CollectorRegistry(), CollectorRegistry()
    return (
        one,
        Histogram("h", "h", ["tier"], buckets=BUCKETS, registry=one),
        many,
        Histogram("h", "h", ["tier"], buckets=BUCKETS, registry=many),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_observe_many_equals_observe_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.random(500), np.array(BUCKETS), [0.0, 1.0, 2.0, -0.5]]).tolist()
    rng.shuffle(values)
    one, h1, many, h2 = _pair()
    for v in values:
        h1.labels("watch").observe(v)
    observe_many(h2.labels("watch"), values)
    a, b = _samples(one), _samples(many)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert math.isclose(value, b[key], rel_tol=1e-12, abs_tol=1e-9), key
    buckets = [v for (name, _), v in a.items() if name == "h_bucket"]
    assert len(set(buckets)) > 5  # the values spread over many buckets: the comparison is not vacuous


def test_metrics_observe_scores_by_tier() -> None:
    m = Metrics()
    m.observe_scores(["low", "watch", "low", "suspected"], [0.01, 0.5, 0.06, 0.95])
    text = generate_latest(m.registry).decode()
    assert 'dajia_score_count{tier="low"} 2.0' in text
    assert 'dajia_score_bucket{le="0.05",tier="low"} 1.0' in text
    assert 'dajia_score_bucket{le="0.1",tier="low"} 2.0' in text
    assert 'dajia_score_count{tier="suspected"} 1.0' in text
    observe_many(m.shadow_scores, [0.2, 0.3])
    assert "dajia_shadow_score_count 2.0" in generate_latest(m.registry).decode()
