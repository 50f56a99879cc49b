"""Text for Chinese and English without a tokenizer: normalisation, hashed character n-grams, a linear scorer.

Why characters: Chinese has no spaces, so word tokenisers need a dictionary; character n-grams (1-3)
catch "高仿", "a货" and "replica" alike, and "char_wb" n-grams of English words are robust to the
misspellings counterfeiters use to dodge keyword filters. Why hashing: no vocabulary to learn or store,
the same column for a n-gram in every process, and scoring a text is one sparse dot product.

Normalisation makes visually equal texts equal: NFKC folds full-width forms ("ＲＥＰＬＩＣＡ", "１：１")
into half-width, casefold lowers case (also for e.g. German ß), runs of whitespace become one space.
"""

from __future__ import annotations

import itertools
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.utils.validation import check_is_fitted, validate_data


def _as_str(text: object) -> str:
    if text is None or text is pd.NA or (isinstance(text, float) and text != text):
        return ""
    return str(text)


def normalise_text(text: object) -> str:
    """NFKC + casefold + single spaces; None/NaN become the empty string, numbers their ``str``."""
    if not isinstance(text, str):
        text = _as_str(text)
    # str.split() splits at exactly the characters ``\s`` matches (Py_UNICODE_ISSPACE)
    return " ".join(_nfkc(text).casefold().split())


def _nfkc(text: str) -> str:
    # the quick check answers most texts without building a new string (normalising is ~80 ns a character)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


#: joins texts for one pass of a text-wide step. No text holds it (the callers check), casefold maps it to
#: itself, it is no space to ``str.split`` and no word character to ``\b``: a step over the joined texts
#: gives each text what it gives that text alone.
SEPARATOR = "\x00"


def joined(texts: list[str]) -> str | None:
    """The texts joined by :data:`SEPARATOR`, or None if one of them holds it (then go text by text)."""
    out = SEPARATOR.join(texts)
    return out if out.count(SEPARATOR) == len(texts) - 1 else None


def normalise_many(texts: Iterable[object]) -> list[str]:
    """``normalise_text`` of each text (the same strings): NFKC text by text (most texts pass the quick
    check), then casefold and the spaces in one pass over all of them."""
    raw = [_nfkc(t) if type(t) is str else _nfkc(_as_str(t)) for t in texts]
    whole = joined(raw)
    if whole is None:
        return [normalise_text(t) for t in raw]
    # a run of spaces next to a separator leaves one space at the end or start of a text: strip it
    return [p.strip() for p in " ".join(whole.casefold().split()).split(SEPARATOR)]


_ABSENT = object()


class TextMemo:
    """The results of a pure function of one text, kept across calls.

    A scoring service sees the same listing and review texts again and again (a shop rescored as its
    history grows, templated listings across shops), and normalising, matching and hashing texts are
    the costly part of the text features. A value is exactly what ``compute`` returns for that text
    (``compute`` must give each text's result independently of the others), so a hit changes nothing.
    Bounded by the characters of the texts held (2 million by default: about seven 1,000-shop batches'
    distinct texts, a few MB to ~16 MB with the values): emptied when a new batch would go over the bound,
    and a batch larger than the bound is computed without being kept (a whole marketplace in training
    does not churn it). Shared by threads: a race can at worst compute a value twice.
    """

    def __init__(self, max_chars: int = 2_000_000) -> None:
        self.max_chars = max_chars
        self._values: dict[str, Any] = {}
        self._chars = 0

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values, self._chars = {}, 0

    def map(self, texts: Sequence[Any], compute: Callable[[list[Any]], Sequence[Any]]) -> list[Any]:
        """``compute(texts)`` for the texts not seen before, the kept values for the others (non-texts:
        None, NaN, numbers, are computed every time and never kept)."""
        texts = list(texts)
        get = self._values.get
        out = [get(t, _ABSENT) if type(t) is str else _ABSENT for t in texts]
        todo = [i for i, v in enumerate(out) if v is _ABSENT]
        if not todo:
            return out
        all_new = len(todo) == len(texts)
        missing = texts if all_new else [texts[i] for i in todo]
        fresh = list(compute(missing))
        if len(fresh) != len(missing):
            raise ValueError(f"compute gave {len(fresh)} values for {len(missing)} texts")
        if all_new:  # no gathering and scattering
            out = fresh
        else:
            for i, v in zip(todo, fresh, strict=True):
                out[i] = v
        kept = [(t, v) for t, v in zip(missing, fresh, strict=True) if type(t) is str]
        chars = sum(map(len, map(itemgetter(0), kept)))
        if chars <= self.max_chars:
            if self._chars + chars > self.max_chars:
                self.clear()
            self._values.update(kept)
            self._chars += chars
        return out


