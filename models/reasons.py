"""Reasons in words, cheap enough for the scoring hot path.

Exact TreeSHAP (``pred_contrib=True``) costs about 140× a prediction (see docs/training.md for the
figures measured here). We use the Saabas attribution instead: along the path a row takes through a
tree, each split moves the node value from the parent's to the child's, and that change is credited
to the split feature. Summed over the trees it adds up exactly to the raw score (log-odds), like SHAP;
it differs from SHAP only in how credit is shared between interacting features.

It is computed without walking trees in Python: at fit time every leaf of every tree gets its vector
of per-feature path credits (a sparse ``total_leaves × n_features`` matrix); at scoring time
``Booster.predict(pred_leaf=True)`` (as cheap as a prediction) gives the leaf of each tree, and the
credits are one sparse row-sum.

Words: the top positive contributors are rendered with the feature's reason template (from the
feature pipeline's ``describe``), the shop's value and its position in the training population
("top 1% of shops").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@dataclass(frozen=True)
class FeatureText:
    """How one feature reads in a reason."""

    template: str
    higher_is_riskier: bool = True


def path_credit_matrix(booster: lgb.Booster) -> tuple[sp.csr_matrix, NDArray[np.int64], float]:
    """Per-leaf Saabas credits: (matrix over all leaves, leaf offset of each tree, sum of root values)."""
    dump = booster.dump_model()
    n_features = len(dump["feature_names"])
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    offsets: list[int] = []
    bias = 0.0
    offset = 0
    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        offsets.append(offset)
        n_leaves = int(tree["num_leaves"])
        if "leaf_value" in root:  # a single-leaf tree: all bias
            bias += float(root["leaf_value"])
            offset += n_leaves
            continue
        bias += float(root["internal_value"])
        # iterative walk carrying the credits accumulated on the path
        stack: list[tuple[dict[str, Any], dict[int, float]]] = [(root, {})]
        while stack:
            node, credit = stack.pop()
            parent_value = float(node["internal_value"])
            f = int(node["split_feature"])
            for side in ("left_child", "right_child"):
                child = node[side]
                child_value = float(child["leaf_value"] if "leaf_value" in child else child["internal_value"])
                c = dict(credit)
                c[f] = c.get(f, 0.0) + child_value - parent_value
                if "leaf_value" in child:
                    leaf = offset + int(child["leaf_index"])
                    for feat, v in c.items():
                        rows.append(leaf)
                        cols.append(feat)
                        vals.append(v)
                else:
                    stack.append((child, c))
        offset += n_leaves
    m = sp.csr_matrix((vals, (rows, cols)), shape=(offset, n_features), dtype=np.float64)
    m.sum_duplicates()
    return m, np.asarray(offsets, dtype=np.int64), bias


def population_quantiles(
    reference: NDArray[np.float64], qs: NDArray[np.float64], cap: int = 20_000
) -> NDArray[np.float64]:
    """Per-column quantiles (NaN ignored; all-NaN columns NaN) from at most ``cap`` rows (seeded sample):
    one sort per column instead of ``nanquantile``'s 1,001 partitions."""
    if len(reference) == 0:
        return np.zeros((len(qs), reference.shape[1] if reference.ndim == 2 else 0))
    if len(reference) > cap:
        pick = np.random.default_rng(0).choice(len(reference), cap, replace=False)
        reference = reference[np.sort(pick)]
    ordered = np.sort(reference, axis=0)  # NaN sort last
    n = np.sum(~np.isnan(reference), axis=0)
    pos = np.floor(qs[:, None] * np.maximum(n - 1, 0)[None, :]).astype(np.int64)
    out = np.take_along_axis(ordered, pos, axis=0)
    out[:, n == 0] = np.nan
    return out


