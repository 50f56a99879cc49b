"""The column-wise check of inline records (``record_columns``) is a fast path, never the judge: whatever
it accepts, ``ShopRecord`` accepts too and turns into exactly the same contract columns; every bad field
makes it give up (so the API validates with ``ShopRecord``, which names the field)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from features.online import records_to_tables, tables_from_columns
from marketplace.loader import validate_frames
from marketplace.records import CHILD_TABLES, ShopRecord, records_from_frames
from marketplace.schema import SHOPS, TABLES_BY_NAME
from serving.record_columns import RecordColumns, record_columns
from tests.test_contract import SNAPSHOT, valid_frames
from tests.test_records import BAD_FIELDS, _put


def _records_json() -> list[dict[str, Any]]:
    """The valid test marketplace's shops as the API receives them (parsed JSON)."""
    mp = validate_frames(valid_frames(), SNAPSHOT)
    records = records_from_frames({n: mp.table(n) for n in mp.table_names()})
    return list(orjson.loads(orjson.dumps([r.model_dump(mode="json") for r in records])))


def assert_same_tables(cols: RecordColumns, records: list[ShopRecord]) -> None:
    """The fast path's columns equal, array by array (dtype and every value), the tables the online
    path builds from ``ShopRecord`` objects."""
    want = records_to_tables(records)
    got = tables_from_columns(cols.columns, cols.rows)
    assert set(got) == set(want)
    for name, table in want.items():
        assert len(got[name]) == len(table), name
        assert got[name].columns == table.columns, name
        for col in table.columns:
            a, b = got[name][col], table[col]
            assert a.dtype == b.dtype, (name, col, a.dtype, b.dtype)
            if a.dtype.kind == "M":
                assert a.view(np.int64).tolist() == b.view(np.int64).tolist(), (name, col)
            else:
                assert a.tolist() == b.tolist(), (name, col)


def test_valid_records_give_the_shoprecord_columns() -> None:
    data = _records_json()
    cols = record_columns(data)
    assert cols is not None
    assert cols.rows["shops"] == 3 and cols.rows["orders"] > 0
    assert_same_tables(cols, [ShopRecord.model_validate(r) for r in data])


def test_children_may_leave_out_or_repeat_their_shop_id() -> None:
    data = _records_json()
    for item in data[0]["orders"]:
        item.pop("shop_id")
    data[0]["reviews"][0]["shop_id"] = None
    cols = record_columns(data)
    assert cols is not None
    assert_same_tables(cols, [ShopRecord.model_validate(r) for r in data])


def test_times_with_offsets_become_naive_utc() -> None:
    data = _records_json()
    data[0]["opened_at"] = "2023-01-01T08:00:00+08:00"
    data[1]["opened_at"] = "2023-03-05T10:00:00.25Z"
    data[0]["orders"][0]["ordered_at"] = "2024-03-01T23:30:00-05:30"
    cols = record_columns(data)
    assert cols is not None
    assert cols.columns["shops"]["opened_at"][0] == np.datetime64("2023-01-01T00:00:00")
    assert_same_tables(cols, [ShopRecord.model_validate(r) for r in data])


#: bad inputs beyond the field limits of tests/test_records.py: shape, keys, types and ownership
BAD_SHAPES: list[tuple[str, Any]] = [
    ("reviews.1.shop_id", "s2"),  # a child of another shop
    ("orders.0.amount", True),  # a bool is no number here
    ("orders.0.amount", None),
    ("reviews.0.rating", 4.5),
    ("listings.0.title", 5),
    ("listings.0.delisted_at", 5),
    ("opened_at", "2023-01-01"),  # valid for pydantic; the fast path leaves such spellings to it
    ("opened_at", "2023-02-30T00:00:00"),
    ("opened_at", "2023-01-01T24:00:00"),
    ("opened_at", "2023-01-01T10:00:00+24:00"),
    ("orders", None),
    ("orders", {"a": 1}),
    ("orders", ["not an object"]),
    ("listings.0.surprise", 1),
    ("surprise", 1),
    ("device_id", "\x7f"),
    ("name", "a\x00b"),
    ("owner_address", "x" * 201),
    ("shop_id", ""),
]


@pytest.mark.parametrize(("path", "value"), [(b[0], b[1]) for b in BAD_FIELDS] + BAD_SHAPES)
def test_the_fast_path_gives_up_on_what_it_cannot_prove(path: str, value: Any) -> None:
    data = _records_json()[0]
    _put(data, path, value)
    assert record_columns([data]) is None


def test_missing_required_keys_and_oversized_lists_are_left_to_the_model() -> None:
    data = _records_json()[0]
    del data["orders"][0]["buyer_id"]
    assert record_columns([data]) is None
    data = _records_json()[0]
    del data["device_id"]
    assert record_columns([data]) is None
    data = _records_json()[0]
    data["authorisations"] = data["authorisations"] * 5001  # ShopRecord takes at most 10,000
    assert len(data["authorisations"]) > 10_000
    assert record_columns([data]) is None
    assert record_columns(["not an object"]) is None


