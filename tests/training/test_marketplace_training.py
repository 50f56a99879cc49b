"""Training on a small generated marketplace, end to end, with the real MLflow store and server.

One model is trained (module fixture, through ``dajia train --data``) and then: loaded by plain
``mlflow.pyfunc.load_model("models:/dajia-shop-risk@champion")`` in a fresh process, served by
``mlflow models serve`` over HTTP, put through the promotion gate both ways, and retrained with the
same seed to show the metrics repeat. Time leakage is checked on the examples themselves.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from core.settings import get_settings
from dajia.cli import main
from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE
from models.model import ShopRiskModel
from models.pyfunc import records_frame
from models.reasons import ReasonExplainer
from models.thresholds import ThresholdPolicy
from training.booster import BoosterConfig
from training.examples import ExamplePlan, build_examples, check_no_leakage
from training.marketplace_run import run_marketplace, shop_records, train_marketplace

SHOPS = 2_500
SEED = 11
#: a lighter plan than the default (fewer as-of dates, a smaller population sample) keeps the module fast
PLAN = ExamplePlan(seed=0, train_step_days=56, valid_dates=3, test_dates=2, population_sample=600)
PIPELINE = {"text_folds": 3}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market")
    generate(GeneratorConfig(shops=SHOPS, seed=SEED, chunk_shops=1_000), out)
    return out


@pytest.fixture(scope="module")
def trained(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
            mp.delenv(var, raising=False)
        mp.setenv("DAJIA_HOME", str(home))
        get_settings.cache_clear()
        result = run_marketplace(get_settings(), market, seed=0, plan=PLAN, pipeline_params=PIPELINE)
        yield {"home": home, "result": result, "uri": get_settings().resolved_tracking_uri}
    get_settings.cache_clear()


def _records_input(market: Path, n_each: int = 4) -> tuple[pd.DataFrame, list[bool]]:
    mp = load_marketplace(market)
    gt = pd.read_parquet(market / GROUND_TRUTH_FILE)
    bad = gt[gt["is_counterfeiter"] & gt["closed_at"].isna()]["shop_id"].astype(str).head(n_each).tolist()
    good = gt[~gt["is_counterfeiter"]]["shop_id"].astype(str).head(n_each).tolist()
    frame = records_frame(shop_records(mp, bad + good), as_of=mp.snapshot_at)
    return frame, [True] * len(bad) + [False] * len(good)


def test_training_beats_baselines_and_logs_a_champion(trained: dict[str, Any]) -> None:
    r = trained["result"]
    assert r["version"] == "1" and r["champion"] is True
    by = {row["scorer"]: row for row in r["comparison"]}
    assert by["model"]["pr_auc"] > by["keyword"]["pr_auc"]
    truth = {row["scorer"]: row for row in r["true_comparison"]}
    assert truth["model"]["pr_auc"] > max(truth["keyword"]["pr_auc"], truth["logistic"]["pr_auc"])
    assert 0.0 < r["thresholds"]["watch"] <= r["thresholds"]["suspected"] <= 1.0
    client = MlflowClient(tracking_uri=trained["uri"])
    run = client.get_run(r["run_id"])
    assert run.data.tags["git_commit"]
    assert "test_model_pr_auc" in run.data.metrics and "true_keyword_pr_auc" in run.data.metrics
    assert run.inputs.dataset_inputs, "the data digest is logged with mlflow.log_input"
    names = {a.path for a in client.list_artifacts(r["run_id"], "report")}
    for want in (
        "pr_curve.png",
        "calibration.png",
        "feature_importance.png",
        "score_histogram.png",
        "threshold_table.csv",
        "segments.csv",
    ):
        assert f"report/{want}" in names


def test_champion_loads_and_scores_raw_records_in_a_fresh_process(
    trained: dict[str, Any], market: Path, tmp_path: Path
) -> None:
    frame, is_bad = _records_input(market)
    path = tmp_path / "input.json"
    path.write_text(frame.to_json(orient="records"))
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/dajia-shop-risk@champion')\n"
        "out = m.predict(pd.DataFrame(json.load(open(sys.argv[1]))))\n"
        "print(out.to_json(orient='records'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAJIA_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = trained["uri"]
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [o["shop_id"] for o in out] == frame["shop_id"].tolist()
    scores = np.array([o["score"] for o in out])
    assert np.all((scores >= 0) & (scores <= 1))
    assert {o["tier"] for o in out} <= {"low", "watch", "suspected"}
    bad = scores[np.array(is_bad)]
    good = scores[~np.array(is_bad)]
    assert bad.mean() > good.mean()
    for o in out:
        assert isinstance(o["reasons"], list)
        if o["tier"] != "low":
            assert o["reasons"] and all(isinstance(s, str) and s for s in o["reasons"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mlflow_models_serve_scores_over_http(trained: dict[str, Any], market: Path, tmp_path: Path) -> None:
    frame, _ = _records_input(market, 2)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAJIA_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = trained["uri"]
    # mlflow models serve execs `uvicorn` from PATH: the venv's bin must be on it
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    with open(tmp_path / "serve.log", "w") as log:
        _serve_and_score(mlflow_cli, port, env, tmp_path, log, frame)


def _serve_and_score(
    mlflow_cli: str, port: int, env: dict[str, str], tmp_path: Path, log: Any, frame: pd.DataFrame
) -> None:
    proc = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            "models:/dajia-shop-risk@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 150
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not come up"
            time.sleep(0.5)
        body = {"dataframe_records": json.loads(frame.to_json(orient="records"))}
        resp = httpx.post(f"{base}/invocations", json=body, timeout=60)
        assert resp.status_code == 200, resp.text
        preds = resp.json()["predictions"]
        assert [p["shop_id"] for p in preds] == frame["shop_id"].tolist()
        assert all(0.0 <= p["score"] <= 1.0 and p["tier"] in ("low", "watch", "suspected") for p in preds)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_train_data_cli_rejects_a_folder_that_is_not_a_marketplace(
    trained: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--json"]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--json"]) == 2
    assert capsys.readouterr().err.strip()
    assert main(["train", "--data", str(tmp_path), "--table", "x.csv"]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_no_time_leakage(market: Path) -> None:
    mp = load_marketplace(market)
    plan = ExamplePlan(population_sample=600)
    ex = build_examples(mp, plan)
    check_no_leakage(ex)
    f = ex.frame
    lab = f[f["labelled"]]
    assert (lab["label_at"] > lab["as_of"]).all()
    assert (lab["label_at"] <= lab["as_of"] + pd.Timedelta(days=plan.horizon_days)).all()
    test_shops = set(f.loc[(f["period"] == "test") & f["labelled"], "shop_id"])
    assert test_shops and not (set(f.loc[f["period"] == "train", "shop_id"]) & test_shops)
    assert not (set(f.loc[f["period"] == "valid", "shop_id"]) & test_shops)
    # the label-delay gap: every training label is known before validation starts, every validation
    # label before the test period starts
    train, valid = f[(f["period"] == "train") & f["labelled"]], f[(f["period"] == "valid") & f["labelled"]]
    assert train["label_at"].max() < ex.dates["valid"][0]
    assert valid["label_at"].max() < ex.dates["test"][0]
    assert max(ex.dates["train"]) < min(ex.dates["valid"]) < min(ex.dates["test"])
    # a shop already found counterfeit is closed: no example after its verdict
    v = mp.verdicts[mp.verdicts["outcome"] == "counterfeit"]
    first_bad = v.groupby(v["shop_id"].astype(str))["decided_at"].min()
    joined = f.join(first_bad.rename("closed_at"), on="shop_id")
    assert not (joined["as_of"] >= joined["closed_at"]).any()


def _degraded(model: ShopRiskModel) -> ShopRiskModel:
    """The same model cut to its first tree: clearly worse, same pipeline and features."""
    booster = lgb.Booster(model_str=model.booster.model_to_string(num_iteration=1))
    explainer = ReasonExplainer(booster, {}, np.zeros((0, len(model.feature_names))))
    return ShopRiskModel(booster, model.calibrator, model.thresholds, explainer, pipeline=model.pipeline)


def test_promotion_gate_refuses_worse_forces_with_reason_and_promotes_better(
    trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from training.promotion import load_version
    from training.tracking import log_and_register, setup_mlflow

    settings = get_settings()
    client = setup_mlflow(settings)
    champion = load_version(settings, "1")
    with mlflow.start_run(run_name="degraded"):
        frame, _ = _records_input(_market_of(client, trained), 1)
        version, became = log_and_register(client, settings, _degraded(champion), frame, {"mode": "test"})
    assert version == "2" and became is False
    assert str(client.get_model_version_by_alias(settings.model_name, "challenger").version) == "2"

    rc = main(["promote"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not beat champion" in err and "pr_auc" in err
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "1"

    assert main(["promote", "--force"]) == 2
    assert "--reason" in capsys.readouterr().err

    assert main(["promote", "--force", "--reason", "incident 42: roll back text model", "--json"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["promoted"] and forced["forced"]
    mv = client.get_model_version(settings.model_name, "2")
    assert mv.tags["forced_promotion_reason"] == "incident 42: roll back text model"
    assert "FORCED" in mv.description
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "2"

    assert main(["promote", "--version", "1", "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["promoted"] and back["passed_gate"] and not back["forced"]
    rows = {r["metric"]: r for r in back["comparison"]}
    assert rows["pr_auc"]["candidate"] > rows["pr_auc"]["champion"]
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "1"

    assert main(["evaluate", "--version", "2", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["metrics"]["pr_auc"] == pytest.approx(rows["pr_auc"]["champion"])

    # a version fitted on verdicts from the frozen evaluation period is never compared there
    client.set_model_version_tag(settings.model_name, "2", "fit_label_end", "2099-01-01T00:00:00")
    assert main(["promote", "--version", "2"]) == 2
    assert "fitted on verdicts up to 2099-01-01" in capsys.readouterr().err
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "1"


def _market_of(client: MlflowClient, trained: dict[str, Any]) -> Path:
    run = client.get_run(trained["result"]["run_id"])
    return Path(run.data.tags["dajia.source"])


def test_same_data_and_seed_give_the_same_metrics(trained: dict[str, Any], market: Path) -> None:
    mp = load_marketplace(market)
    gt = pd.read_parquet(market / GROUND_TRUTH_FILE)
    policy = ThresholdPolicy(sweep_days=PLAN.step_days)
    again = train_marketplace(mp, PLAN, BoosterConfig(seed=0), policy, gt, pipeline_params=PIPELINE)
    first = {row["scorer"]: row for row in trained["result"]["comparison"]}
    for name, m in again.metrics.items():
        for key in ("pr_auc", "roc_auc", "precision_at_k"):
            assert m[key] == first[name][key], (name, key)
    assert again.model.info["best_iteration"] == trained["result"]["best_iteration"]
