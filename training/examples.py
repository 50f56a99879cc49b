"""Training examples from a marketplace: (shop, as-of date, label) with a prequential time split.

* **As-of dates** every ``step_days``, the last one ``horizon_days`` before the snapshot (so every
  label window is complete), the first ``warmup_days`` after the marketplace's first shop opened.
* **Label** of shop s at as-of t: the verdicts decided in (t, t + horizon]. A counterfeit verdict → 1,
  only genuine verdicts → 0, none → *unlabelled*. ``label_at`` is the first such verdict's time, always
  after t. Shops not yet open at t, and shops already found counterfeit before t (closed, no longer
  scored), give no example.
* **Unlabelled examples.** Kept as a seeded random sample: ``unlabelled_per_shop × shops`` rows spread
  over the training dates, and up to ``population_sample`` shops per validation/test date. The
  verdict-based evaluation, early stopping, calibration and the precision
  threshold use labelled examples only (the score reads as "the chance an investigation of this shop
  ends in a counterfeit verdict"). Training also takes a sample of unlabelled shop-dates as negatives
  (positive-unlabelled learning: most shops are never investigated and most of them are honest; without
  them the model only ever sees the suspicious-looking shops investigators picked and ranks the
  everyday population badly). Hidden counterfeiters among them are label noise the booster tolerates.
* **Split by time with a gap** (prequential): the newest ``test_dates`` dates are the test period,
  the ``valid_dates`` dates before it (minus a gap) validation, everything older (minus a gap) training.
  The gap is ``horizon_days``: a training example's label window closes before validation starts, so
  at the time validation begins every training label was already known. Shops with any labelled example
  in the test period are test shops: none of their examples, at any date, enters training or
  validation; validation shops likewise never enter training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DajiaError
from marketplace.tables import Marketplace


class NotEnoughHistory(DajiaError):
    """The marketplace is too short or has too few verdicts for a time-split training run."""


@dataclass(frozen=True)
class ExamplePlan:
    step_days: int = 7
    #: training dates are thinned to one every ``train_step_days``: label windows of consecutive
    #: training dates then tile time (each verdict labels about one training example, not four
    #: near-duplicates) and feature building costs a quarter
    train_step_days: int = 28
    horizon_days: int = 30
    warmup_days: int = 90
    test_dates: int = 4
    valid_dates: int = 4
    #: unlabelled shop-dates sampled as training negatives, in total, as a multiple of the shop count
    #: (spread evenly over the training dates)
    unlabelled_per_shop: float = 1.0
    #: ... and at most this many in total (beyond ~10^5 negatives the model stops improving while
    #: feature building keeps growing with them)
    unlabelled_max: int = 200_000
    #: training weight of an unlabelled negative (a labelled example weighs 1): some unlabelled shops
    #: are counterfeiters nobody investigated yet; at full weight they teach the model that hidden
    #: counterfeiting is normal (50,000 shops: ground-truth PR-AUC 0.90 at 1.0, 0.91 at 0.2, 0.95 with
    #: no unlabelled examples, which in turn leaves small marketplaces with too few examples). 0.05 since
    #: issue 19: on three differently-configured 20,000-shop worlds (benchmarks/bench_worlds.py, seed 11)
    #: ground-truth PR-AUC 0.900 / 0.611 / 0.730 against 0.879 / 0.605 / 0.724 at 0.2
    unlabelled_weight: float = 0.05
    #: inverse-propensity weights for labelled training examples (``training.propensity``): investigators
    #: pick blatant shops, so the labelled set over-represents them; a labelled example that resembles the
    #: shops investigators rarely look at then weighs more. Off by default (measured: docs/training.md)
    labelled_propensity: bool = False
    #: unlabelled shops kept per validation/test date (the population sample for capacity and the
    #: ground-truth evaluation); None keeps every shop
    population_sample: int | None = 50_000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExampleSet:
    """All examples with their period (train / valid / test) and whether they carry a verdict label."""

    #: shop_id, as_of, label (float 0/1, NaN when unlabelled), label_at, labelled, period
    frame: pd.DataFrame
    dates: dict[str, list[pd.Timestamp]]
    plan: ExamplePlan
    #: open, not-closed shops at each as-of date (the population a sweep scores)
    population: dict[pd.Timestamp, int]

    def part(self, period: str, labelled_only: bool = True) -> pd.DataFrame:
        f = self.frame[self.frame["period"] == period]
        return f[f["labelled"]] if labelled_only else f

    def training(self) -> pd.DataFrame:
        """Labelled training examples plus the sampled unlabelled ones (label 0), with a ``weight``."""
        f = self.frame[self.frame["period"] == "train"]
        return f.assign(label=f["label"].fillna(0.0), weight=np.where(f["labelled"], 1.0, self.plan.unlabelled_weight))


def as_of_dates(mp: Marketplace, plan: ExamplePlan) -> list[pd.Timestamp]:
    return as_of_dates_between(pd.Timestamp(mp.shops["opened_at"].min()), pd.Timestamp(mp.snapshot_at), plan)


def as_of_dates_between(first_open: pd.Timestamp, snapshot: pd.Timestamp, plan: ExamplePlan) -> list[pd.Timestamp]:
    """The as-of dates of a marketplace whose first shop opened at ``first_open``, snapshot at ``snapshot``."""
    last = (snapshot - pd.Timedelta(days=plan.horizon_days)).floor("D")
    first = first_open + pd.Timedelta(days=plan.warmup_days)
    dates: list[pd.Timestamp] = []
    t = last
    while t >= first:
        dates.append(t)
        t -= pd.Timedelta(days=plan.step_days)
    return sorted(dates)


def split_dates(dates: list[pd.Timestamp], plan: ExamplePlan) -> dict[str, list[pd.Timestamp]]:
    gap = pd.Timedelta(days=plan.horizon_days)
    if len(dates) < plan.test_dates + plan.valid_dates + 2:
        raise NotEnoughHistory(f"only {len(dates)} as-of dates; need more history for a time split")
    test = dates[-plan.test_dates :]
    valid_end = test[0] - gap
    valid = [d for d in dates if d < valid_end][-plan.valid_dates :]
    if not valid:
        raise NotEnoughHistory("no as-of date left for validation after the label-delay gap")
    train = [d for d in dates if d < valid[0] - gap]
    every = max(1, plan.train_step_days // plan.step_days)
    train = train[::-1][::every][::-1]
    if len(train) < 2:
        raise NotEnoughHistory(
            f"only {len(train)} training as-of dates before {valid[0].date()} minus the {plan.horizon_days}-day gap"
        )
    return {"train": train, "valid": valid, "test": test}


def labels_before(verdicts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Examples from verdicts decided strictly before ``as_of``: a shop is 1 if any was 'counterfeit'."""
    v = verdicts[verdicts["decided_at"] < as_of]
    if len(v) == 0:
        return pd.DataFrame({"shop_id": pd.Series([], dtype="string"), "as_of": as_of, "label": 0})
    label = (v["outcome"] == "counterfeit").groupby(v["shop_id"]).max().astype(int)
    return pd.DataFrame({"shop_id": label.index.astype("string"), "as_of": as_of, "label": label.to_numpy()})


