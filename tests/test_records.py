"""Inline shop records: limits come from the schema, a bad field is a 422 with its JSON path,
and records turn into the same contract frames the loader produces."""

from __future__ import annotations

import asyncio
import typing
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pydantic
import pytest
from fastapi import FastAPI

from core.errors import DataContractError
from marketplace.loader import validate_frames
from marketplace.records import (
    CHILD_TABLES,
    AuthorisationItem,
    ComplaintItem,
    ListingEditItem,
    ListingItem,
    OrderItem,
    ReviewItem,
    ShopRecord,
    records_from_frames,
    records_to_frames,
)
from marketplace.schema import SHOPS, TABLES_BY_NAME, Table
from tests.test_contract import SNAPSHOT, check_dtypes, valid_frames

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "shops": ShopRecord,
    "authorisations": AuthorisationItem,
    "listings": ListingItem,
    "listing_edits": ListingEditItem,
    "orders": OrderItem,
    "complaints": ComplaintItem,
    "reviews": ReviewItem,
}


def _records() -> list[ShopRecord]:
    mp = validate_frames(valid_frames(), SNAPSHOT)
    return records_from_frames({n: mp.table(n) for n in mp.table_names()})


def _metadata(model: type[pydantic.BaseModel], name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in model.model_fields[name].metadata:
        for attr in ("max_length", "min_length", "ge", "le", "allow_inf_nan"):
            value = getattr(m, attr, None)
            if value is not None:
                out[attr] = value
    return out


@pytest.mark.parametrize("table", list(MODELS))
def test_fields_carry_the_schema_limits(table: str) -> None:
    spec: Table = TABLES_BY_NAME[table]
    model = MODELS[table]
    own = [f for f in model.model_fields if f not in CHILD_TABLES]
    assert own == spec.column_names  # every column, in contract order, nothing else
    for col in spec.columns:
        meta = _metadata(model, col.name)
        if col.max_len is not None:
            assert meta.get("max_length") == col.max_len, (table, col.name)
        if col.min is not None:
            assert meta.get("ge") == col.min, (table, col.name)
        if col.max is not None:
            assert meta.get("le") == col.max, (table, col.name)
        if col.kind == "float":
            assert meta.get("allow_inf_nan") is False
        field = model.model_fields[col.name]
        optional = type(None) in typing.get_args(field.annotation)
        assert optional == (col.nullable or (col.name == "shop_id" and table != "shops")), (table, col.name)
        schema = model.model_json_schema()
        prop = schema["properties"][col.name]
        if col.choices is not None:
            assert prop.get("enum") == list(col.choices)


def test_records_round_trip_to_contract_frames() -> None:
    frames = valid_frames()
    records = _records()
    out = records_to_frames(records)
    assert set(out) == {"shops", *(t.name for t in CHILD_TABLES.values())}
    assert "brands" not in out and "verdicts" not in out
    mp = validate_frames(out, SNAPSHOT)  # brands absent: brand references are not checked
    check_dtypes(mp)
    for name, frame in out.items():
        want = frames[name].sort_values(TABLES_BY_NAME[name].key[0]).reset_index(drop=True)
        got = frame.sort_values(TABLES_BY_NAME[name].key[0]).reset_index(drop=True)
        assert got.shape == want.shape, name
        for col in frame.columns:
            a, b = got[col].tolist(), want[col].tolist()
            assert [pd.isna(x) for x in a] == [pd.isna(x) for x in b], (name, col)
            assert [x for x in a if not pd.isna(x)] == [x for x in b if not pd.isna(x)], (name, col)


def test_children_inherit_the_record_shop_id() -> None:
    data = _records()[0].model_dump(mode="json")
    for item in data["orders"]:
        item.pop("shop_id")
    frames = records_to_frames([data])
    assert frames["orders"]["shop_id"].tolist() == [data["shop_id"]] * len(data["orders"])


def test_child_of_another_shop_is_refused() -> None:
    data = _records()[0].model_dump(mode="json")
    data["reviews"][1]["shop_id"] = "s2"
    with pytest.raises(pydantic.ValidationError, match=r"reviews\[1\].shop_id is 's2' but the record is shop 's1'"):
        ShopRecord.model_validate(data)


def test_empty_records_give_typed_empty_frames() -> None:
    frames = records_to_frames([])
    assert all(len(f) == 0 for f in frames.values())
    check_dtypes(validate_frames(frames, SNAPSHOT))


def test_cross_record_rules_are_checked_by_validate_frames() -> None:
    data = _records()[0].model_dump(mode="json")
    data["orders"][0]["listing_id"] = "l-unknown"
    with pytest.raises(DataContractError, match=r"table 'orders', column 'listing_id'.*order_id='o1'"):
        validate_frames(records_to_frames([data]), SNAPSHOT)


# -- an API built on the record answers 422 with the JSON path of every bad field ------------------------


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/score")
    async def score(records: list[ShopRecord]) -> dict[str, int]:
        return {"n": len(records)}

    return app


BAD_FIELDS: list[tuple[str, Any, tuple[Any, ...], str]] = [
    ("listings.1.price", -3.0, ("body", 0, "listings", 1, "price"), "greater than or equal to 0.01"),
    # a string is no number at all (strict types, issue 23): not even "NaN"
    ("listings.0.price", "NaN", ("body", 0, "listings", 0, "price"), "valid number"),
    ("listings.0.price", "12", ("body", 0, "listings", 0, "price"), "valid number"),
    ("orders.0.amount", 2e7, ("body", 0, "orders", 0, "amount"), "less than or equal to 10000000"),
    ("reviews.0.rating", 0, ("body", 0, "reviews", 0, "rating"), "greater than or equal to 1"),
    ("reviews.1.rating", "five", ("body", 0, "reviews", 1, "rating"), "valid integer"),
    ("complaints.0.kind", "fake", ("body", 0, "complaints", 0, "kind"), "not one of"),
    ("category", "handbags", ("body", 0, "category"), "not one of"),
    ("listings.0.title", "x" * 501, ("body", 0, "listings", 0, "title"), "at most 500 characters"),
    ("owner_phone", "", ("body", 0, "owner_phone"), "at least 1 character"),
    ("device_id", "d\x001", ("body", 0, "device_id"), "control character"),
    ("opened_at", "31/02/2024", ("body", 0, "opened_at"), "datetime"),
    ("opened_at", "1999-12-31T00:00:00", ("body", 0, "opened_at"), "before 2000-01-01"),
    ("orders.0.ordered_at", "2999-01-01T00:00:00", ("body", 0, "orders", 0, "ordered_at"), "future"),
    ("listing_edits.0.surprise", 1, ("body", 0, "listing_edits", 0, "surprise"), "Extra inputs"),
]


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target: Any = data
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    target[parts[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "loc", "words"), BAD_FIELDS, ids=[f"{b[0]}={b[1]!r}"[:40] for b in BAD_FIELDS]
)
def test_api_answers_422_with_the_json_path(path: str, value: Any, loc: tuple[Any, ...], words: str) -> None:
    data = _records()[0].model_dump(mode="json")
    _put(data, path, value)
    good = _records()[0].model_dump(mode="json")

    async def post() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/score", json=[good]), await client.post("/score", json=[data])

    ok, resp = asyncio.run(post())
    assert ok.status_code == 200 and ok.json() == {"n": 1}
    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert [tuple(e["loc"]) for e in errors] == [loc]
    assert words in errors[0]["msg"]


def test_tz_aware_record_times_become_naive_utc() -> None:
    data = _records()[0].model_dump(mode="json")
    data["opened_at"] = "2023-01-01T08:00:00+08:00"
    frames = records_to_frames([data])
    assert frames["shops"]["opened_at"].iloc[0] == pd.Timestamp("2023-01-01 00:00:00")
    assert frames["shops"]["opened_at"].dtype == np.dtype("datetime64[us]")


def test_shop_columns_match_the_schema() -> None:
    record = _records()[0]
    assert [c for c in record.model_dump() if c not in CHILD_TABLES] == SHOPS.column_names
