"""Linked shops: identifiers shared with shops that had a "counterfeit" verdict strictly before ``as_of``.

Banned shopkeepers re-register under a new shop; what they rarely change all at once is the phone,
e-mail, ID-number hash, bank account, device and address. The adverse index maps each (identifier
kind, normalised value) to the shops that carried it and the time of their counterfeit verdict. It is
learned in ``fit`` (so a single inline shop can be linked online) and, at transform time, united with
the verdicts of the marketplace being transformed; both are filtered to verdicts before ``as_of``.
A shop is never linked to itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from features.base import MarketplaceFeatureBuilder, stack
from features.context import DAY_US, Snapshot, factorize, group_max, indexer, time_array
from features.docs import FeatureDoc
from features.text import normalise_many
from marketplace.schema import LINKAGE_FIELDS
from marketplace.tables import Marketplace

_KIND_WORDS = {
    "owner_phone": "phone number",
    "owner_email": "e-mail address",
    "id_number_hash": "ID number",
    "bank_account_hash": "bank account",
    "device_id": "device",
    "owner_address": "address",
}


@dataclass
class _Index:
    """Adverse identifiers: ``keys`` (unique "kind\\x1fvalue") -> rows ``ptr[i]:ptr[i+1]`` of shop/at."""

    keys: pd.Index
    ptr: np.ndarray
    shop: np.ndarray  # object array of adverse shop ids
    at: np.ndarray  # int64 µs verdict time
    #: key -> position in ``keys``, for the online path's few lookups
    lookup: dict[str, int]


def _identifier_keys(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, kind number, "kind\\x1fvalue") for every non-empty identifier in ``columns`` (object arrays)."""
    rows, kinds, keys = [], [], []
    for k, col in enumerate(LINKAGE_FIELDS):
        values = columns[col]
        norm = np.asarray(normalise_many(values), dtype=object)
        ok = np.flatnonzero(norm != "")
        rows.append(ok)
        kinds.append(np.full(len(ok), k, dtype=np.intp))
        keys.append(np.asarray([f"{col}\x1f{v}" for v in norm[ok]], dtype=object))
    return np.concatenate(rows), np.concatenate(kinds), np.concatenate(keys)


def _adverse_index(v: pd.DataFrame, all_shops: pd.DataFrame, cutoff_us: int | None) -> _Index:
    if len(v) == 0:
        return _Index(
            pd.Index([], dtype=object), np.zeros(1, dtype=np.int64), np.empty(0, object), np.empty(0, np.int64), {}
        )
    at = time_array(v["decided_at"])
    keep = (v["outcome"] == "counterfeit").to_numpy(dtype=bool)
    if cutoff_us is not None:
        keep = keep & (at < cutoff_us)
    v_shop = v["shop_id"].to_numpy(dtype=object)[keep]
    v_at = at[keep]
    shops = all_shops[all_shops["shop_id"].isin(pd.unique(v_shop))]
    rows, _, keys = _identifier_keys({c: shops[c].to_numpy(dtype=object) for c in LINKAGE_FIELDS})
    shop_ids = shops["shop_id"].to_numpy(dtype=object)[rows]
    # one entry per (identifier, adverse shop, verdict)
    pairs = pd.DataFrame({"key": keys, "shop": shop_ids}).merge(
        pd.DataFrame({"shop": v_shop, "at": v_at}), on="shop", how="inner"
    )
    pairs = pairs.sort_values(["key", "shop", "at"], kind="stable")
    codes, uniques = pd.factorize(pairs["key"].to_numpy(dtype=object), sort=True)
    ptr = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))]).astype(np.int64)
    return _Index(
        keys=pd.Index(uniques, dtype=object),
        ptr=ptr,
        shop=pairs["shop"].to_numpy(dtype=object),
        at=pairs["at"].to_numpy(dtype=np.int64),
        lookup={str(k): i for i, k in enumerate(uniques)},
    )


