"""Outputs appear whole or not at all (``dajia.scaleout.outputs``), and cluster failures are one line.

No cluster here: the commit protocol on a local disk, the readers' refusal of a folder without its
``_SUCCESS`` marker, and the one-line message of a cluster step.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.atomic import SUCCESS_MARKER
from core.errors import DajiaError
from dajia.cli_support import read_scores
from dajia.scaleout.cluster import ClusterError, cluster_step
from dajia.scaleout.outputs import IncompleteOutput, require_complete, staged_file, staged_folder


class Boom(RuntimeError):
    pass


def test_a_failed_file_write_leaves_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "f.parquet"
    with staged_file(str(out)) as (fs, tmp), fs.open(tmp, "wb") as fh:
        pd.DataFrame({"a": [1, 2]}).to_parquet(fh)
    before = out.read_bytes()
    with pytest.raises(Boom), staged_file(str(out)) as (fs, tmp):
        with fs.open(tmp, "wb") as fh:
            fh.write(b"half a file")
        raise Boom
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.parquet"]  # no temporary left behind


def test_a_failed_folder_write_leaves_the_previous_folder_and_readers_refuse_partial_ones(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    with staged_folder(str(out)) as staging:
        for i in range(2):
            pd.DataFrame({"shop_id": [f"S{i}"], "x": [i]}).to_parquet(Path(staging.root) / f"part-{i:05d}.parquet")
    assert (out / SUCCESS_MARKER).is_file()
    assert len(pd.read_parquet(out)) == 2
    with pytest.raises(Boom), staged_folder(str(out)) as staging:
        pd.DataFrame({"shop_id": ["X"], "x": [9]}).to_parquet(Path(staging.root) / "part-00000.parquet")
        raise Boom
    assert len(pd.read_parquet(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    # a folder of parts without the marker (a run killed before its commit) is refused by every reader
    partial = tmp_path / "partial.parquet"
    partial.mkdir()
    pd.DataFrame({"shop_id": ["S1"], "x": [1]}).to_parquet(partial / "part-00000.parquet")
    with pytest.raises(IncompleteOutput, match=r"without its _SUCCESS marker: an incomplete output"):
        require_complete(str(partial))
    with pytest.raises(DajiaError, match=r"scores file .*partial\.parquet is a folder without its _SUCCESS"):
        list(read_scores(partial))


def test_a_cluster_step_failure_is_one_line_naming_the_step(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    err = KilledWorker("features_task-1", SimpleNamespace(address="tcp://127.0.0.1:1"), 0)  # type: ignore[arg-type]
    with pytest.raises(ClusterError) as info, cluster_step("features (features_task)"):
        raise err
    text = str(info.value)
    assert "\n" not in text and text.startswith("features (features_task) failed on the cluster: KilledWorker: ")
    assert "all those workers died" in text and "Inspecting" not in text
    assert info.value.detail is not None and "Traceback" in info.value.detail
    with pytest.raises(DajiaError, match=r"^mine$"), cluster_step("x"):
        raise DajiaError("mine")  # dajia's own errors (bad input on a worker) pass through as they are


def test_one_shared_partitioned_copy_per_content_and_clean_up(tmp_path: Path) -> None:
    import os

    from dajia.cli import main
    from dajia.scaleout.partition import shared_partitions
    from marketplace.generator import GeneratorConfig, generate

    data = tmp_path / "market"
    generate(GeneratorConfig(shops=60, seed=1), data)
    first = shared_partitions(str(data), shops_per_partition=20)
    assert first.n_partitions == 3 and first.url.startswith(f"{data}/_partitions/{first.fingerprint}-s20")
    assert shared_partitions(str(data), shops_per_partition=20) == first  # reused, not rewritten
    shops = data / "shops.parquet"
    os.utime(shops, ns=(shops.stat().st_atime_ns, shops.stat().st_mtime_ns + 10**9))  # new content
    second = shared_partitions(str(data), shops_per_partition=20)
    assert second.fingerprint != first.fingerprint and Path(first.url).is_dir()
    assert main(["partitions", "clean", "--data", str(data)]) == 0
    assert not Path(first.url).exists() and Path(second.url).is_dir()
    assert main(["partitions", "clean", "--data", str(data), "--all"]) == 0
    assert list((data / "_partitions").iterdir()) == []
