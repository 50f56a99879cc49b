"""Words the synthetic marketplace is written in: brands, title pieces, descriptions, reviews.

Everything here is fixed text; the seed only picks among it. Each kind of piece is grouped by a
*family* (what the piece says: a blatant counterfeit word, a euphemism, a negation, second-hand,
grey import, ...) and a language (0 = Chinese, 1 = English). ``compile_pieces`` flattens a family
table into one Arrow array plus offset/count tables, so picking a piece for millions of rows is
``offset[family, lang] + floor(u * count[family, lang])``.

Brand names are invented; no real brand is named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from marketplace.schema import CATEGORIES

ZH, EN = 0, 1

# --- title tag families (prefix/suffix slots) ---------------------------------------------------
NONE, BLATANT, EUPHEMISM, NEGATION, SECONDHAND, GREY, GENUINE, AUTH, DISCOUNT = range(9)
TAG_FAMILIES = ("none", "blatant", "euphemism", "negation", "second_hand", "grey", "genuine", "auth", "discount")

#: the words a naive keyword rule looks for (after NFKC and lower-casing); the tests use this list
BLATANT_WORDS = ("replica", "1:1", "aaa", "a货", "高仿", "原单", "复刻")

TAGS: dict[int, tuple[list[str], list[str]]] = {
    NONE: ([""], [""]),
    BLATANT: (
        [
            "A货",
            "高仿",
            "原单",
            "复刻",
            "1:1",
            "精仿 高仿",
            "超A货",
            "Ａ货",
            "１:１复刻",
            "原单尾货",
            "顶级A货",
            "高仿原单",
        ],
        ["replica", "Replica", "REPLICA", "1:1", "AAA", "AAA quality", "1:1 copy", "ＡＡＡ", "Replica 1:1", "top AAA"],
    ),
    EUPHEMISM: (
        ["专柜品质", "高品质", "原厂品质", "顶级版本", "同厂出品", "专柜同款", "工厂直供", "顶级品质"],
        ["same factory", "mirror quality", "top quality", "counter quality", "premium quality", "Mirror Quality"],
    ),
    NEGATION: (
        ["非高仿", "拒绝A货", "假一赔十", "正品保证 非A货", "绝非高仿", "假一罚十"],
        ["not a replica", "NOT replica", "no fakes, not replica", "100% authentic not a replica", "no fakes"],
    ),
    SECONDHAND: (
        ["二手", "95新", "9成新", "闲置", "99新", "二手正品", "八成新"],
        ["used", "pre-owned", "Pre-Owned", "second hand", "preloved", "USED"],
    ),
    GREY: (
        ["海外代购", "香港直邮", "欧洲直邮", "免税店购入", "代购", "日本直邮"],
        ["parallel import", "duty free", "overseas purchase", "EU import", "Parallel Import"],
    ),
    GENUINE: (
        ["正品", "专柜正品", "100%正品", "正品行货", "官方正品"],
        ["authentic", "genuine", "100% authentic", "original", "Authentic"],
    ),
    AUTH: (
        ["官方授权", "品牌授权店", "官方旗舰", "授权经销"],
        ["official store", "authorised dealer", "official", "Authorized Retailer"],
    ),
    DISCOUNT: (
        ["清仓", "特价", "折扣", "断码清仓", "工厂店", "换季特价"],
        ["clearance", "outlet", "sale", "discount", "OUTLET", "Clearance Sale"],
    ),
}

#: brand suffixes (slot after the brand): plain, "same style" (a quiet counterfeit hint), ...
BRAND_SUFFIX_NONE, BRAND_SUFFIX_STYLE = 0, 1
BRAND_SUFFIXES: dict[int, tuple[list[str], list[str]]] = {
    BRAND_SUFFIX_NONE: ([""], [""]),
    BRAND_SUFFIX_STYLE: (["同款", "风格", "款式"], ["style", "inspired", "same style"]),
}

NOUNS: dict[str, tuple[list[str], list[str]]] = {
    "bags": (
        ["手提包", "单肩包", "双肩包", "钱包", "斜挎包", "托特包"],
        ["handbag", "shoulder bag", "backpack", "wallet", "crossbody bag", "tote"],
    ),
    "shoes": (
        ["运动鞋", "板鞋", "高跟鞋", "乐福鞋", "跑鞋"],
        ["sneakers", "running shoes", "heels", "loafers", "trainers"],
    ),
    "watches": (
        ["机械表", "石英表", "男士手表", "女表", "计时码表"],
        ["automatic watch", "quartz watch", "chronograph", "dress watch"],
    ),
    "cosmetics": (
        ["口红", "粉底液", "香水", "面霜", "精华液"],
        ["lipstick", "foundation", "perfume", "face cream", "serum"],
    ),
    "electronics": (
        ["蓝牙耳机", "充电宝", "智能手表", "数据线", "音箱"],
        ["wireless earbuds", "power bank", "smartwatch", "charging cable", "speaker"],
    ),
    "apparel": (["羽绒服", "T恤", "卫衣", "大衣", "衬衫"], ["down jacket", "T-shirt", "hoodie", "coat", "shirt"]),
    "jewelry": (["项链", "手镯", "戒指", "耳环", "胸针"], ["necklace", "bracelet", "ring", "earrings", "brooch"]),
    "toys": (
        ["积木", "手办", "毛绒玩具", "模型车", "拼图"],
        ["building blocks", "figure", "plush toy", "model car", "puzzle"],
    ),
    "sports": (
        ["瑜伽垫", "篮球", "运动背包", "跑步服", "羽毛球拍"],
        ["yoga mat", "basketball", "gym bag", "running shirt", "racket"],
    ),
    "home": (
        ["香薰蜡烛", "床品四件套", "保温杯", "餐具套装", "抱枕"],
        ["scented candle", "bedding set", "thermos", "dinnerware set", "cushion"],
    ),
}

ATTR_NONE, ATTR_GENERAL, ATTR_SPECIAL = 0, 1, 2
ATTRS_GENERAL = (
    ["2026新款", "经典款", "黑色", "白色", "真皮", "大容量", "小号", "限量版", "男女同款", "礼盒装", "爆款", "ins风"],
    [
        "2026 new",
        "classic",
        "black",
        "white",
        "genuine leather",
        "large",
        "mini",
        "limited edition",
        "unisex",
        "gift box",
        "NEW",
    ],
)
#: honest phrases that happen to contain a blatant word ("1:1 scale" models, "AAA" batteries)
ATTRS_SPECIAL: dict[str, tuple[list[str], list[str]]] = {
    "toys": (["1:1比例模型", "1:1还原"], ["1:1 scale", "1:1 scale replica model"]),
    "electronics": (["AAA电池", "送AAA电池"], ["AAA batteries", "AAA battery"]),
}

# --- categories and brands -----------------------------------------------------------------------
#: (premium reference price range, regular range, unbranded typical price) per category, yuan
PRICE_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "bags": ((6000, 30000), (150, 900), 120),
    "shoes": ((3000, 9000), (200, 900), 150),
    "watches": ((20000, 120000), (300, 2500), 200),
    "cosmetics": ((400, 1500), (60, 300), 50),
    "electronics": ((3000, 12000), (100, 1500), 150),
    "apparel": ((2000, 12000), (100, 600), 80),
    "jewelry": ((8000, 60000), (200, 1500), 100),
    "toys": ((800, 3000), (50, 400), 60),
    "sports": ((1000, 4000), (100, 800), 120),
    "home": ((1500, 8000), (80, 600), 90),
}
PREMIUM_PER_CATEGORY = 3
REGULAR_PER_CATEGORY = 5
BRANDS_PER_CATEGORY = PREMIUM_PER_CATEGORY + REGULAR_PER_CATEGORY

_PREFIXES = (
    "Vel", "Aur", "Mar", "Cal", "Lun", "Sol", "Ner", "Ori", "Fen", "Gal",
    "Hal", "Ist", "Jor", "Kas", "Lor", "Mir", "Nov", "Oly", "Pax", "Quin",
)  # fmt: skip
_SUFFIXES = ("ora", "elle", "ano", "ique", "ento", "aris", "ova", "ine", "ux", "ard")


_ALT_PREFIXES = (
    "Zer", "Bri", "Dov", "Ety", "Fal", "Gry", "Hex", "Ivo", "Jun", "Kyr",
    "Lyx", "Mont", "Nyx", "Ost", "Pry", "Rov", "Syl", "Tav", "Ulm", "Wex",
)  # fmt: skip
_ALT_SUFFIXES = ("enza", "ton", "ami", "berg", "elli", "ovo", "ak", "issa", "mont", "eau")


def brand_names(vocabulary: str = "default") -> list[str]:
    """80 invented brand names; brand ``c * 8 + j`` belongs to category ``c``; j < 3 is premium.
    ``vocabulary="alt"``: another 80 (the "alt" world's brands)."""
    prefixes, suffixes = (_ALT_PREFIXES, _ALT_SUFFIXES) if vocabulary == "alt" else (_PREFIXES, _SUFFIXES)
    names = []
    for i in range(len(CATEGORIES) * BRANDS_PER_CATEGORY):
        p, k = i % 20, i // 20
        names.append(prefixes[p] + suffixes[(k + 2 * p) % 10])
    assert len(set(names)) == len(names)
    return names


def brand_display_variants(name: str) -> list[str]:
    """How sellers write a brand: as is, upper case, lower case, full-width."""
    full = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in name)
    return [name, name.upper(), name.lower(), full]


