"""``dajia train --data DIR``: the whole marketplace training run.

examples (``training.examples``) → feature pipeline fitted on training examples only → LightGBM with
early stopping on labelled validation examples → isotonic calibration on the same slice → thresholds
from reviewer capacity and a precision target → test-period evaluation against the keyword rule and a
logistic regression (verdict-based, per segment, and against ground truth when the generator left it)
→ MLflow run, one pyfunc model, registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from core.settings import Settings
from marketplace.schema import GROUND_TRUTH_FILE
from marketplace.tables import Marketplace
from models.model import ShopRiskModel
from models.thresholds import ThresholdPolicy
from training import frozen as fz
from training.baselines import KeywordRule, fit_logistic, logistic_scores
from training.booster import BoosterConfig
from training.evaluation import SCORERS, comparison_table, segment_table, truth_metrics, verdict_metrics
from training.examples import ExamplePlan, ExampleSet, build_examples, check_no_leakage
from training.fit import fit_risk_model

NEW_SHOP_DAYS = 90
_CJK = r"[\u4e00-\u9fff]"


class _Timings(dict[str, float]):
    """Stage timings that also report each stage as it is recorded."""

    def __init__(self, progress: Callable[[str, float], None] | None) -> None:
        super().__init__()
        self._progress = progress

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        if self._progress is not None:
            self._progress(key, value)


@dataclass
class MarketplaceRun:
    model: ShopRiskModel
    examples: ExampleSet
    test: pd.DataFrame
    capacity: dict[Any, float]
    metrics: dict[str, dict[str, float]]
    true_metrics: dict[str, dict[str, float]] | None
    segments: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)


def segments_frame(mp: Marketplace, frame: pd.DataFrame) -> pd.DataFrame:
    """category, new vs established (age < 90 days at as-of), Chinese vs English listing titles."""
    shops = mp.shops.set_index(mp.shops["shop_id"].astype(str))
    ids = frame["shop_id"].astype(str)
    out = pd.DataFrame(index=frame.index)
    out["category"] = shops["category"].astype(str).reindex(ids).to_numpy()
    age = (frame["as_of"] - shops["opened_at"].reindex(ids).to_numpy()).dt.days
    out["shop_age"] = np.where(age < NEW_SHOP_DAYS, "new", "established")
    titles = mp.listings[["shop_id", "title"]]
    titles = titles[pd.Index(titles["shop_id"].astype(str)).isin(pd.Index(ids.unique()))]
    zh = titles["title"].astype(str).str.contains(_CJK, regex=True)
    share = zh.groupby(titles["shop_id"].astype(str)).mean()
    out["language"] = np.where(share.reindex(ids).fillna(0.0).to_numpy() >= 0.5, "chinese", "english")
    return out


def train_marketplace(
    mp: Marketplace,
    plan: ExamplePlan,
    config: BoosterConfig,
    policy: ThresholdPolicy,
    ground_truth: pd.DataFrame | None = None,
    pipeline_params: dict[str, Any] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> MarketplaceRun:
    """Everything of ``dajia train --data`` except tracking (pure: same inputs → same outputs).

    BLAS/OpenMP pools are held at ``config.num_threads`` for the whole run (see ``training.booster``).
    ``progress(stage, seconds)`` is called as each stage ends (benchmarks print it)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=config.num_threads):
        return _train_marketplace(mp, plan, config, policy, ground_truth, pipeline_params, progress)


