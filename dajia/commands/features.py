"""``dajia features``: one row per shop (``shop_id`` plus named features) as of a time, to Parquet.

Text scores need a fitted text model, which needs labels. Three ways, in order:

- ``--model FILE``: a fitted ``ShopFeaturePipeline`` saved with ``--save-pipeline`` (pickle); used as is.
- otherwise the pipeline is fitted on the same data with the verdicts decided strictly before
  ``--as-of`` as labels (counterfeit = 1), and the rows are written with out-of-fold text scores, so
  no labelled shop's text score has seen its own verdict.
- with no such verdicts (or ``--no-labels``) there is no text model: the six text-score columns are
  NaN; every other feature is computed as usual.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from core.errors import DajiaError
from dajia.commands.options import SNAPSHOT_HELP, check_local_folder, check_streamed_folder
from dajia.output import console, emit


class FeaturesInputError(DajiaError):
    """Bad input to ``dajia features`` (time, model file)."""


def _as_of(value: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise FeaturesInputError(f"--as-of {value!r} is not a date or time: {exc}") from None
    if ts is pd.NaT:
        raise FeaturesInputError(f"--as-of {value!r} is not a date or time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _load_pipeline(path: str) -> Any:
    from dajia.scaleout.storage import Location
    from features.pipeline import ShopFeaturePipeline

    loc = Location.of(path)
    if not loc.fs.isfile(loc.root):
        raise FeaturesInputError(f"--model {path}: no such file")
    with loc.fs.open(loc.root, "rb") as fh:
        obj = pickle.load(fh)  # a file this tool wrote with --save-pipeline: trusted input
    pipe = getattr(obj, "pipeline", obj)
    if not isinstance(pipe, ShopFeaturePipeline):
        raise FeaturesInputError(f"--model {path}: holds a {type(obj).__name__}, not a fitted ShopFeaturePipeline")
    return pipe


def _parquet_folder(data: str) -> bool:
    """The folder (or fsspec URL) holds the marketplace as Parquet: the streamed path can read it."""
    from dajia.scaleout.storage import Location

    try:
        return Location.of(data).exists("shops.parquet")
    except (OSError, ValueError):
        return False


def _save_pipeline(pipe: Any, path: str) -> None:
    """Pickle ``pipe`` to ``path`` (local path or fsspec URL), whole or not at all."""
    from dajia.scaleout.outputs import staged_file

    with staged_file(path) as (fs, tmp), fs.open(tmp, "wb") as fh:
        pickle.dump(pipe, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _write_table(X: pd.DataFrame, out: str) -> None:
    """``shop_id`` + features to the Parquet file ``out`` (local path or fsspec URL), whole or not at all."""
    from dajia.scaleout.outputs import staged_file

    with staged_file(out) as (fs, tmp), fs.open(tmp, "wb") as fh:
        X.reset_index().to_parquet(fh, index=False)


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"[bold]features[/bold] {result['shops']:,} shops x {result['features']} features as of {result['as_of']} "
        f"-> {result['out']} ({result['seconds']} s)"
    )
    console.print(f"text model: {result['text_model']}")


def register(app: typer.Typer) -> None:
    @app.command()
    def features(
        data: str = typer.Option(..., "--data", help="marketplace folder (or fsspec URL)"),
        as_of: str = typer.Option(..., "--as-of", help="features use only events strictly before this time"),
        out: str = typer.Option(
            ..., "--out", help="Parquet file to write (shop_id + features): local path or fsspec URL (s3://...)"
        ),
        model: str | None = typer.Option(None, "--model", help="fitted pipeline saved with --save-pipeline"),
        no_labels: bool = typer.Option(False, "--no-labels", help="do not fit a text model (text scores NaN)"),
        save_pipeline: str | None = typer.Option(None, "--save-pipeline", help="pickle the fitted pipeline here"),
        no_validate: bool = typer.Option(
            False,
            "--no-validate",
            help="read only the columns features use, without validation (data already validated; less memory)",
        ),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS; none: run locally)"
        ),
        snapshot_at: str | None = typer.Option(None, "--snapshot-at", help=SNAPSHOT_HELP),
        partitions: str | None = typer.Option(
            None, "--partitions", help="folder for the shared partitioned copies (default: <data>/_partitions)"
        ),
        partition_shops: int = typer.Option(
            50_000, "--partition-shops", min=1, help="shops per partition of the split marketplace (memory per task)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
        verbose: bool = typer.Option(False, "--verbose", help="on a cluster failure, also show the traceback"),
    ) -> None:
        """Compute point-in-time shop features (see docs/features.md)."""
        from core.settings import get_settings
        from dajia.scaleout.cluster import scheduler_address
        from features.pipeline import ShopFeaturePipeline
        from marketplace.loader import load_marketplace
        from training.examples import labels_before

        t0 = time.perf_counter()
        when = _as_of(as_of)
        address = scheduler_address(scheduler, get_settings())
        # before any work: a folder with a snapshot time; Parquet where only Parquet is read
        if address is not None or no_validate or "://" in str(data):
            check_streamed_folder(data, snapshot_at)
        else:
            check_local_folder(Path(data), snapshot_at)
        loaded = _load_pipeline(model) if model is not None else None
        if not no_validate and (address is not None or _parquet_folder(data)):
            # streamed per shop partition, locally or on the cluster (docs/scale-out.md): memory is one
            # partition's, whatever the marketplace's size
            from dajia.scaleout.jobs import run_features

            summary = run_features(
                str(data),
                when,
                out,
                address=address,
                pipeline=loaded,
                no_labels=no_labels,
                shops_per_partition=partition_shops,
                partitions=partitions,
                snapshot_at=snapshot_at,
            )
            fitted = summary.pop("pipeline")
            if save_pipeline is not None:
                _save_pipeline(fitted, save_pipeline)
            if model is not None:
                summary["text_model"] = f"from {model}"
            emit({**summary, "seconds": round(time.perf_counter() - t0, 2)}, as_json, _human)
            return
        # in memory: a CSV folder, or --no-validate's unvalidated columns
        if no_validate:
            from features.io import read_feature_tables

            if not (Path(data) / "shops.parquet").is_file():
                raise FeaturesInputError(f"--data {data}: no shops.parquet (--no-validate reads local Parquet folders)")
            mp = read_feature_tables(data, snapshot_at)
        else:
            mp = load_marketplace(data, snapshot_at)
        if loaded is not None:
            pipe = loaded
            X = pipe.transform(mp, when)
            text = f"from {model}"
        else:
            examples = labels_before(mp.verdicts, when) if not no_labels else labels_before(mp.verdicts[:0], when)
            pipe = ShopFeaturePipeline().fit(mp, examples)
            X = pipe.transform(mp, when, oof=True)
            n_pos = int(examples["label"].sum())
            text = (
                f"fitted out of fold on {len(examples):,} verdicts before as-of ({n_pos:,} counterfeit)"
                if pipe.builders_[1].coef_ is not None
                else "none (no labels): text scores are NaN"
            )
        if save_pipeline is not None:
            _save_pipeline(pipe, save_pipeline)
        _write_table(X, out)
        emit(
            {
                "out": out,
                "as_of": when.isoformat(),
                "shops": len(X),
                "features": X.shape[1],
                "text_model": text,
                "seconds": round(time.perf_counter() - t0, 2),
            },
            as_json,
            _human,
        )