BRAND_VARIANT_P = np.array([0.8, 0.1, 0.06, 0.04])

# --- shop names ----------------------------------------------------------------------------------
SHOP_NAME_HEADS = (
    ["鑫源", "优品", "臻选", "潮流", "雅致", "名品", "尚品", "好物", "悦享", "星辰", "锦绣", "云上"],
    ["Luxe", "Urban", "Golden", "Happy", "Star", "Blue Sky", "Prime", "Lucky", "Silk Road", "Maple"],
)
#: shop name endings by style: 0 general, 1 official, 2 outlet, 3 second hand, 4 import, 5 luxury
SHOP_NAME_TAILS: dict[int, tuple[list[str], list[str]]] = {
    0: (["精品店", "小铺", "专营店", "工作室", "生活馆", "百货"], ["Store", "Shop", "Corner", "Boutique", "Studio"]),
    1: (["官方旗舰店", "授权专卖店", "品牌直营店"], ["Official Store", "Authorised Store"]),
    2: (["折扣店", "特卖场", "工厂店"], ["Outlet", "Discount Store", "Deals"]),
    3: (["二手店", "闲置馆", "中古店"], ["Vintage", "Pre-Owned", "Second Life"]),
    4: (["海外购", "代购店", "全球购"], ["Global Buy", "Import House", "Overseas"]),
    5: (["奢品汇", "名品馆", "大牌汇"], ["Luxury", "Designer Hub", "Brands Outlet"]),
}