def _as_text_list(X: Any) -> list[object]:
    """Texts from a 1-D sequence, or from a 2-D array/frame whose columns are text fields of one document
    (e.g. title and description), joined with a space; non-text values are written with ``str``."""
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:
        X = X.to_numpy(dtype=object)
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 1:
        return list(arr)
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D sequence of texts or a 2-D array of text fields, got shape {arr.shape}")
    if arr.shape[1] == 1:
        return list(arr[:, 0])
    return [" ".join(_field(v) for v in row) for row in arr]


def _validated(est: BaseEstimator, X: Any, reset: bool) -> np.ndarray:
    """sklearn's input validation for text arrays: 2-D object array (a 1-D sequence is one text column),
    no sparse input, at least one row, ``n_features_in_`` recorded (reset) or checked."""
    if not hasattr(X, "shape") and not hasattr(X, "__array__"):
        X = np.asarray(list(X), dtype=object)
    if getattr(X, "ndim", 2) == 1:
        X = np.asarray(X, dtype=object).reshape(-1, 1)
    out: np.ndarray = validate_data(est, X, dtype=None, ensure_all_finite=False, accept_sparse=False, reset=reset)
    return out


def _field(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


class TextNormaliser(TransformerMixin, BaseEstimator):
    """Stateless transformer: texts in, normalised texts out (a column of str, shape (n, 1))."""

    def fit(self, X: Any, y: Any = None) -> TextNormaliser:
        _validated(self, X, reset=True)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        out = np.asarray(normalise_many(_as_text_list(_validated(self, X, reset=False))), dtype=object)
        return out.reshape(-1, 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["text_normalised"], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        return tags


_MULT = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


class CharNgramHasher:
    """Character n-grams of normalised texts hashed into ``n_features`` columns, fully vectorised.

    Each text is padded with one space on both sides (so word starts/ends and single characters
    are n-grams of their own), the n-grams of every length in ``ngram_range`` are hashed with a
    64-bit multiply-xor hash of their code points, and the top bits pick the column. All texts are
    processed as one code-point array in numpy: no Python loop over texts or n-grams, which is what
    makes a million shops' titles affordable (sklearn's HashingVectorizer loops in Python).

    ``counts(texts)`` returns raw n-gram counts (CSR, float32) and the number of n-grams per text;
    :func:`unit_rows` turns them into the model input ``counts / sqrt(n)``.
    """

    def __init__(self, n_features: int = 2**18, ngram_range: tuple[int, int] = (1, 3)) -> None:
        if n_features < 2 or n_features & (n_features - 1):
            raise ValueError(f"n_features must be a power of two >= 2, got {n_features}")
        lo, hi = ngram_range
        if not 1 <= lo <= hi:
            raise ValueError(f"ngram_range must be (lo, hi) with 1 <= lo <= hi, got {ngram_range}")
        self.n_features = n_features
        self.ngram_range = (int(lo), int(hi))
        self._shift = np.uint64(64 - int(n_features).bit_length() + 1)

    def counts(self, texts: list[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        parts: list[sp.csr_matrix] = []
        lengths: list[np.ndarray] = []
        for lo, hi in _chunks(texts, CHUNK_CHARS):
            r, c = self.ngrams(texts[lo:hi])
            X = sp.csr_matrix(
                (np.ones(len(r), dtype=np.float32), (r, c)), shape=(hi - lo, self.n_features), dtype=np.float32
            )
            X.sum_duplicates()
            parts.append(X)
            lengths.append(np.bincount(r, minlength=hi - lo).astype(np.float64))
        if not parts:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32), np.zeros(0)
        X_all = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
        return X_all, np.concatenate(lengths)

    def dots(self, texts: list[str], W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(counts @ W, n-grams per text) without building the sparse matrix: one gather and one
        ``bincount`` per column of ``W`` (n_features, k)."""
        n_docs = len(texts)
        out = np.zeros((n_docs, W.shape[1]))
        n = np.zeros(n_docs)
        # in chunks of about CHUNK_CHARS characters: bounded memory whatever the number of texts
        for lo, hi in _chunks(texts, CHUNK_CHARS):
            r, c = self.ngrams(texts[lo:hi])
            for j in range(W.shape[1]):
                out[lo:hi, j] = np.bincount(r, weights=W[c, j].astype(np.float64), minlength=hi - lo)
            n[lo:hi] = np.bincount(r, minlength=hi - lo)
        return out, n

    def ngrams(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text number, column) of every n-gram occurrence."""
        n_docs = len(texts)
        if n_docs == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        padded = [f" {t} " for t in texts]
        lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=n_docs)
        cp = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        total = len(cp)
        ends = np.cumsum(lengths)
        doc_of = np.repeat(np.arange(n_docs), lengths)
        # how many characters each position has left in its text (an n-gram starts where >= n are left)
        left = np.repeat(ends, lengths) - np.arange(total)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        lo, hi = self.ngram_range
        # every position's n-gram hashed with contiguous slices (no gathers), in place; then the positions
        # whose n-gram stays inside its text are kept. uint64 arithmetic wraps (only numpy scalars warn)
        for n in range(lo, hi + 1):
            m = total - n + 1  # positions with n characters after them in the whole buffer
            if m <= 0:
                continue
            h = np.full(m, (n * int(_MIX)) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
            for k in range(n):
                np.bitwise_xor(h, cp[k : k + m], out=h)
                np.multiply(h, _MULT, out=h)
            np.bitwise_xor(h, h >> np.uint64(29), out=h)
            np.multiply(h, _MIX, out=h)
            ok = left[:m] >= n
            rows.append(doc_of[:m][ok])
            cols.append((h[ok] >> self._shift).astype(np.int64))
        return np.concatenate(rows), np.concatenate(cols)


#: characters of text hashed at a time (the n-gram arrays take ~100 bytes per character: ~100 MB)
CHUNK_CHARS = 1_000_000


def _chunks(texts: list[str], max_chars: int) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) ranges of texts holding about ``max_chars`` characters each."""
    if not texts:
        return []
    ends = np.cumsum(np.fromiter((len(t) + 2 for t in texts), dtype=np.int64, count=len(texts)))
    bounds = [0]
    while bounds[-1] < len(texts):
        start_chars = ends[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(ends, start_chars + max_chars, side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    return list(itertools.pairwise(bounds))


def unit_rows(X: sp.csr_matrix, n: np.ndarray) -> sp.csr_matrix:
    """Counts scaled by 1/sqrt(number of n-grams): long texts do not get larger scores for being long."""
    scale = 1.0 / np.sqrt(np.maximum(n, 1.0))
    out: sp.csr_matrix = sp.diags(scale.astype(np.float32)) @ X
    return out.tocsr()


class HashedTextClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression (SGD, log loss) on hashed char n-grams (:class:`CharNgramHasher`) of normalised texts.

    Learned state is a dense coefficient vector (``coef_``, float32, ``n_features`` long) and an
    intercept, so scoring is ``sigmoid(X @ coef_ + intercept_)``: cheap for a million texts and for one.
    """

    def __init__(
        self,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 3),
        alpha: float = 1e-5,
        max_iter: int = 15,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        solver: str = "idf_logistic",
        C: float = 0.25,
    ) -> None:
        self.n_features = n_features
        self.ngram_range = ngram_range
        self.alpha = alpha
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.C = C

    def _vectorise(self, X: Any) -> sp.csr_matrix:
        texts = normalise_many(_as_text_list(_validated(self, X, reset=False)))
        return unit_rows(*CharNgramHasher(self.n_features, self.ngram_range).counts(texts))

    def fit(self, X: Any, y: Any) -> HashedTextClassifier:
        texts = _as_text_list(_validated(self, X, reset=True))
        y_arr = np.asarray(y)
        if len(texts) != len(y_arr):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y_arr)} labels")
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) != 2:
            raise ValueError(f"HashedTextClassifier needs exactly 2 classes, got {len(self.classes_)}")
        target = (y_arr == self.classes_[1]).astype(np.int64)
        coef, intercept = fit_hashed_logistic(
            unit_rows(*CharNgramHasher(self.n_features, self.ngram_range).counts(normalise_many(texts))),
            target,
            alpha=self.alpha,
            max_iter=self.max_iter,
            class_weight=self.class_weight,
            random_state=self.random_state,
            solver=self.solver,
            C=self.C,
        )
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return linear_scores(self._vectorise(X), self.coef_[:, None], np.asarray([self.intercept_]))[:, 0]

    def predict_proba(self, X: Any) -> np.ndarray:
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        positive = (self.decision_function(X) > 0).astype(np.int64)
        return np.asarray(self.classes_[positive])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        return tags


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def linear_scores(X: sp.csr_matrix, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``X @ coef + intercept`` in float64 for a (n_features, k) coefficient matrix."""
    z = np.asarray(X @ coef, dtype=np.float64)
    return z + intercept.astype(np.float64)[None, :]


#: text model solvers: "idf_logistic" (default) and "sgd" (the earlier model)
TEXT_SOLVERS = ("idf_logistic", "sgd")
#: L-BFGS iterations of the idf-weighted logistic regression (bounds fit time; it converges in fewer on
#: the benchmark data)
LOGISTIC_MAX_ITER = 300


def fit_hashed_logistic(
    X: sp.csr_matrix,
    y: np.ndarray,
    *,
    alpha: float,
    max_iter: int,
    class_weight: str | None,
    random_state: int,
    solver: str = "idf_logistic",
    C: float = 0.25,
) -> tuple[np.ndarray, float]:
    """Fit a log-loss linear model on hashed features; (coef float32 vector, intercept).

    ``solver="idf_logistic"``: scikit-learn's ``LogisticRegression`` (L-BFGS, inverse regularisation ``C``)
    on the columns weighted by their smoothed inverse document frequency in ``X`` (TfidfTransformer's
    ``log((1 + n) / (1 + df)) + 1``); the idf is folded into the returned coefficients, so scoring stays
    one dot product with the unweighted hashed counts (the serving path does not change). On the real
    counterfeit reviews (``benchmarks/bench_text_real.py``) this is what matches a tuned char n-gram
    TF-IDF + logistic regression. ``solver="sgd"``: the earlier SGD logistic regression (``alpha``,
    ``max_iter`` epochs). A single class in ``y`` (possible inside a small fold) gives a constant model at
    that class's log-odds.
    """
    if solver not in TEXT_SOLVERS:
        raise ValueError(f"text solver must be one of {', '.join(TEXT_SOLVERS)}, got {solver!r}")
    n_features = X.shape[1]
    classes = np.unique(y)
    if len(classes) < 2:
        p = 0.999 if (len(classes) and classes[0] == 1) else 0.001
        return np.zeros(n_features, dtype=np.float32), float(np.log(p / (1 - p)))
    if solver == "idf_logistic":
        df = np.bincount(X.indices, minlength=n_features)
        idf = np.log((1.0 + X.shape[0]) / (1.0 + df)) + 1.0
        lr = LogisticRegression(C=C, class_weight=class_weight, max_iter=LOGISTIC_MAX_ITER)
        with warnings.catch_warnings():
            # the iteration cap bounds fit time; an unconverged fit is still a usable, slightly smoother model
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr.fit(X @ sp.diags(idf), y)
        return (lr.coef_[0] * idf).astype(np.float32), float(lr.intercept_[0])
    model = SGDClassifier(
        loss="log_loss",
        alpha=alpha,
        max_iter=max_iter,
        tol=None,
        class_weight=class_weight,
        random_state=random_state,
        average=True,
    )
    model.fit(X, y)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])