def label_examples(
    mp: Marketplace,
    dates: list[pd.Timestamp],
    horizon_days: int,
    keep_unlabelled: dict[pd.Timestamp, int | None],
    seed: int,
) -> tuple[pd.DataFrame, dict[pd.Timestamp, int]]:
    """Open, not-yet-closed shops at each date with their verdict label in (t, t + horizon].

    Labelled rows are all kept; of the unlabelled ones at most ``keep_unlabelled[t]`` (random, seeded;
    None = all). Returns the rows (with ``code``, the shop's row number in ``mp.shops``) and each date's
    population size (open, not closed shops). Works on integer shop codes throughout: set operations
    on string ids cost 30× more at 50,000 shops.
    """
    rng = np.random.default_rng(seed)
    ids = mp.shops["shop_id"].astype(str).to_numpy()
    opened = mp.shops["opened_at"].to_numpy()
    n = len(ids)
    v = mp.verdicts.sort_values(["decided_at", "verdict_id"], kind="stable")
    v_code = pd.Index(ids).get_indexer(pd.Index(v["shop_id"].astype(str)))
    known = v_code >= 0
    v_code = v_code[known]
    v_time = v["decided_at"].to_numpy()[known]
    v_bad = (v["outcome"].astype(str) == "counterfeit").to_numpy()[known]
    horizon = np.timedelta64(horizon_days, "D")
    parts = []
    sizes: dict[pd.Timestamp, int] = {}
    for t in dates:
        t64 = np.datetime64(t.to_datetime64())
        eligible = opened < t64
        eligible[v_code[v_bad & (v_time <= t64)]] = False  # closed: found counterfeit at or before t
        sizes[t] = int(eligible.sum())
        w = (v_time > t64) & (v_time <= t64 + horizon)
        cw, tw, bw = v_code[w], v_time[w], v_bad[w]
        first_code, first_pos = np.unique(cw, return_index=True)  # sorted by time: first = earliest
        bad_any = np.zeros(n, dtype=bool)
        np.logical_or.at(bad_any, cw, bw)
        keep = eligible[first_code]
        lab_code, lab_at = first_code[keep], tw[first_pos[keep]]
        has_label = np.zeros(n, dtype=bool)
        has_label[lab_code] = True
        unl = np.flatnonzero(eligible & ~has_label)
        cap = keep_unlabelled.get(t)
        if cap is not None and len(unl) > cap:
            unl = np.sort(rng.choice(unl, cap, replace=False))
        codes = np.concatenate([lab_code, unl])
        parts.append(
            pd.DataFrame(
                {
                    "code": codes,
                    "as_of": np.full(len(codes), t64),
                    "label_at": np.concatenate([lab_at, np.full(len(unl), np.datetime64("NaT"), dtype=lab_at.dtype)]),
                    "labelled": np.r_[np.ones(len(lab_code), bool), np.zeros(len(unl), bool)],
                    "label": np.r_[bad_any[lab_code].astype(float), np.full(len(unl), np.nan)],
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "shop_id", pd.array(ids[out["code"].to_numpy()], dtype="string"))
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    out["label_at"] = out["label_at"].astype("datetime64[us]")
    return out, sizes


def build_examples(mp: Marketplace, plan: ExamplePlan) -> ExampleSet:
    """Examples at every as-of date, split by time with shop exclusion (see module docstring)."""
    dates = as_of_dates(mp, plan)
    periods = split_dates(dates, plan)
    total_unlabelled = min(plan.unlabelled_per_shop * len(mp.shops), plan.unlabelled_max)
    per_train_date = max(1, round(total_unlabelled / len(periods["train"])))
    keep: dict[pd.Timestamp, int | None] = {d: per_train_date for d in periods["train"]}
    keep.update({d: plan.population_sample for p in ("valid", "test") for d in periods[p]})
    used = [d for p in ("train", "valid", "test") for d in periods[p]]
    ex, sizes = label_examples(mp, used, plan.horizon_days, keep, plan.seed)
    period_of = pd.Series({d: p for p, ds in periods.items() for d in ds})
    period_of.index = pd.DatetimeIndex(period_of.index).astype("datetime64[us]")
    ex["period"] = period_of.reindex(ex["as_of"]).to_numpy()
    code = ex["code"].to_numpy()
    lab = ex["labelled"].to_numpy()
    per = ex["period"].to_numpy()
    test_codes = np.unique(code[(per == "test") & lab])
    valid_codes = np.setdiff1d(np.unique(code[(per == "valid") & lab]), test_codes)
    in_test = np.isin(code, test_codes)
    in_valid = np.isin(code, valid_codes)
    keep_rows = (per == "test") | ((per == "valid") & ~in_test) | ((per == "train") & ~in_test & ~in_valid)
    ex = ex[keep_rows].reset_index(drop=True)
    tr = ex[(ex["period"] == "train") & ex["labelled"]]
    if tr["label"].sum() < 5 or (tr["label"] == 0).sum() < 5:
        raise NotEnoughHistory(
            f"training period has {int(tr['label'].sum())} counterfeit and {int((tr['label'] == 0).sum())} "
            "genuine verdict labels; need at least 5 of each"
        )
    for p in ("valid", "test"):
        part = ex[(ex["period"] == p) & ex["labelled"]]
        if part["label"].nunique() < 2:
            raise NotEnoughHistory(f"the {p} period's labelled examples hold only one class ({len(part)} rows)")
    return ExampleSet(frame=ex, dates=periods, plan=plan, population=sizes)


def check_no_leakage(examples: ExampleSet) -> None:
    """Raise if a label is not after its as-of, or a test shop's example sits in training/validation."""
    f = examples.frame
    lab = f[f["labelled"]]
    bad = lab[lab["label_at"] <= lab["as_of"]]
    if len(bad):
        raise AssertionError(f"{len(bad)} examples have a label date not after their as-of")
    test_shops = set(f.loc[(f["period"] == "test") & f["labelled"], "shop_id"])
    leaked = f[(f["period"] != "test") & f["shop_id"].isin(test_shops)]
    if len(leaked):
        raise AssertionError(f"{len(leaked)} examples of test-period shops are in training/validation")