PROVINCE_CITY = (
    "浙江省杭州市", "广东省广州市", "广东省深圳市", "福建省莆田市", "江苏省苏州市",
    "上海市", "北京市", "浙江省义乌市", "四川省成都市", "湖北省武汉市", "山东省青岛市", "河南省郑州市",
)  # fmt: skip
DISTRICTS = ("城东区", "城西区", "高新区", "经开区", "新城区", "老城区", "开发区", "滨湖区")
ROADS = (
    "人民路", "解放路", "中山路", "建设路", "和平路", "文化路", "新华路", "长江路",
    "黄河路", "工业路", "创业路", "科技路", "商贸街", "花园路", "湖滨路",
)  # fmt: skip
EMAIL_NAMES = (
    "zhangwei", "wangfang", "lina", "liuyang", "chenjie", "yangmin", "huangli", "zhaolei",
    "wuhao", "zhouxin", "xuqing", "sunmei", "maqiang", "zhujun", "hutao", "guoying",
)  # fmt: skip
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "sina.com")

# --- descriptions ---------------------------------------------------------------------------------
DESC_OPEN = (
    ["本店所有商品均为实拍。", "欢迎选购，下单后48小时内发货。", "全国包邮，顺丰发货。", "喜欢的亲可以放心拍。"],
    [
        "Photos are of the actual item.",
        "Ships within 48 hours.",
        "Free shipping nationwide.",
        "Thanks for visiting our shop.",
    ],
)
DESC_CLOSE = (
    ["支持七天无理由退货。", "有问题请联系客服。", "收到请及时确认。", ""],
    ["7-day no-questions returns.", "Contact customer service with any question.", "Please confirm on receipt.", ""],
)
#: the middle sentence by description family
D_PLAIN, D_GENUINE, D_AUTH, D_DISCOUNT, D_SECONDHAND, D_GREY, D_BLATANT, D_EUPHEMISM, D_OFFPLATFORM = range(9)
DESC_MIDDLE: dict[int, tuple[list[str], list[str]]] = {
    D_PLAIN: (
        ["做工精细，品质保证。", "材质舒适，适合日常使用。", "多色可选。"],
        ["Fine workmanship.", "Comfortable for daily use.", "Several colours available."],
    ),
    D_GENUINE: (
        ["支持专柜验货，假一赔十。", "正品保证，可查验。"],
        ["Authenticity guaranteed, verifiable at the counter.", "100% genuine, receipt on request."],
    ),
    D_AUTH: (
        ["品牌官方授权，提供正规发票。", "授权经销商，全国联保。"],
        ["Authorised retailer, official invoice provided.", "Official dealer with brand warranty."],
    ),
    D_DISCOUNT: (
        ["换季清仓，库存有限。", "断码特价，售完即止。"],
        ["Last season stock at outlet prices.", "Clearance, limited sizes."],
    ),
    D_SECONDHAND: (
        ["个人闲置，成色如图，介意慎拍。", "二手物品，有轻微使用痕迹。"],
        ["Pre-owned, condition as pictured.", "Used item with light signs of wear."],
    ),
    D_GREY: (
        ["海外专柜购入，附购物小票，无中文标签。", "代购商品，不支持国内保修。"],
        ["Bought abroad, receipt included.", "Parallel import, no local warranty."],
    ),
    D_BLATANT: (
        ["原单品质，1:1复刻，细节对比专柜。", "高仿精品，做工媲美正品。"],
        ["Replica of the original, 1:1 details.", "AAA replica, looks like the real one."],
    ),
    D_EUPHEMISM: (
        ["专柜品质，同厂出品。", "原厂面料，细节一致。"],
        ["Same factory, mirror quality.", "Counter quality, identical details."],
    ),
    D_OFFPLATFORM: (
        ["不支持专柜验货，私聊有优惠。", "加微信看更多实拍。", "与专柜一致，放心入手。"],
        ["Contact us on WeChat for more photos.", "No counter authentication, message for discount."],
    ),
}

