"""A training killed midway (issue 23: runs stuck RUNNING, an orphan model version): the next start of a
training (``setup_mlflow``) marks the run FAILED and deletes what it registered, so a killed training
registers nothing; a run whose process still lives is left alone. The kill is a real SIGKILL of a child
process right after it registered a version inside its run, before the run could end."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import mlflow

from core.settings import Settings

CHILD = """
import os, signal, sys
import mlflow
from core.settings import Settings
from training.tracking import process_tags, setup_mlflow

settings = Settings(home=sys.argv[1], MLFLOW_TRACKING_URI=sys.argv[2])
client = setup_mlflow(settings)
with mlflow.start_run(run_name="killed midway"):
    mlflow.set_tags(process_tags())
    run_id = mlflow.active_run().info.run_id
    mlflow.log_dict({"features": ["a"]}, "model/feature_names.json")
    client.create_registered_model(settings.model_name)
    client.create_model_version(settings.model_name, mlflow.get_artifact_uri("model"), run_id=run_id)
    print(run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_training_ends_failed_and_registers_nothing(tmp_path: Path) -> None:
    from training.tracking import EXPERIMENT, fail_interrupted_runs, process_tags, setup_mlflow

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    settings = Settings(home=tmp_path, MLFLOW_TRACKING_URI=uri)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), uri], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    run_id = done.stdout.strip().splitlines()[-1]
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # what the kill leaves behind
    assert len(client.search_model_versions(f"run_id = '{run_id}'")) == 1
    # a live training of this process, started meanwhile, must not be touched
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    live = mlflow.start_run(run_name="still going")
    try:
        mlflow.set_tags(process_tags())
        setup_mlflow(settings)  # what the next train, evaluate or promote starts with
        assert client.get_run(run_id).info.status == "FAILED"
        assert client.search_model_versions(f"run_id = '{run_id}'") == []
        assert client.get_run(live.info.run_id).info.status == "RUNNING"
        assert fail_interrupted_runs(client, settings.model_name) == []  # again: nothing to do
    finally:
        mlflow.end_run()
    assert client.get_run(live.info.run_id).info.status == "FINISHED"