# -- property: whatever the fast path accepts, ShopRecord accepts with the same values ------------------

_NOW = datetime.now(UTC).replace(tzinfo=None)


@st.composite
def time_spellings(draw: st.DrawFn) -> str:
    """Times in the spellings clients send, valid or not for pydantic."""
    dt = draw(st.datetimes(min_value=datetime(1999, 12, 30), max_value=_NOW + timedelta(days=3)))
    offset = draw(st.integers(-24 * 60, 24 * 60))
    sign = "-" if offset < 0 else "+"
    hh, mm = divmod(abs(offset), 60)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{dt.microsecond:06d}"[: draw(st.integers(1, 6))]
    variants = [
        base,
        dt.isoformat(),
        f"{base}.{frac}",
        f"{base}.{frac}999",
        f"{base}Z",
        f"{base}{sign}{hh:02d}:{mm:02d}",
        f"{base}.{frac}{sign}{hh:02d}:{mm:02d}",
        f"{base}{sign}{hh:02d}{mm:02d}",
        dt.strftime("%Y-%m-%d"),
        dt.strftime("%Y-%m-%d %H:%M:%S"),
        dt.strftime("%Y-%m-%dt%H:%M:%S"),
        dt.strftime("%Y-%m-%dT%H:%M"),
        base.replace("-", "/"),
    ]
    return draw(st.sampled_from(variants))


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 5, 6, 0.01, 0.009, 1e7, 1e7 + 1, -1.0, 3.0, "12.5", "5", ""]),
    st.text(max_size=12),
    st.text(alphabet=st.characters(max_codepoint=0xA0), max_size=8),  # control characters often
    st.text(alphabet="ab", min_size=63, max_size=66),  # around the id limit
    st.sampled_from(["bags", "shoes", "handbags", "counterfeit", "consumer", "test_buy", "BAGS"]),
    time_spellings(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _near_valid(kind: str, choices: tuple[str, ...] | None, max_len: int | None) -> st.SearchStrategy[Any]:
    """Values of a column's own kind, mostly valid, some just past a limit."""
    if kind == "timestamp":
        return time_spellings()
    if kind == "float":
        return st.one_of(st.floats(0.01, 1e7), st.integers(1, 10**7), st.sampled_from([0.0099, 1e7 + 0.5, 0, -3]))
    if kind == "int":
        return st.one_of(st.integers(0, 6), st.sampled_from([3.0, True]))
    if choices is not None:
        return st.one_of(st.sampled_from(choices), st.sampled_from([c.upper() for c in choices] + [""]))
    limit = max_len or 50
    return st.one_of(
        st.text(max_size=min(limit, 30)),
        st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=min(limit, 12)),
        st.text(alphabet="xy中", min_size=limit - 1, max_size=limit + 1),
    )


def _slots(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every (container path, key, strategy) of one record that a mutation can change, delete or add."""
    shop = [((), c.name, _near_valid(c.kind, c.choices, c.max_len)) for c in SHOPS.columns]
    out: list[tuple[Any, ...]] = [*shop, *[((), k, JSON_VALUES) for k in [*CHILD_TABLES, "extra_key"]]]
    for field, table in CHILD_TABLES.items():
        items = record.get(field)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                out += [((field, i), c.name, _near_valid(c.kind, c.choices, c.max_len)) for c in table.columns]
                out.append(((field, i), "extra_key", JSON_VALUES))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_the_fast_path_accepts_shoprecord_accepts_identically(data: st.DataObject) -> None:
    records = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 2))):
        r = data.draw(st.integers(0, len(records) - 1))
        where, key, values = data.draw(st.sampled_from(_slots(records[r])))
        target: Any = records[r]
        for part in where:
            target = target[part]
        action = data.draw(st.sampled_from(["own kind", "own kind", "own kind", "any value", "delete"]))
        if action == "delete" and key in target:
            del target[key]
        else:
            target[key] = data.draw(values if action == "own kind" else JSON_VALUES)
    body = json.dumps(records, ensure_ascii=False).encode()
    cols = record_columns(body)  # the JSON text, as the API decodes it
    try:
        slow = pydantic.TypeAdapter(list[ShopRecord]).validate_json(body)
    except pydantic.ValidationError:
        event("invalid")
        assert cols is None, "the fast path accepted records ShopRecord refuses"
        return
    event("valid, fast path" if cols is not None else "valid, left to ShopRecord")
    if cols is not None:
        assert_same_tables(cols, slow)


BASE = _records_json()


def test_the_property_is_not_vacuous() -> None:
    """Unchanged records pass both ways, and the tables compare column by column (every table)."""
    cols = record_columns(BASE)
    assert cols is not None
    assert {t for t, n in cols.rows.items() if n} == {"shops", *(t.name for t in CHILD_TABLES.values())}
    assert all(TABLES_BY_NAME[t].column_names == list(c) for t, c in cols.columns.items())