# --- reviews ----------------------------------------------------------------------------------------
R_POSITIVE, R_NEUTRAL, R_NEGATIVE, R_FAKE, R_NOT_FAKE, R_EMPTY = range(6)
REVIEWS: dict[int, tuple[list[str], list[str]]] = {
    R_POSITIVE: (
        [
            "质量很好，和描述一致。",
            "物流很快，好评！",
            "第二次购买了，很满意。",
            "包装精美，推荐。",
            "很喜欢，性价比高。",
            "好评",
        ],
        [
            "Great quality, as described.",
            "Fast delivery, very happy.",
            "Exactly what I ordered.",
            "Love it!",
            "Good value.",
        ],
    ),
    R_NEUTRAL: (
        ["还可以，一般般。", "物流有点慢。", "和图片有点色差。"],
        ["Okay for the price.", "Delivery was slow.", "It's fine."],
    ),
    R_NEGATIVE: (
        ["质量很差，做工粗糙。", "与图片不符。", "客服态度差。", "用了两天就坏了。"],
        ["Poor quality, fell apart.", "Not as described.", "Bad customer service.", "Broke after two days."],
    ),
    R_FAKE: (
        [
            "假货！和专柜对比差很多。",
            "不是正品，已经申请退款。",
            "收到的是高仿，差评。",
            "假的，logo都歪了。",
            "明显是假货",
        ],
        [
            "This is fake.",
            "Fake, not authentic at all.",
            "Counterfeit, the logo is wrong.",
            "FAKE!!! do not buy",
            "not genuine",
        ],
    ),
    R_NOT_FAKE: (
        ["正品，不是假货，放心买。", "验过了是正品。"],
        ["Authentic, not fake as some said.", "Verified genuine."],
    ),
    R_EMPTY: ([""], [""]),
}


# --- the "alt" vocabulary: another world's counterfeit wording (none of it is in features/lexicon.py's
# list, and the cover words differ), used with ``GeneratorConfig(vocabulary="alt")`` ----------------------
ALT_TAGS: dict[int, tuple[list[str], list[str]]] = {
    BLATANT: (
        ["公司级", "过验版", "顶配版", "真标版", "代工版", "TOP级", "原厂版本", "HK版", "裁片版", "官网版"],
        ["UA quality", "top grade copy", "1to1", "reps", "dupe", "OEM batch", "PK batch", "unauthorized authentic"],
    ),
    EUPHEMISM: (
        ["细节对版", "品质对标", "对版出货", "同源面料", "大厂出品", "原版开模"],
        ["same as counter", "factory direct batch", "identical details", "best batch", "counter grade"],
    ),
    GENUINE: (
        ["保真", "专柜验货", "保正", "可鉴定", "支持鉴定"],
        ["legit", "100% real", "real deal", "guaranteed real", "LEGIT"],
    ),
}
ALT_DESC_MIDDLE: dict[int, tuple[list[str], list[str]]] = {
    D_BLATANT: (
        ["公司级品质，对版细节，过验无压力。", "代工厂出货，和官网一模一样。"],
        ["Top grade batch, passes most checks.", "OEM batch, same as retail."],
    ),
    D_EUPHEMISM: (
        ["细节对版，同源面料。", "大厂出品，品质对标专柜。"],
        ["Identical details, counter grade.", "Best batch on the market."],
    ),
    D_OFFPLATFORM: (
        ["不走鉴定，私信发实拍。", "更多款式请私聊，不讲价。", "图片为实物，细节看私信。"],
        ["DM for real photos and more batches.", "No authentication service, DM for price."],
    ),
}
ALT_REVIEWS: dict[int, tuple[list[str], list[str]]] = {
    R_FAKE: (
        ["拿去鉴定没过。", "和专柜对比根本不一样，退了。", "做工一看就不对，上当了。", "鉴定是仿的。"],
        [
            "Failed authentication.",
            "This is a copy, sent it back.",
            "Not real, stitching is off.",
            "Legit check failed.",
        ],
    ),
}