def _train_marketplace(
    mp: Marketplace,
    plan: ExamplePlan,
    config: BoosterConfig,
    policy: ThresholdPolicy,
    ground_truth: pd.DataFrame | None,
    pipeline_params: dict[str, Any] | None,
    progress: Callable[[str, float], None] | None = None,
) -> MarketplaceRun:
    from features.pipeline import ShopFeaturePipeline

    timings = _Timings(progress)
    t0 = time.perf_counter()
    exs = build_examples(mp, plan)
    check_no_leakage(exs)
    timings["examples_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train = exs.training()
    pipeline = ShopFeaturePipeline(random_state=config.seed, **(pipeline_params or {}))
    X_train = pipeline.fit_transform(mp, train[["shop_id", "as_of", "label"]])
    config = config.for_pipeline(pipeline)
    y_train = train["label"].to_numpy(dtype=np.float64)
    valid = exs.part("valid", labelled_only=False)
    valid_sizes = [exs.population[d] for d in exs.dates["valid"]]
    X_valid = pipeline.transform_examples(mp, valid[["shop_id", "as_of"]], oof=True)
    timings["features_train_valid_s"] = time.perf_counter() - t0
    weight_train = train["weight"].to_numpy(dtype=np.float64)
    if plan.labelled_propensity:
        from training.propensity import propensity_weights

        weight_train = weight_train * propensity_weights(X_train, train["labelled"].to_numpy(), config.seed)

    t0 = time.perf_counter()
    lab = valid["labelled"].to_numpy()
    model = fit_risk_model(
        X_train,
        y_train,
        X_valid[lab],
        valid["label"].to_numpy(dtype=np.float64)[lab],
        config,
        policy,
        population_scores_X=X_valid,
        population_size=int(np.mean(valid_sizes)),
        pipeline=pipeline,
        weight=weight_train,
        info={"train_examples": len(train), "valid_examples": int(lab.sum()), "plan": plan.to_dict()},
    )
    timings["fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    test = exs.part("test", labelled_only=False).copy()
    X_test = pipeline.transform_examples(mp, test[["shop_id", "as_of"]], oof=True)
    weight = weight_train
    test, capacity, metrics, true, segments = evaluate_test_period(
        mp, exs, plan, policy, model, X_train, y_train, weight, test, X_test, ground_truth, config.seed
    )
    timings["evaluate_s"] = time.perf_counter() - t0
    return MarketplaceRun(model, exs, test, capacity, metrics, true, segments, dict(timings))


def evaluate_test_period(
    mp: Marketplace,
    exs: ExampleSet,
    plan: ExamplePlan,
    policy: ThresholdPolicy,
    model: ShopRiskModel,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    weight: np.ndarray | None,
    test: pd.DataFrame,
    X_test: pd.DataFrame,
    ground_truth: pd.DataFrame | None,
    seed: int,
) -> tuple[pd.DataFrame, dict[Any, float], dict[str, dict[str, float]], dict[str, dict[str, float]] | None, list]:
    """Score the test period with the model and the baselines trained in the same run (the keyword
    rule, a logistic regression on the same features) and measure them: verdict-based, per segment,
    and against the generator's ground truth when there is one. Shared by local and Dask training."""
    test_sizes = {d: exs.population[pd.Timestamp(d)] for d in exs.dates["test"]}
    test["model"] = model.predict_proba(X_test)
    logit = fit_logistic(X_train, y_train, seed, weight=weight)
    test["logistic"] = logistic_scores(logit, X_test)
    test["keyword"] = KeywordRule(mp, test["shop_id"]).score_examples(test)
    routed = policy.capacity_per_day * plan.step_days
    n_rows = test.groupby("as_of").size().to_dict()
    # a sweep routes `routed` of the whole population; on the sampled rows that is a proportional share
    capacity = {d: routed * n_rows[d] / test_sizes[pd.Timestamp(str(d))] for d in n_rows}
    metrics = {name: verdict_metrics(test, name, capacity, probabilities=name != "keyword") for name in SCORERS}
    test = test.join(segments_frame(mp, test))
    share = routed / float(np.mean(list(test_sizes.values())))
    segments = segment_table(test, ["category", "shop_age", "language"], share)
    true = None
    if ground_truth is not None:
        gt = ground_truth.set_index(ground_truth["shop_id"].astype(str))["is_counterfeiter"].astype(bool)
        test["true_label"] = gt.reindex(test["shop_id"].astype(str)).fillna(False).to_numpy().astype(float)
        true = {name: truth_metrics(test, name, capacity) for name in SCORERS}
    return test, capacity, metrics, true, segments


def run_marketplace(
    settings: Settings,
    data_dir: Path,
    seed: int = 0,
    capacity_per_day: int = 50,
    register: bool = True,
    plan: ExamplePlan | None = None,
    config: BoosterConfig | None = None,
    feedback: pd.DataFrame | None = None,
    pipeline_params: dict[str, Any] | None = None,
    include_simulated: bool = False,
    snapshot_at: object = None,
) -> dict[str, Any]:
    """Train from a marketplace folder, log everything to MLflow, register the model.

    ``feedback``: labels from people (``dajia.feedback.read_feedback``: reviewer decisions, appeal
    outcomes, audit-sample findings), added to the marketplace's verdicts before the examples are built;
    simulated ones only with ``include_simulated``. ``snapshot_at``: the folder's snapshot time when it has
    no manifest (``--snapshot-at``; the loader refuses a folder with neither). The result's ``feedback``
    says what became of them (``training.feedback.apply_feedback``) and how many examples of each period they label."""
    from marketplace.loader import load_marketplace
    from training.tracking import file_digest

    mp = load_marketplace(data_dir, snapshot_at)
    report: dict[str, Any] | None = None
    added: pd.DataFrame | None = None
    if feedback is not None:
        from training.feedback import apply_feedback

        mp, added, report = apply_feedback(mp, feedback, include_simulated=include_simulated)
    gt_path = Path(data_dir) / GROUND_TRUTH_FILE
    ground_truth = pd.read_parquet(gt_path) if gt_path.exists() else None
    plan = plan or ExamplePlan(seed=seed)
    config = config or BoosterConfig(seed=seed)
    policy = ThresholdPolicy(capacity_per_day=capacity_per_day, sweep_days=plan.step_days)
    run = train_marketplace(mp, plan, config, policy, ground_truth, pipeline_params=pipeline_params)
    files = fz.marketplace_files(Path(data_dir))
    digest = file_digest(files)
    if added is not None and len(added):
        digest = f"{digest}+fb{len(added)}"
    if report is not None and added is not None:
        from training.feedback import feedback_landing

        report["labelled_examples"] = feedback_landing(run.examples, added, plan.horizon_days)
    result = track_marketplace_run(
        settings,
        mp,
        run,
        source=str(Path(data_dir).resolve()),
        run_name=f"marketplace:{Path(data_dir).name}",
        digest=digest,
        params={"seed": seed, "capacity_per_day": capacity_per_day, "plan": plan, "config": config},
        register=register,
    )
    if report is not None:
        from training.tracking import setup_mlflow

        setup_mlflow(settings).log_dict(str(result["run_id"]), report, "feedback.json")
        result["feedback"] = report
    return result


def track_marketplace_run(
    settings: Settings,
    mp: Marketplace,
    run: MarketplaceRun,
    *,
    source: str,
    run_name: str,
    digest: str,
    params: dict[str, Any],
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log a trained marketplace run to MLflow (parameters, data digest, metrics, report artifacts, the
    frozen evaluation set ``dajia promote`` compares on) and register its model; returns the summary.

    The one tracking path of local and Dask training. ``params`` holds ``seed``, ``capacity_per_day``,
    ``plan`` (ExamplePlan), ``config`` (BoosterConfig) and any extra scalar parameters; ``tags`` are
    added to the run and to the registered version."""
    from training.tracking import (
        flat_metrics,
        git_commit,
        log_and_register,
        log_dataset,
        process_tags,
        report_dir,
        setup_mlflow,
        write_report_artifacts,
    )

    model = run.model
    extra = dict(params)
    plan: ExamplePlan = extra.pop("plan")
    config: BoosterConfig = extra.pop("config")
    client = setup_mlflow(settings)
    ex = run.examples.frame
    dates = run.examples.dates
    with mlflow.start_run(run_name=run_name) as active:
        mlflow.set_tags(
            {
                "dajia.mode": "marketplace",
                "dajia.source": source,
                "git_commit": git_commit() or "none",
                **process_tags(),
                **(tags or {}),
            }
        )
        mlflow.log_params(
            {
                **extra,
                **{f"plan.{k}": v for k, v in plan.to_dict().items()},
                **{f"lgbm.{k}": v for k, v in config.to_dict().items() if k != "extra"},
                "best_iteration": model.info["best_iteration"],
                "threshold.watch": model.thresholds.watch,
                "threshold.suspected": model.thresholds.suspected,
                "train_dates": f"{dates['train'][0].date()}..{dates['train'][-1].date()}",
                "valid_dates": f"{dates['valid'][0].date()}..{dates['valid'][-1].date()}",
                "test_dates": f"{dates['test'][0].date()}..{dates['test'][-1].date()}",
                "n_features": len(model.feature_names),
            }
        )
        log_dataset(ex[["shop_id", "as_of", "label", "period"]], source, Path(source).name, digest, "training", "label")
        for name, m in run.metrics.items():
            mlflow.log_metrics(flat_metrics(f"test_{name}_", m))
        for name, m in (run.true_metrics or {}).items():
            mlflow.log_metrics(flat_metrics(f"true_{name}_", m))
        mlflow.log_metrics({k: float(v) for k, v in run.timings.items()})
        mlflow.log_dict({"features": model.feature_names}, "feature_names.json")
        with report_dir() as tmp:
            lab = run.test[run.test["labelled"]]
            write_report_artifacts(
                tmp / "report",
                model,
                lab["label"].to_numpy(dtype=np.float64),
                {n: lab[n].to_numpy() for n in ("model", "logistic", "keyword")},
                {
                    "metrics": run.metrics,
                    "true_metrics": run.true_metrics or {},
                    "segments": run.segments,
                    "timings": run.timings,
                },
            )
            pd.DataFrame(run.segments).to_csv(tmp / "report" / "segments.csv", index=False)
            frozen_ex = run.test[["shop_id", "as_of", "label", "labelled"]].reset_index(drop=True)
            fz.FrozenEval(
                spec={
                    "kind": "marketplace",
                    "data_dir": source,
                    "digest": digest,
                    "snapshot_at": pd.Timestamp(mp.snapshot_at).isoformat(),
                    "capacity": {pd.Timestamp(d).isoformat(): float(k) for d, k in run.capacity.items()},
                    "eval_start": dates["test"][0].isoformat(),
                },
                examples=frozen_ex,
            ).write(tmp)
            mlflow.log_artifacts(str(tmp))
        version, champion = None, False
        if register:
            version, champion = log_and_register(
                client,
                settings,
                model,
                _input_example(mp, run),
                {
                    "mode": "marketplace",
                    "data_digest": digest,
                    "fit_label_end": dates["test"][0].isoformat(),
                    **(tags or {}),
                },
            )
        run_id = active.info.run_id
    return {
        "run_id": run_id,
        "model": settings.model_name,
        "version": version,
        "champion": champion,
        "examples": {p: int((ex["period"] == p).sum()) for p in ("train", "valid", "test")},
        "labelled": {p: int(((ex["period"] == p) & ex["labelled"]).sum()) for p in ("train", "valid", "test")},
        "best_iteration": model.info["best_iteration"],
        "thresholds": {"watch": model.thresholds.watch, "suspected": model.thresholds.suspected},
        "comparison": comparison_table(run.metrics),
        **({"true_comparison": comparison_table(run.true_metrics)} if run.true_metrics else {}),
        "timings": run.timings,
    }


def _input_example(mp: Marketplace, run: MarketplaceRun) -> pd.DataFrame:
    """Two real shops of the test period as raw records (the pyfunc's input shape)."""
    from models.pyfunc import records_frame

    row = run.test.sort_values("model", ascending=False).iloc[0]
    ids = [str(row["shop_id"]), str(run.test.iloc[0]["shop_id"])]
    return records_frame(shop_records(mp, ids), as_of=pd.Timestamp(row["as_of"]))


def shop_records(mp: Marketplace, shop_ids: list[str]) -> list[dict[str, Any]]:
    """Data-contract records (shop columns + child lists, as JSON data) of some shops, e.g. for scoring
    examples: ``marketplace.records.records_from_frames``, the one conversion."""
    from marketplace.records import records_from_frames

    tables = {name: mp.table(name) for name in mp.table_names()}
    return [r.model_dump(mode="json") for r in records_from_frames(tables, shop_ids)]
