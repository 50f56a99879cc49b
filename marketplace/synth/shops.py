"""The shop rows of one chunk: names, contact fields and linkage identifiers as strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.schema import CATEGORIES
from marketplace.synth import strings as S
from marketplace.synth import vocab as V
from marketplace.synth.plan import Plan


def shops_frame(plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int) -> pd.DataFrame:
    sl = slice(lo, hi)
    m = hi - lo
    ident = {k: v[sl] for k, v in plan.identity.items()}
    lang = plan.name_lang[sl].astype(np.int64)
    head = S.take(vocab.shop_heads.values, vocab.shop_heads.pick(np.zeros(m, dtype=np.int64), lang, plan.name_head[sl]))
    tail = S.take(
        vocab.shop_tails.values, vocab.shop_tails.pick(plan.name_tail[sl].astype(np.int64), lang, rng.random(m))
    )
    name = S.trim(S.join(head, tail))
    domains = pa.array(V.EMAIL_DOMAINS)
    email = ident["owner_email"].astype(np.uint64)
    n_names = np.uint64(len(V.EMAIL_NAMES))
    owner_email = S.join(
        S.take(pa.array(V.EMAIL_NAMES), (email % n_names).astype(np.int64)),
        S.digits((email // n_names) % np.uint64(10_000), 4),
        "@",
        S.take(domains, ((email // n_names // np.uint64(10_000)) % np.uint64(len(V.EMAIL_DOMAINS))).astype(np.int64)),
    )
    biz = ident["business_email"].astype(np.uint64)
    business_email = S.join(
        "kf", S.digits(biz % np.uint64(10**8), 8), "@", S.take(domains, (biz >> np.uint64(40)).astype(np.int64) % 6)
    )
    addr = ident["owner_address"].astype(np.uint64)
    n_pc, n_d, n_r = (np.uint64(len(x)) for x in (V.PROVINCE_CITY, V.DISTRICTS, V.ROADS))
    rest = addr // n_pc // n_d // n_r
    owner_address = S.join(
        S.take(pa.array(V.PROVINCE_CITY), (addr % n_pc).astype(np.int64)),
        S.take(pa.array(V.DISTRICTS), (addr // n_pc % n_d).astype(np.int64)),
        S.take(pa.array(V.ROADS), (addr // n_pc // n_d % n_r).astype(np.int64)),
        pa.array(((rest % np.uint64(998)) + np.uint64(1)).astype(np.int64)).cast(pa.string()),
        "号",
        pa.array(((rest // np.uint64(998)) % np.uint64(30) + np.uint64(1)).astype(np.int64)).cast(pa.string()),
        "栋",
        S.digits((rest // np.uint64(998 * 30)) % np.uint64(2000) + np.uint64(101), 4),
        "室",
    )
    return pd.DataFrame(
        {
            "shop_id": S.series(S.ids("S", np.arange(lo, hi), 8)),
            "shopkeeper_id": S.series(S.ids("K", ident["shopkeeper"], 8)),
            "name": S.series(name),
            "opened_at": S.timestamps(plan.opened[sl]),
            "category": S.series(S.take(pa.array(CATEGORIES), plan.category[sl])),
            "business_registration": S.series(S.join("91", S.digits(ident["business_registration"], 16))),
            "business_phone": S.series(S.join("400", S.digits(ident["business_phone"], 7))),
            "business_email": S.series(business_email),
            "owner_phone": S.series(S.digits(ident["owner_phone"], 11)),
            "owner_email": S.series(owner_email),
            "owner_address": S.series(owner_address),
            "id_number_hash": S.series(S.hexes(ident["id_number_hash"], 16)),
            "bank_account_hash": S.series(S.hexes(ident["bank_account_hash"], 16)),
            "device_id": S.series(S.join("dev-", S.hexes(ident["device_id"], 12))),
        }
    )