class ReasonExplainer:
    """Turns a booster's per-row credits and feature values into reason sentences."""

    def __init__(self, booster: lgb.Booster, texts: dict[str, FeatureText], reference: NDArray[np.float64]) -> None:
        self.feature_names_: list[str] = list(booster.feature_name())
        self.credits_, self.offsets_, self.bias_ = path_credit_matrix(booster)
        self.texts_ = {n: texts.get(n, FeatureText("{name} = {value:.3g}")) for n in self.feature_names_}
        # population quantiles (0..100) of each feature, for "top x% of shops"
        qs = np.linspace(0.0, 1.0, 1001)
        self.quantiles_ = population_quantiles(reference, qs)
        self.q_levels_ = qs

    def contributions(self, booster: lgb.Booster, X: NDArray[np.float64], num_threads: int = 1) -> NDArray[np.float64]:
        """Saabas credits, shape (rows, features), in log-odds; they sum (plus bias) to the raw score."""
        leaves = np.asarray(booster.predict(X, pred_leaf=True, num_threads=num_threads), dtype=np.int64)
        if leaves.ndim == 1:
            leaves = leaves.reshape(len(X), -1)
        n, t = leaves.shape
        glob = (leaves + self.offsets_[:t]).ravel()
        # gather the CSR rows of every (row, tree) leaf and add them up per row with one bincount:
        # plain numpy, no sparse-matrix construction (that alone costs ~100 µs a call)
        m = self.credits_
        starts = m.indptr[glob]
        lengths = m.indptr[glob + 1] - starts
        total = int(lengths.sum())
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)
        pos = np.arange(total) - first + np.repeat(starts, lengths)
        owner = np.repeat(np.repeat(np.arange(n), t), lengths)
        f = m.shape[1]
        flat = np.bincount(owner * f + m.indices[pos], weights=m.data[pos], minlength=n * f)
        return np.asarray(flat, dtype=np.float64).reshape(n, f)

    def _share_above(self, j: int, value: float) -> float:
        """Share of the reference population whose value is at least ``value``."""
        col = self.quantiles_[:, j]
        below = int(np.searchsorted(col, value, side="left"))
        return float(1.0 - self.q_levels_[min(below, len(col) - 1)]) if below < len(col) else 0.0

    def _shares_above(self, js: NDArray[np.int64], values: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`_share_above` of many (feature, value) pairs: one ``searchsorted`` per feature named."""
        out = np.zeros(len(js))
        q = self.quantiles_
        n = q.shape[0]
        for j in np.unique(js[js < q.shape[1]]).tolist():
            at = np.flatnonzero(js == j)
            below = np.searchsorted(q[:, j], values[at], side="left")
            out[at] = np.where(below < n, 1.0 - self.q_levels_[np.minimum(below, n - 1)], 0.0)
        return out

    def sentence(self, name: str, j: int, value: float, share_above: float | None = None) -> str:
        """The reason in words; ``share_above``: :meth:`_share_above` of (j, value) if already known."""
        text = self.texts_[name]
        try:
            words = text.template.format(value=value, name=name)
        except (KeyError, ValueError, IndexError):
            words = f"{name} = {value:.3g}"
        if value != value or self.quantiles_.shape[1] <= j:  # NaN
            return words
        above = self._share_above(j, value) if share_above is None else share_above
        share = above if text.higher_is_riskier else 1.0 - above
        if share <= 0.25:
            pct = max(share * 100.0, 0.1)
            label = f"{pct:.0f}%" if pct >= 1 else f"{pct:.1f}%"
            side = "top" if text.higher_is_riskier else "bottom"
            return f"{words}, {side} {label} of shops"
        return words

    def explain(
        self, booster: lgb.Booster, X: NDArray[np.float64], top: int = 3, num_threads: int = 1
    ) -> list[list[str]]:
        """The ``top`` features that pushed each row's score up most, in words."""
        if len(X) == 0:
            return []
        contrib = self.contributions(booster, X, num_threads)
        n, f = contrib.shape
        k = min(top, f)
        # every row's top k at once: the same selection and stable order as one row at a time
        idx = np.argpartition(-contrib, k - 1, axis=1)[:, :k] if k < f else np.tile(np.arange(f), (n, 1))
        order = np.argsort(-np.take_along_axis(contrib, idx, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        credit = np.take_along_axis(contrib, idx, axis=1)
        values = np.take_along_axis(np.asarray(X, dtype=np.float64), idx, axis=1)
        shares: Any = self._shares_above(idx.ravel(), values.ravel()).reshape(idx.shape).tolist()
        names = self.feature_names_
        sentence = self.sentence
        out: list[list[str]] = []
        for js, cs, vs, ss in zip(idx.tolist(), credit.tolist(), values.tolist(), shares, strict=True):
            out.append([sentence(names[j], j, v, s) for j, c, v, s in zip(js, cs, vs, ss, strict=True) if c > 0])
        return out
