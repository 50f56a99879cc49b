"""Listings as they stood at ``as_of``, and the normalised texts of listings and reviews (shared caches).

A listing exists at ``as_of`` when it was created strictly before it. Its title and price are those of
its latest edit strictly before ``as_of``, else the ones it was created with; it counts as delisted
only when ``delisted_at`` is strictly before ``as_of``. Later edits and delistings are invisible.

Texts are normalised once per distinct text (titles, descriptions, reviews; marketplaces repeat them a lot), and
every text consumer (lexicon flags, the n-gram scorer) works on the distinct normalised texts with an
index back to the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.context import Snapshot, factorize, indexer
from features.lexicon import blatant_titles, says_fake
from features.text import TextMemo, normalise_many

#: raw text -> normalised text, and normalised text -> lexicon flags, kept across transforms (TextMemo)
_NORMALISED = TextMemo()
_BLATANT = TextMemo()
_SAYS_FAKE = TextMemo()


def _says_fake_many(texts: list[str]) -> list[bool]:
    return [says_fake(t) for t in texts]


@dataclass
class ListingState:
    """The target shops' listings at ``as_of`` (arrays aligned by listing)."""

    #: row positions in ``mp.listings``
    pos: np.ndarray
    #: target-shop row of each listing
    codes: np.ndarray
    created_at: np.ndarray
    delisted: np.ndarray
    delisted_at: np.ndarray
    price: np.ndarray
    #: the latest edit before as_of of each edited listing: listing (index into the arrays above)
    #: and row in ``listing_edits``; the title as of as_of comes from there (see :func:`title_texts`)
    last_edit_listing: np.ndarray
    last_edit_row: np.ndarray
    #: the edits strictly before as_of: their listing (index into the arrays above) and time
    edit_listing: np.ndarray
    edit_at: np.ndarray


def listing_state(snap: Snapshot) -> ListingState:
    result: ListingState = snap.cached("listing_state", lambda: _listing_state(snap))
    return result


def _listing_state(snap: Snapshot) -> ListingState:
    pos = snap.before("listings", "created_at")
    codes = snap.codes("listings")[pos]
    created = snap.times("listings", "created_at")[pos]
    delisted_at = snap.times("listings", "delisted_at")[pos]
    delisted = delisted_at < snap.as_of_us
    price = snap.values("listings", "price", np.float64)[pos].copy()
    last_edit_listing = np.empty(0, dtype=np.intp)
    last_edit_row = np.empty(0, dtype=np.intp)
    edit_listing = np.empty(0, dtype=np.intp)
    edit_at = np.empty(0, dtype=np.int64)
    if len(pos) and snap.nrows("listing_edits"):
        listing_col = snap.frame("listings")["listing_id"]
        listing_ids = pd.Index(listing_col[pos] if isinstance(listing_col, np.ndarray) else listing_col.take(pos))
        target = indexer(listing_ids, snap.frame("listing_edits")["listing_id"])
        at = snap.times("listing_edits", "edited_at")
        keep = np.flatnonzero((target >= 0) & (at < snap.as_of_us))
        if len(keep):
            edit_listing, edit_at = target[keep], at[keep]
            # latest edit per listing; equal times are ordered by edit_id so the result never
            # depends on the row order of the table
            order = np.lexsort((edit_at, edit_listing))
            same = (edit_listing[order][1:] == edit_listing[order][:-1]) & (edit_at[order][1:] == edit_at[order][:-1])
            if same.any():  # rare: break exact-time ties by edit_id (only then read the ids)
                edit_ids = snap.values("listing_edits", "edit_id", object)[keep]
                tie = np.argsort(np.argsort(edit_ids, kind="stable"), kind="stable")
                order = np.lexsort((tie, edit_at, edit_listing))
            last = order[np.r_[edit_listing[order][1:] != edit_listing[order][:-1], True]]
            rows = keep[last]
            last_edit_listing, last_edit_row = edit_listing[last], rows
            price[edit_listing[last]] = snap.values("listing_edits", "price", np.float64)[rows]
    return ListingState(
        pos=pos,
        codes=codes,
        created_at=created,
        delisted=delisted,
        delisted_at=delisted_at,
        price=price,
        last_edit_listing=last_edit_listing,
        last_edit_row=last_edit_row,
        edit_listing=edit_listing,
        edit_at=edit_at,
    )


@dataclass
class Texts:
    """Distinct normalised texts and, for each row, the index of its text."""

    unique: list[str]
    inverse: np.ndarray


def distinct_normalised(codes: np.ndarray, uniques: list[object]) -> Texts:
    """Texts from factorised raw values: normalise each distinct raw value once."""
    if len(codes) == 0:
        return Texts([], np.empty(0, dtype=np.intp))
    normalised = _NORMALISED.map(uniques, normalise_many)
    # different raw texts can normalise to the same text; map them to one entry
    ncodes, nuniques = factorize(np.asarray(normalised, dtype=object))
    return Texts(list(nuniques), ncodes[codes])


def description_texts(snap: Snapshot) -> Texts:
    """Descriptions of the listings of :func:`listing_state` (descriptions are not edited)."""

    def make() -> Texts:
        state = listing_state(snap)
        return distinct_normalised(*snap.factorized("listings", "description", state.pos))

    result: Texts = snap.cached("description_texts", make)
    return result


def title_texts(snap: Snapshot) -> Texts:
    def make() -> Texts:
        state = listing_state(snap)
        codes, values = snap.factorized("listings", "title", state.pos)
        if len(state.last_edit_row):
            edit_codes, edit_values = snap.factorized("listing_edits", "title", state.last_edit_row)
            codes = codes.copy()
            codes[state.last_edit_listing] = len(values) + edit_codes
            values = values + edit_values
        return distinct_normalised(codes, values)

    result: Texts = snap.cached("title_texts", make)
    return result


def review_texts(snap: Snapshot) -> Texts:
    """Texts of the target shops' reviews created strictly before ``as_of``."""

    def make() -> Texts:
        pos = snap.before("reviews", "created_at")
        return distinct_normalised(*snap.factorized("reviews", "text", pos))

    result: Texts = snap.cached("review_texts", make)
    return result


def blatant_title_flags(snap: Snapshot) -> np.ndarray:
    """Per listing of :func:`listing_state`: the current title states it is a copy."""

    def make() -> np.ndarray:
        texts = title_texts(snap)
        flags = np.fromiter(_BLATANT.map(texts.unique, blatant_titles), dtype=bool, count=len(texts.unique))
        return flags[texts.inverse]

    result: np.ndarray = snap.cached("blatant_title_flags", make)
    return result


def fake_review_flags(snap: Snapshot) -> np.ndarray:
    """Per review before ``as_of`` (order of ``snap.before('reviews', ...)``): it says the goods are fake."""

    def make() -> np.ndarray:
        texts = review_texts(snap)
        flags = np.fromiter(_SAYS_FAKE.map(texts.unique, _says_fake_many), dtype=bool, count=len(texts.unique))
        return flags[texts.inverse]

    result: np.ndarray = snap.cached("fake_review_flags", make)
    return result