@dataclass(frozen=True)
class Pieces:
    """A family table flattened: ``values[offset[f, lang] + i]`` for ``i < count[f, lang]``."""

    values: pa.Array
    offset: np.ndarray
    count: np.ndarray

    def pick(self, family: np.ndarray, lang: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Indices into ``values``: one piece of (family, lang) per row, chosen by uniforms ``u``."""
        cnt = self.count[family, lang]
        return self.offset[family, lang] + np.minimum((u * cnt).astype(np.int64), cnt - 1)


def compile_pieces(table: dict[int, tuple[list[str], list[str]]], sep: tuple[str, str] = (" ", " ")) -> Pieces:
    """Flatten ``{family: (zh pieces, en pieces)}``; non-empty pieces get ``sep[lang]`` appended."""
    n_family = max(table) + 1
    offset = np.zeros((n_family, 2), dtype=np.int64)
    count = np.zeros((n_family, 2), dtype=np.int64)
    values: list[str] = []
    for family in range(n_family):
        for lang in (ZH, EN):
            pieces = table.get(family, ([""], [""]))[lang]
            offset[family, lang] = len(values)
            count[family, lang] = len(pieces)
            values.extend(p + sep[lang] if p else "" for p in pieces)
    return Pieces(pa.array(values, pa.string()), offset, count)


@dataclass(frozen=True)
class Vocabulary:
    """All compiled vocabularies the event generator picks from."""

    tags: Pieces
    brand_suffix: Pieces
    #: nouns: family = category index
    nouns: Pieces
    #: attributes: family = ATTR_NONE / ATTR_GENERAL / 2 + category index (special phrases)
    attrs: Pieces
    #: brand display strings: ``brand * 4 + variant`` (variant: as is, upper, lower, full-width); last: blank
    brand_display: pa.Array
    desc_open: Pieces
    desc_middle: Pieces
    desc_close: Pieces
    #: review texts: family = R_*
    reviews: Pieces
    shop_heads: Pieces
    shop_tails: Pieces
    #: brand names (brand number -> name)
    brands: pa.Array


def build_vocabulary(name: str = "default") -> Vocabulary:
    """The compiled vocabulary: ``"default"``, or ``"alt"`` (another counterfeit wording and other brands)."""
    alt = name == "alt"
    tags = {**TAGS, **ALT_TAGS} if alt else TAGS
    middle = {**DESC_MIDDLE, **ALT_DESC_MIDDLE} if alt else DESC_MIDDLE
    reviews = {**REVIEWS, **ALT_REVIEWS} if alt else REVIEWS
    nouns = {i: NOUNS[c] for i, c in enumerate(CATEGORIES)}
    attrs: dict[int, tuple[list[str], list[str]]] = {ATTR_NONE: ([""], [""]), ATTR_GENERAL: ATTRS_GENERAL}
    for i, c in enumerate(CATEGORIES):
        attrs[2 + i] = ATTRS_SPECIAL.get(c, ATTRS_GENERAL)
    # the last entry is blank: unbranded listings pick it
    brands = brand_names(name)
    display = [v + " " for b in brands for v in brand_display_variants(b)] + [""]
    return Vocabulary(
        tags=compile_pieces(tags),
        brand_suffix=compile_pieces(BRAND_SUFFIXES),
        nouns=compile_pieces(nouns),
        attrs=compile_pieces(attrs),
        brand_display=pa.array(display, pa.string()),
        desc_open=compile_pieces({0: DESC_OPEN}, sep=("", " ")),
        desc_middle=compile_pieces(middle, sep=("", " ")),
        desc_close=compile_pieces({0: DESC_CLOSE}, sep=("", " ")),
        reviews=compile_pieces(reviews, sep=("", " ")),
        shop_heads=compile_pieces({0: SHOP_NAME_HEADS}, sep=("", " ")),
        shop_tails=compile_pieces(SHOP_NAME_TAILS, sep=("", " ")),
        brands=pa.array(brands, pa.string()),
    )