class LinkedShopFeatures(MarketplaceFeatureBuilder):
    """Per shop: which identifier kinds it shares with counterfeit-verdict shops, how many, how recently."""

    group = "linkage"
    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "shops": ("shop_id", "opened_at", *LINKAGE_FIELDS),
        "verdicts": ("shop_id", "decided_at", "outcome"),
    }

    def _fit(self, mp: Marketplace, examples: pd.DataFrame | None) -> None:
        # every counterfeit verdict of the fit marketplace; transform filters by its own as_of
        self.index_ = _adverse_index(mp.verdicts, mp.shops, None)

    def _docs(self) -> list[FeatureDoc]:
        g = self.group
        docs = [
            FeatureDoc(
                f"linked_by_{k}",
                f"shares its {_KIND_WORDS[k]} with a shop found selling counterfeits",
                True,
                g,
            )
            for k in LINKAGE_FIELDS
        ]
        return [
            *docs,
            FeatureDoc("linked_kinds", "shares {value:.0f} kinds of identifiers with counterfeit shops", True, g),
            FeatureDoc("linked_counterfeit_shops", "linked to {value:.0f} shops found selling counterfeits", True, g),
            FeatureDoc(
                "days_since_linked_verdict",
                "a linked shop was found selling counterfeits {value:.0f} days ago",
                False,
                g,
            ),
            # a banned keeper re-registers within weeks: a shop opened soon after its linked shop's verdict
            FeatureDoc(
                "opened_days_after_linked_verdict",
                "opened {value:.0f} days after a linked shop was found selling counterfeits",
                False,
                g,
            ),
        ]

    def block(self, snap: Snapshot) -> np.ndarray:
        n, k = snap.n, len(LINKAGE_FIELDS)
        codes = snap.codes("shops")
        target_rows = np.flatnonzero(codes >= 0)
        indexes = [self.index_]
        verdicts = snap.frame("verdicts")
        if len(verdicts) and isinstance(verdicts, pd.DataFrame):
            shops = snap.frame("shops")
            indexes.append(
                snap.cached("adverse_index", lambda: _adverse_index(verdicts, pd.DataFrame(shops), snap.as_of_us))
            )
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for kind_no, col in enumerate(LINKAGE_FIELDS):
            # normalise and look up each distinct identifier once, then expand the few hits to rows
            row_codes, values = snap.factorized("shops", col, target_rows)
            keys = np.asarray([f"{col}\x1f{v}" if v else "" for v in normalise_many(values)], dtype=object)
            for index in indexes:
                which, adv_shop, adv_at = _lookup(index, keys, snap.as_of_us)
                if len(which) == 0:
                    continue
                hit, rows = _expand(which, row_codes, len(values))
                found.append((codes[target_rows][rows], np.full(len(rows), kind_no), adv_shop[hit], adv_at[hit]))
        empty = (np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0, object), np.empty(0, np.int64))
        tcode, kinds, adv_shop, adv_at = (np.concatenate(parts) for parts in zip(*(found or [empty]), strict=True))
        tshop = np.asarray(snap.index.take(tcode), dtype=object) if len(tcode) else np.empty(0, object)
        hit = np.arange(len(tcode))
        t = tcode[hit]
        kind = kinds[hit]
        not_self = adv_shop != tshop[hit]
        t, kind, adv_shop, adv_at = t[not_self], kind[not_self], adv_shop[not_self], adv_at[not_self]

        by_kind = np.zeros((n, k))
        if len(t):
            by_kind[t, kind] = 1.0
        linked_shops = np.zeros(n)
        if len(t):
            sc, _ = factorize(adv_shop)
            pair = np.unique(t.astype(np.int64) * (int(sc.max()) + 1) + sc)
            linked_shops = np.bincount(pair // (int(sc.max()) + 1), minlength=n).astype(np.float64)
        latest = group_max(t, adv_at.astype(np.float64), n)
        opened = np.full(n, np.nan)
        opened[codes[target_rows]] = snap.times("shops", "opened_at")[target_rows]
        cols = [by_kind[:, j] for j in range(k)]
        cols += [by_kind.sum(axis=1), linked_shops, (snap.as_of_us - latest) / DAY_US, (opened - latest) / DAY_US]
        return stack(cols, n)


def _expand(which: np.ndarray, row_codes: np.ndarray, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """For hits on distinct values (``which`` indexes the values), every (hit, row) with that value."""
    order = np.argsort(row_codes, kind="stable")
    counts = np.bincount(row_codes, minlength=n_values)
    starts = np.cumsum(counts) - counts
    lengths = counts[which]
    hit = np.repeat(np.arange(len(which)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return hit, order[np.repeat(starts[which], lengths) + offsets]


def _lookup(index: _Index, keys: np.ndarray, as_of_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each identifier matching the index: (position in ``keys``, adverse shop, verdict time before as_of)."""
    empty = (np.empty(0, np.intp), np.empty(0, object), np.empty(0, np.int64))
    if len(index.keys) == 0 or len(keys) == 0:
        return empty
    found = indexer(index.keys, keys, index.lookup)  # "" (no identifier) is never a key
    q = np.flatnonzero(found >= 0)
    if len(q) == 0:
        return empty
    starts, ends = index.ptr[found[q]], index.ptr[found[q] + 1]
    lengths = ends - starts
    which = np.repeat(q, lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    entry = np.repeat(starts, lengths) + offsets
    ok = index.at[entry] < as_of_us
    return which[ok], index.shop[entry[ok]], index.at[entry[ok]]
