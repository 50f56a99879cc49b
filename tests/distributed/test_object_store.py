"""Object storage and failures on a real multi-process cluster.

An S3-compatible server (moto's, in a thread of this process, on a free port) holds the marketplace
and every output; a 2-worker ``LocalCluster`` (separate processes, the scheduler's ``allowed-failures``
at 0) runs the jobs through the ``dajia`` command, as a user would: ``train``, ``features`` and
``sweep`` read and write ``s3://`` URLs. Then a worker process is killed in the middle of a run
(a worker plugin sends itself SIGKILL when it starts its second task): the run fails with one line
naming the step and the worker error, the previous outputs are untouched, and nothing partial reads as
complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.atomic import SUCCESS_MARKER
from core.settings import get_settings
from dajia.cli import main
from marketplace.generator import GeneratorConfig, generate

SHOPS = 400
PARTITION_SHOPS = "100"  # four partitions: a kill lands after some of them are done
BUCKET = "lake"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto's S3 server and the environment that points s3fs (here and in the workers) at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = pytest.MonkeyPatch()
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
        env.delenv(var, raising=False)
    env.setenv("DAJIA_HOME", str(tmp_path_factory.mktemp("home")))
    get_settings.cache_clear()
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(BUCKET)
    try:
        yield fs
    finally:
        env.undo()
        get_settings.cache_clear()
        server.stop()


@pytest.fixture(scope="module")
def client(s3: Any) -> Iterator[Any]:
    """Started after the environment is set: the worker processes inherit it."""
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def market(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    local = tmp_path_factory.mktemp("market")
    # dense labels, so that a few hundred shops are enough to train on
    config = GeneratorConfig(
        shops=SHOPS, seed=5, counterfeit_rate=0.25, label_coverage=0.9, honest_investigation_rate=0.15
    )
    generate(config, local)
    for f in sorted(local.iterdir()):
        s3.put_file(str(f), f"{BUCKET}/market/{f.name}")
    return f"s3://{BUCKET}/market"


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue()


def _as_of(s3: Any) -> str:
    with s3.open(f"{BUCKET}/market/manifest.json", "rb") as fh:
        snapshot = pd.Timestamp(json.load(fh)["snapshot_at"])
    return (snapshot - pd.Timedelta(days=45)).isoformat()


@pytest.fixture(scope="module")
def runs(client: Any, market: str, s3: Any) -> dict[str, Any]:
    """``dajia train``, ``features`` (cluster and local) and ``sweep`` on s3:// URLs, as a user runs them."""
    sched = ["--scheduler", client.scheduler.address, "--partition-shops", PARTITION_SHOPS, "--json"]
    results: dict[str, Any] = {}
    rc, out, err = _cli(["train", "--data", market, "--population-sample", "400", *sched])
    assert rc == 0, err
    results["train"] = json.loads(out)
    feats = ["features", "--data", market, "--as-of", _as_of(s3)]
    rc, out, err = _cli([*feats, "--out", f"s3://{BUCKET}/out/features.parquet", *sched])
    assert rc == 0, err
    results["features"] = json.loads(out)
    rc, out, err = _cli([*feats, "--out", f"s3://{BUCKET}/out/features-local.parquet", "--json"])
    assert rc == 0, err
    rc, out, err = _cli(["sweep", "--data", market, "--out", f"s3://{BUCKET}/out/scores.parquet", *sched])
    assert rc == 0, err
    results["sweep"] = json.loads(out)
    return results


def _read(s3: Any, key: str) -> pd.DataFrame:
    return pq.read_table(f"{BUCKET}/{key}", filesystem=s3).to_pandas()


def test_train_features_and_sweep_read_and_write_s3(runs: dict[str, Any], s3: Any) -> None:
    assert runs["train"]["engine"] == "dask" and runs["train"]["champion"]
    assert runs["features"]["shops"] == SHOPS and runs["features"]["partitions"] == 4
    remote = _read(s3, "out/features.parquet").set_index("shop_id").sort_index()
    local = _read(s3, "out/features-local.parquet").set_index("shop_id").sort_index()
    assert len(remote) == SHOPS
    pd.testing.assert_frame_equal(remote, local)  # the cluster's rows equal the local command's
    # the cluster sweep's folder of parts, committed with its marker; routing ran once all scores existed
    names = sorted(p.rsplit("/", 1)[-1] for p in s3.ls(f"{BUCKET}/out/scores.parquet", refresh=True))
    assert names == [SUCCESS_MARKER, *[f"part-{i:05d}.parquet" for i in range(4)]]
    scores = _read(s3, "out/scores.parquet")
    assert len(scores) == SHOPS == runs["sweep"]["shops"]
    suspected = int((scores["tier"] == "suspected").sum())
    assert runs["sweep"]["routed"]["opened"] == suspected
    # routing is one idempotent step over the committed scores: again, nothing changes
    rc, out, err = _cli(["cases", "route", "--scores", f"s3://{BUCKET}/out/scores.parquet", "--json"])
    assert rc == 0, err
    assert json.loads(out)["opened"] == 0
    assert not [p for p in s3.ls(f"{BUCKET}/out", refresh=True) if ".staging-" in p or p.endswith(".tmp")]


