"""Routing thresholds on the calibrated score: ``watch`` below ``suspected``.

``suspected`` opens a case for a reviewer, so it is set by what reviewers can handle and by the
precision they must see: the higher (stricter) of

* the capacity threshold: a sweep over the scored population may route at most
  ``capacity_per_day × sweep_days`` shops, and
* the precision threshold: the lowest score at which precision on the held-out slice reaches
  ``precision_target``,
* and never below ``suspected_floor`` (a calibrated probability).

``watch`` marks shops worth monitoring (no case): the higher of the score where held-out precision
reaches ``watch_precision`` and the capacity threshold for ``watch_capacity_multiple`` × the routed
volume (so the watch list stays bounded), and at least ``watch_floor``; never above ``suspected``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

TIERS = ("low", "watch", "suspected")
#: the tiers whose shops get reasons (most shops are ``low``: explaining them would cost a prediction each)
EXPLAINED_TIERS = ("watch", "suspected")


@dataclass(frozen=True)
class ThresholdPolicy:
    capacity_per_day: int = 50
    sweep_days: int = 7
    precision_target: float = 0.8
    watch_precision: float = 0.3
    watch_capacity_multiple: float = 4.0
    #: the tiers never start below these calibrated probabilities (capacity alone must not route
    #: shops the model thinks are probably honest)
    watch_floor: float = 0.1
    suspected_floor: float = 0.5


@dataclass(frozen=True)
class Thresholds:
    watch: float
    suspected: float
    policy: dict[str, Any]
    #: how each threshold was decided, for the threshold table
    basis: dict[str, Any]

    def tier_of(self, score: float) -> str:
        """The tier of one calibrated score: the one rule (``tier`` and the serving hot path call it)."""
        return "suspected" if score >= self.suspected else "watch" if score >= self.watch else "low"

    def tier(self, scores: ArrayLike) -> NDArray[np.object_]:
        """``tier_of`` of every score (same shape)."""
        s = np.asarray(scores, dtype=np.float64)
        return np.array([self.tier_of(v) for v in s.ravel().tolist()], dtype=object).reshape(s.shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def precision_threshold(scores: NDArray[np.float64], y: NDArray[np.float64], target: float) -> float:
    """Lowest score t such that precision of ``score >= t`` is at least ``target`` (1.0+ if never)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    prec = tp / np.arange(1, len(t) + 1)
    # only cut between distinct scores
    last_of_group = np.r_[s[1:] != s[:-1], True]
    ok = np.flatnonzero((prec >= target) & last_of_group & (tp > 0))
    if len(ok) == 0:
        return float(np.nextafter(1.0, 2.0))
    return float(s[ok[-1]])


def capacity_threshold(population_scores: NDArray[np.float64], routed: float, population_size: int) -> float:
    """Score above which ``routed`` shops out of ``population_size`` fall, estimated on a sample."""
    if population_size <= 0 or len(population_scores) == 0:
        return float(np.nextafter(1.0, 2.0))
    frac = min(1.0, routed / population_size)
    if frac >= 1.0:
        return 0.0
    return float(np.quantile(population_scores, 1.0 - frac, method="higher"))


def choose_thresholds(
    scores: ArrayLike,
    y: ArrayLike,
    population_scores: ArrayLike,
    population_size: int,
    policy: ThresholdPolicy,
) -> Thresholds:
    """Pick ``watch`` and ``suspected`` from labelled held-out scores and the population's scores."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    pop = np.asarray(population_scores, dtype=np.float64)
    routed = policy.capacity_per_day * policy.sweep_days
    cap = capacity_threshold(pop, routed, population_size)
    prec = precision_threshold(s, t, policy.precision_target)
    suspected = min(max(cap, prec, policy.suspected_floor), 1.0)
    watch_cap = capacity_threshold(pop, routed * policy.watch_capacity_multiple, population_size)
    watch_prec = precision_threshold(s, t, policy.watch_precision)
    watch = min(max(watch_cap, watch_prec, policy.watch_floor), suspected)
    basis = {
        "routed_per_sweep": routed,
        "population_size": population_size,
        "capacity_threshold": cap,
        "precision_threshold": prec,
        "suspected_from": max(
            ("capacity", cap), ("precision", prec), ("floor", policy.suspected_floor), key=lambda kv: kv[1]
        )[0],
        "watch_capacity_threshold": watch_cap,
        "watch_precision_threshold": watch_prec,
    }
    return Thresholds(watch=float(watch), suspected=float(suspected), policy=asdict(policy), basis=basis)
