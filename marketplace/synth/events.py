"""One chunk of shops: their shop rows, listings, edits, orders, complaints and reviews.

Everything is vectorised over the chunk (numpy for numbers and times, Arrow kernels for text),
so a chunk of 50,000 shops and its ~1 million orders takes a few seconds. Each chunk draws from
its own random stream (seed, chunk start), so the output depends only on the config.

Causality holds by construction: a listing is created after its shop opened; an order falls
inside its listing's live window; refunds, complaints and reviews come after their order; every
time is a whole second strictly before the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketplace.synth import vocab as V
from marketplace.synth.common import Counters
from marketplace.synth.feedback import make_complaints, make_reviews
from marketplace.synth.listings import make_listings
from marketplace.synth.orders import make_orders
from marketplace.synth.plan import Plan
from marketplace.synth.shops import shops_frame


@dataclass
class Chunk:
    shops: pd.DataFrame
    listings: pd.DataFrame
    listing_edits: pd.DataFrame
    orders: pd.DataFrame
    complaints: pd.DataFrame
    reviews: pd.DataFrame


def make_chunk(plan: Plan, vocab: V.Vocabulary, seed: int, lo: int, hi: int, counters: Counters) -> Chunk:
    """Generate shops ``lo <= s < hi`` and all their events; advances ``counters``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC4A2, lo]))
    shops = shops_frame(plan, vocab, rng, lo, hi)
    listing = make_listings(plan, vocab, rng, lo, hi, counters)
    orders = make_orders(plan, rng, lo, hi, listing, counters)
    complaints = make_complaints(plan, rng, lo, hi, listing, orders, counters)
    reviews = make_reviews(plan, vocab, rng, lo, hi, orders, counters)
    return Chunk(
        shops=shops,
        listings=listing.frame,
        listing_edits=listing.edits,
        orders=orders.frame,
        complaints=complaints,
        reviews=reviews,
    )


__all__ = ["Chunk", "Counters", "make_chunk"]
