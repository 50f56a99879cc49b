"""``POST /v1/scores`` bodies (issue 23): JSON's own types only (no ``"yes"`` or ``1`` for true, no
``"12"`` for a price), no key given twice, and inline records held to the key rules of files (no
duplicate id, no reference to a row the batch does not hold) — on the records' fast path and on the
``ScoreRequest`` path alike. ``parse_score_request`` is what the endpoint runs on every body."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from fastapi.exceptions import RequestValidationError

from serving.routes.scores import parse_score_request
from serving.schemas import ScoreRequest
from serving.scoring import InlineRecords


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from marketplace.records import records_from_frames

    root = tmp_path_factory.mktemp("strict")
    generate(GeneratorConfig(shops=30, seed=7), root)
    mp = load_marketplace(root)
    frames = {t: getattr(mp, t) for t in ("shops", "listings", "listing_edits", "orders", "complaints", "reviews")}
    frames["authorisations"] = mp.authorisations
    out = [r.model_dump(mode="json") for r in records_from_frames(frames)]
    # records with every child table, so each rule has rows to break
    return sorted(out, key=lambda r: -(len(r["orders"]) + len(r["reviews"]) + len(r["listing_edits"])))[:5]


def _refused(raw: bytes, *words: str) -> str:
    with pytest.raises(RequestValidationError) as info:
        parse_score_request(raw, 1000)
    text = json.dumps(info.value.errors())
    for w in words:
        assert w in text, text
    return text


def test_valid_records_take_the_fast_path_with_or_without_optional_keys(records: list[dict[str, Any]]) -> None:
    assert isinstance(parse_score_request(orjson.dumps({"records": records}), 1000), InlineRecords)
    sparse = copy.deepcopy(records)
    for r in sparse:
        for listing in r["listings"]:
            listing.pop("shop_id", None)
            listing.pop("delisted_at", None)
        r.pop("authorisations")
    assert isinstance(parse_score_request(orjson.dumps({"records": sparse, "top": 2}), 1000), InlineRecords)
    # spelled with spaces (Python's json.dumps): still accepted, the same records
    spaced = json.dumps({"records": records}, indent=1).encode()
    assert isinstance(parse_score_request(spaced, 1000), InlineRecords | ScoreRequest)
    odd = json.dumps({"records": records}, separators=(",", " : ")).encode()
    assert isinstance(parse_score_request(odd, 1000), ScoreRequest)  # the slow path, still valid


def test_no_string_or_number_stands_in_for_a_boolean_or_a_number(records: list[dict[str, Any]]) -> None:
    for options in ({"route": "yes"}, {"route": 1}, {"route": "true"}, {"top": "3"}, {"top": 2.0}):
        _refused(orjson.dumps({"shop_ids": ["S1"], **options}), "body")
        _refused(orjson.dumps({"records": records, **options}), "body")
    priced = copy.deepcopy(records)
    priced[0]["listings"][0]["price"] = "12"
    _refused(orjson.dumps({"records": priced}), "price")
    rated = copy.deepcopy(records)
    rated[0]["reviews"][0]["rating"] = "5"
    _refused(orjson.dumps({"records": rated}), "rating")


def test_a_key_given_twice_is_refused(records: list[dict[str, Any]]) -> None:
    _refused(b'{"shop_ids": ["S1"], "route": false, "route": true}', "duplicate key 'route'")
    raw = orjson.dumps({"records": records})
    listing = orjson.dumps(records[0]["listings"][0])
    assert raw.count(listing) >= 1
    twice = raw.replace(listing, listing[:-1] + b',"price":1.0}', 1)
    _refused(twice, "duplicate key 'price'")
    twice_top = raw[:-1] + b',"top":2,"top":3}'
    _refused(twice_top, "duplicate key 'top'")
    # a text that merely contains "key": inside a string is no repeated key
    quoted = copy.deepcopy(records)
    quoted[0]["listings"][0]["title"] = 'the "price": is right \\": ok'
    assert isinstance(parse_score_request(orjson.dumps({"records": quoted}), 1000), InlineRecords)


@pytest.mark.parametrize("path", ["fast", "slow"])
def test_inline_records_are_held_to_the_key_rules_of_files(records: list[dict[str, Any]], path: str) -> None:
    def body(rs: list[dict[str, Any]]) -> bytes:
        # the slow path: the same body with a space before each colon (the fast path leaves such a text)
        raw = orjson.dumps({"records": rs})
        return raw if path == "fast" else json.dumps({"records": rs}, separators=(",", " : ")).encode()

    r = copy.deepcopy(records)
    r[0]["listings"].append(dict(r[0]["listings"][0]))
    _refused(body(r), "listings.listing_id", "more than once")
    r = copy.deepcopy(records)
    r[1]["listings"].append(dict(r[0]["listings"][0], shop_id=r[1]["shop_id"]))
    _refused(body(r), "listings.listing_id", "more than once")  # across records, as across a file
    r = copy.deepcopy(records)
    r[1] = dict(r[1], shop_id=r[0]["shop_id"])
    for child in ("listings", "orders", "complaints", "reviews", "authorisations"):
        for item in r[1][child]:
            item.pop("shop_id", None)
    _refused(body(r), "shops.shop_id")
    r = copy.deepcopy(records)
    r[0]["orders"][0]["listing_id"] = "no-such-listing"
    _refused(body(r), "orders.listing_id", "no-such-listing")
    r = copy.deepcopy(records)
    r[0]["reviews"][0]["order_id"] = "no-such-order"
    _refused(body(r), "reviews.order_id")
    r = copy.deepcopy(records)
    r[0]["listing_edits"][0]["listing_id"] = "gone"
    _refused(body(r), "listing_edits.listing_id")
    assert isinstance(parse_score_request(body(records), 1000), InlineRecords | ScoreRequest)