def test_the_split_on_the_workers_equals_the_streamed_split(runs: dict[str, Any], client: Any, market: str) -> None:
    from dajia.scaleout.partition import GLOBAL_TABLES, PART_TABLES, VERDICT_SHOPS, part_name, partition_marketplace

    size = int(PARTITION_SHOPS)
    workers = partition_marketplace(market, f"s3://{BUCKET}/split/workers", shops_per_partition=size, client=client)
    streamed = partition_marketplace(market, f"s3://{BUCKET}/split/streamed", shops_per_partition=size, batch_rows=500)
    assert workers.rows == streamed.rows and workers.n_partitions == streamed.n_partitions == 4
    for i in range(4):
        for t in PART_TABLES:
            a = workers.location.child(part_name(i)).read_parquet(f"{t}.parquet")
            b = streamed.location.child(part_name(i)).read_parquet(f"{t}.parquet")
            assert a.equals(b), f"partition {i}, {t}: the workers' split differs"
    for t in (*GLOBAL_TABLES, VERDICT_SHOPS):
        assert workers.location.read_parquet("global", f"{t}.parquet").equals(
            streamed.location.read_parquet("global", f"{t}.parquet")
        )


class KillOnSecondTask:
    """Worker plugin: the worker process kills itself (SIGKILL) as it starts its second job task."""

    name = "kill-on-second-task"

    def __init__(self, prefixes: tuple[str, ...]):
        self.prefixes = prefixes
        self.started = 0

    def setup(self, worker: Any) -> None:
        self.started = 0

    def teardown(self, worker: Any) -> None:
        pass

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        from dask.utils import key_split

        if finish == "executing" and key_split(key) in self.prefixes:
            self.started += 1
            if self.started >= 2:
                os.kill(os.getpid(), signal.SIGKILL)


def _snapshot(s3: Any, prefix: str) -> dict[str, str]:
    """Every object under ``prefix`` and its ETag: equal snapshots mean untouched objects."""
    found = s3.find(f"{BUCKET}/{prefix}", detail=True, refresh=True)
    return {k: str(v.get("ETag")) for k, v in found.items()}


def test_a_killed_worker_leaves_the_previous_outputs_and_one_line(
    runs: dict[str, Any], client: Any, market: str, s3: Any, tmp_path: Path
) -> None:
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin = type("Kill", (KillOnSecondTask, WorkerPlugin), {})(("features_task", "score_partition_task"))
    before = _snapshot(s3, "out")
    cases_before = _cli(["cases", "list", "--json"])[1]
    client.register_plugin(plugin, name=KillOnSecondTask.name)
    try:
        sched = ["--scheduler", client.scheduler.address, "--partition-shops", PARTITION_SHOPS]
        feats = ["features", "--data", market, "--as-of", _as_of(s3), "--out", f"s3://{BUCKET}/out/features.parquet"]
        rc, _, err = _cli([*feats, *sched])
        assert rc == 2
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: features (features_task, one per partition) failed on the cluster: ")
        assert "KilledWorker" in lines[0] and "died" in lines[0]
        rc, _, err = _cli(["sweep", "--data", market, "--out", f"s3://{BUCKET}/out/scores.parquet", *sched])
        assert rc == 2
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: sweep scoring (score_partition_task, one per partition) failed")
    finally:
        client.unregister_worker_plugin(KillOnSecondTask.name)
    # the previous complete outputs are untouched, and no partial output is readable
    after = _snapshot(s3, "out")
    outputs = {k: v for k, v in after.items() if k.endswith("/out/features.parquet") or "/out/scores.parquet/" in k}
    assert outputs == {k: v for k, v in before.items() if k in outputs} and len(outputs) == 6
    for key in after:
        assert ".tmp" not in key.rsplit("/", 1)[-1], f"a temporary file is left: {key}"
        if ".staging-" in key:  # a straggling task may write its part after the failure: never with a marker
            assert not key.endswith(SUCCESS_MARKER)
    assert len(_read(s3, "out/scores.parquet")) == SHOPS
    assert _cli(["cases", "list", "--json"])[1] == cases_before  # routing never started
