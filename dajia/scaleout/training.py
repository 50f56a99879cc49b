"""``dajia train --data DIR --scheduler ADDR``: the marketplace training run with the cluster doing the
heavy parts.

What runs where, and why:

- **client**: the example plan (``training.examples``) and the feature pipeline's ``fit`` (its reference
  state — population rates, brand table, linkage index, out-of-fold text models — is learnt from the
  labelled training examples, and ``fit_transform`` returns the training matrix as it learns);
- **cluster**: the validation and test feature matrices (per shop partition, the same fitted pipeline's
  ``transform_examples``) and the booster itself (``lightgbm.dask.DaskLGBMClassifier``, data-parallel
  over the workers);
- **client** again: the cut at the best round (early stopping's rule, applied afterwards: LightGBM's
  Dask interface has no early stopping), then the same isotonic calibration, capacity/precision
  thresholds, reason explainer, evaluation and MLflow logging as local training — the functions of
  ``models`` and ``training``, not copies of their logic.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dajia.scaleout.partition import PartitionedMarketplace, partition_of
from marketplace.tables import Marketplace
from models.thresholds import ThresholdPolicy
from training.booster import BoosterConfig, FitResult, check_training_data
from training.examples import ExamplePlan
from training.fit import fit_risk_model

if TYPE_CHECKING:
    from distributed import Client

    from training.marketplace_run import MarketplaceRun


def examples_task(parts_url: str, i: int, pipeline: Any, examples: pd.DataFrame, oof: bool) -> pd.DataFrame:
    """Worker task: features of the (shop_id, as_of) rows of partition ``i`` (index kept)."""
    mp, _ = PartitionedMarketplace.open(parts_url).load(i)
    X: pd.DataFrame = pipeline.transform_examples(mp, examples, oof=oof)
    return X


def cluster_transform_examples(
    client: Client, parts: PartitionedMarketplace, pipeline: Any, examples: pd.DataFrame, oof: bool = True
) -> pd.DataFrame:
    """``pipeline.transform_examples(mp, examples)`` computed partition by partition on the cluster."""
    if len(examples) == 0:
        raise ValueError("no examples to compute features for")
    where = partition_of(examples["shop_id"].astype(str).to_numpy(dtype=object), parts.n_partitions)
    pipe = client.scatter(pipeline, broadcast=True) if not _is_future(pipeline) else pipeline
    futures = [
        client.submit(
            examples_task, parts.url, int(p), pipe, examples[where == p][["shop_id", "as_of"]], oof, pure=False
        )
        for p in np.unique(where)
    ]
    frames = client.gather(futures)
    if not frames:
        return pd.DataFrame(columns=list(pipeline.get_feature_names_out()), dtype=np.float64)
    return pd.concat(frames).reindex(examples.index)


def _is_future(x: Any) -> bool:
    from distributed import Future

    return isinstance(x, Future)


def best_round(booster: lgb.Booster, X: NDArray[np.float64], y: NDArray[np.float64], patience: int) -> int:
    """The round early stopping would have kept: lowest validation log-loss, stopping after ``patience``
    rounds without a strict improvement (the rule of ``lightgbm.early_stopping``)."""
    raw = np.zeros(len(y))
    best, best_loss = 1, np.inf
    eps = 1e-15
    for t in range(booster.current_iteration()):
        raw += np.asarray(booster.predict(X, raw_score=True, start_iteration=t, num_iteration=1), dtype=np.float64)
        p = np.clip(1.0 / (1.0 + np.exp(-raw)), eps, 1 - eps)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if loss < best_loss:
            best, best_loss = t + 1, loss
        elif t + 1 - best >= patience:
            break
    return best


def fit_booster_on_cluster(
    client: Client,
    X_train: pd.DataFrame,
    y_train: NDArray[np.float64],
    X_valid: pd.DataFrame,
    y_valid: NDArray[np.float64],
    config: BoosterConfig,
    max_rounds: int | None = None,
    weight: NDArray[np.float64] | None = None,
) -> FitResult:
    """``training.booster.fit_booster``'s contract, with the boosting rounds run by ``lightgbm.dask``."""
    import dask.dataframe as dd
    from lightgbm.dask import DaskLGBMClassifier

    from dajia.scaleout.cluster import n_workers

    check_training_data(X_train, y_train, X_valid)
    params = config.params_for(y_train, weight)
    names = [str(c) for c in X_train.columns]
    frame = X_train.reset_index(drop=True).astype(np.float64)
    frame.columns = names
    parts = max(1, min(n_workers(client), len(frame) // 50 or 1))
    X_dd = dd.from_pandas(frame, npartitions=parts)
    y_dd = dd.from_pandas(pd.Series(y_train, name="label"), npartitions=parts)
    w = np.ones(len(y_train)) if weight is None else np.asarray(weight, dtype=np.float64)
    w_dd = dd.from_pandas(pd.Series(w, name="weight"), npartitions=parts)
    X_dd, y_dd, w_dd = client.persist([X_dd, y_dd, w_dd])
    rounds = int(max_rounds or config.max_rounds)
    # each worker's threads come from the cluster (LightGBM's Dask interface ignores num_threads)
    dask_params = {k: v for k, v in params.items() if k != "num_threads"}
    model = DaskLGBMClassifier(client=client, n_estimators=rounds, **dask_params)
    # lightgbm.dask looks the client up as "the current one" in places: make it this one
    # (and it prints "Finding random open ports" to stdout, which must stay clean for --json)
    with client.as_current(), warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        # the sklearn wrapper always sets num_threads and lightgbm.dask then says it ignores it: expected
        warnings.filterwarnings(
            "ignore", message="Parameter (n_jobs|num_threads) will be ignored", category=UserWarning
        )
        model.fit(X_dd, y_dd, sample_weight=w_dd)
    full = model.booster_
    valid = X_valid.to_numpy(dtype=np.float64)
    best = best_round(full, valid, np.asarray(y_valid, dtype=np.float64), config.early_stopping_rounds)
    booster = lgb.Booster(model_str=full.model_to_string(num_iteration=best))
    valid_raw = np.asarray(booster.predict(valid, num_threads=config.num_threads), dtype=np.float64)
    return FitResult(booster=booster, best_iteration=best, params={**params, "dask": True}, valid_raw=valid_raw)


def train_marketplace_on_cluster(
    client: Client,
    mp: Marketplace,
    parts: PartitionedMarketplace,
    plan: ExamplePlan,
    config: BoosterConfig,
    policy: ThresholdPolicy,
    ground_truth: pd.DataFrame | None = None,
    max_rounds: int | None = None,
) -> MarketplaceRun:
    """``training.marketplace_run.train_marketplace`` with features and boosting on the cluster."""
    from threadpoolctl import threadpool_limits

    from features.pipeline import ShopFeaturePipeline
    from training.examples import build_examples, check_no_leakage
    from training.marketplace_run import MarketplaceRun, evaluate_test_period

    timings: dict[str, float] = {}
    with threadpool_limits(limits=config.num_threads):
        t0 = time.perf_counter()
        exs = build_examples(mp, plan)
        check_no_leakage(exs)
        timings["examples_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        train = exs.training()
        pipeline = ShopFeaturePipeline(random_state=config.seed)
        X_train = pipeline.fit_transform(mp, train[["shop_id", "as_of", "label"]])
        config = config.for_pipeline(pipeline)
        y_train = train["label"].to_numpy(dtype=np.float64)
        # per-row training weights (unlabelled negatives down-weighted) when the example plan gives them
        weight = train["weight"].to_numpy(dtype=np.float64) if "weight" in train.columns else None
        pipe = client.scatter(pipeline, broadcast=True)
        valid = exs.part("valid", labelled_only=False)
        test = exs.part("test", labelled_only=False).copy()
        X_valid = cluster_transform_examples(client, parts, pipe, valid[["shop_id", "as_of"]])
        X_test = cluster_transform_examples(client, parts, pipe, test[["shop_id", "as_of"]])
        timings["features_train_valid_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        lab = valid["labelled"].to_numpy()
        y_hold = valid["label"].to_numpy(dtype=np.float64)[lab]
        fit = fit_booster_on_cluster(client, X_train, y_train, X_valid[lab], y_hold, config, max_rounds, weight)
        valid_sizes = [exs.population[d] for d in exs.dates["valid"]]
        model = fit_risk_model(
            X_train,
            y_train,
            X_valid[lab],
            y_hold,
            config,
            policy,
            population_scores_X=X_valid,
            population_size=int(np.mean(valid_sizes)),
            pipeline=pipeline,
            weight=weight,
            info={
                "train_examples": len(train),
                "valid_examples": int(lab.sum()),
                "plan": plan.to_dict(),
                "trained_on": "dask",
            },
            fitted=fit,
        )
        timings["fit_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        test, capacity, metrics, true, segments = evaluate_test_period(
            mp, exs, plan, policy, model, X_train, y_train, weight, test, X_test, ground_truth, config.seed
        )
        timings["evaluate_s"] = time.perf_counter() - t0
    return MarketplaceRun(model, exs, test, capacity, metrics, true, segments, timings)


def run_marketplace_on_cluster(
    settings: Any,
    client: Client,
    data: str,
    *,
    seed: int = 0,
    capacity_per_day: int = 50,
    register: bool = True,
    plan: ExamplePlan | None = None,
    config: BoosterConfig | None = None,
    work: str | None = None,
    max_rounds: int | None = None,
    snapshot_at: object = None,
    shops_per_partition: int | None = None,
    partitions: str | None = None,
) -> dict[str, Any]:
    """Train from the marketplace at ``data`` on the cluster; log and register like ``run_marketplace``."""
    from dajia.scaleout.partition import partition_marketplace
    from dajia.scaleout.storage import Location, load_marketplace_any
    from marketplace.schema import GROUND_TRUTH_FILE
    from training.marketplace_run import track_marketplace_run

    mp = load_marketplace_any(data, snapshot_at)
    src = Location.of(data)
    ground_truth = src.read_parquet(GROUND_TRUTH_FILE).to_pandas() if src.exists(GROUND_TRUTH_FILE) else None
    from dajia.scaleout.partition import DEFAULT_SHOPS_PER_PARTITION, shared_partitions

    size = shops_per_partition or DEFAULT_SHOPS_PER_PARTITION
    parts = (
        partition_marketplace(data, work, shops_per_partition=size, client=client, snapshot_at=snapshot_at)
        if work is not None
        else shared_partitions(data, partitions, shops_per_partition=size, client=client, snapshot_at=snapshot_at)
    )
    plan = plan or ExamplePlan(seed=seed)
    config = config or BoosterConfig(seed=seed)
    policy = ThresholdPolicy(capacity_per_day=capacity_per_day, sweep_days=plan.step_days)
    from dajia.scaleout.cluster import cluster_step

    # nothing is logged or registered before the whole run succeeded: a failure leaves no run, no version
    with cluster_step("training (examples_task feature matrices, lightgbm.dask boosting)"):
        run = train_marketplace_on_cluster(client, mp, parts, plan, config, policy, ground_truth, max_rounds)
    result = track_marketplace_run(
        settings,
        mp,
        run,
        source=src.url,
        run_name=f"marketplace-dask:{Path(src.root).name}",
        digest=parts.fingerprint,
        params={
            "seed": seed,
            "capacity_per_day": capacity_per_day,
            "plan": plan,
            "config": config,
            "partitions": parts.n_partitions,
        },
        register=register,
        tags={"dajia.engine": "dask"},
    )
    return {**result, "engine": "dask", "test_metrics": run.metrics["model"]}
