"""The synthetic product catalogue: categories, product names built from words, prices, and the
product-group membership that the oracle shares with dbt's `int_products_mapped_to_groups`."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product as cartesian
from pathlib import Path

import numpy as np
import pyarrow as pa

from models_py.ingest._groups import ANY_GROUP, GroupRule, match_patterns, read_group_rules

GROUPS_FILE = Path(__file__).resolve().parent / "groups.yml"


@dataclass(frozen=True)
class _Category:
    name: str
    popularity: float  # relative share of items bought, before each customer's own affinity
    n_products: int
    median_price: float
    parts: tuple[tuple[str, ...], ...]  # name = one word group from each part, joined by spaces
    gift_names: tuple[str, ...] = ()  # "{}" is replaced by a base name
    party_names: tuple[str, ...] = ()


_SIZES_FOOD = ("100g", "200g", "Sharing Bag", "Family Pack")

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "wine", 1.2, 160, 11.0,
        (
            ("Red Wine", "White Wine", "Rose Wine", "Sparkling Wine", "Dessert Wine"),
            ("Rioja", "Bordeaux", "Chianti", "Malbec", "Shiraz", "Prosecco", "Pinot Noir",
             "Sauvignon Blanc", "Chardonnay", "Merlot", "Tempranillo", "Riesling"),
            ("75cl", "Magnum", "Half Bottle", "Case of 6"),
        ),
        gift_names=("Wine Gift Set {}", "{} Gift Box"),
    ),
    _Category(
        "beer", 0.9, 120, 6.0,
        (
            ("Pale Ale", "IPA", "Lager", "Stout", "Porter", "Wheat Beer", "Pilsner", "Sour Beer"),
            ("Hopfield", "Old Mill", "Northern Star", "Red Fox", "Harbour", "Black Sheep"),
            ("Single Can", "4 Pack", "12 Pack", "Bottle"),
        ),
        gift_names=("Beer Gift Hamper {}",),
        party_names=("Party Keg {}", "{} Party Crate"),
    ),
    _Category(
        "spirits", 0.5, 110, 28.0,
        (
            ("Single Malt Whisky", "Blended Whisky", "London Dry Gin", "Pink Gin", "Spiced Rum",
             "Dark Rum", "Vodka", "Cognac", "Tequila", "Chocolate Liqueur", "Coffee Liqueur"),
            ("Glen Arden", "Highland Crest", "Copper Still", "Blue Harbour", "Old Oak"),
            ("70cl", "35cl", "1L"),
        ),
        gift_names=("Whisky Gift Tin {}", "{} Gift Set"),
    ),
    _Category(
        "chocolate", 1.1, 150, 5.0,
        (
            ("Dark Chocolate Bar", "Milk Chocolate Bar", "Chocolate Truffles", "Chocolate Buttons",
             "Hot Chocolate", "Chocolate Coins", "Pralines", "White Chocolate Bar"),
            ("Sea Salt", "Orange", "Hazelnut", "Raspberry", "Mint", "Caramel", "Chilli"),
            _SIZES_FOOD,
        ),
        gift_names=("Gift Box {}", "{} Gift Hamper"),
    ),
    _Category(
        "sweets", 1.1, 140, 3.0,
        (
            ("Fruit Gums", "Jelly Beans", "Candy Canes", "Marshmallows", "Fudge", "Toffee",
             "Liquorice", "Sherbet Lemons", "Lollipops"),
            ("Strawberry", "Lemon", "Cola", "Apple", "Vanilla", "Cherry", "Mixed Fruit"),
            ("Bag", "Jar", "Tub", "Sharing Bag"),
        ),
        gift_names=("Sweet Shop Gift Jar {}",),
        party_names=("Party Mix {}",),
    ),
    _Category(
        "snacks", 1.4, 150, 2.5,
        (
            ("Crisps", "Tortilla Chips", "Salted Nuts", "Popcorn", "Pretzels", "Crackers",
             "Cheese Straws"),
            ("Sea Salt", "Sour Cream", "Paprika", "Honey Roast", "Smoked", "Chilli"),
            _SIZES_FOOD,
        ),
        party_names=("Party Snack Mix {}", "{} Party Platter"),
    ),
    _Category(
        "coffee_tea", 1.0, 130, 6.0,
        (
            ("Ground Coffee", "Coffee Beans", "Espresso Pods", "Green Tea", "Earl Grey",
             "English Breakfast Tea", "Herbal Tea", "Chai"),
            ("Colombia", "Ethiopia", "Kenya", "Assam", "Darjeeling", "Brazil", "Sumatra"),
            ("250g", "500g", "1kg", "40 Bags"),
        ),
        gift_names=("Tea Gift Hamper {}", "Coffee Lover Gift Set {}"),
    ),
    _Category(
        "party", 0.6, 120, 4.0,
        (
            ("Balloon Pack", "Party Banner", "Paper Plates", "Party Poppers", "Confetti",
             "Streamers", "Party Hats", "Birthday Candles", "Paper Cups", "Napkins"),
            ("Gold", "Silver", "Rainbow", "Blue", "Pink", "Neon"),
            ("Pack of 10", "Pack of 20", "Pack of 50"),
        ),
    ),
    _Category(
        "kitchen", 0.6, 130, 18.0,
        (
            ("Chef Knife", "Frying Pan", "Saucepan", "Chopping Board", "Mixing Bowl",
             "Baking Tray", "Cafetiere", "Wine Glasses", "Tumbler Set", "Tea Towels"),
            ("Steel", "Oak", "Bamboo", "Ceramic", "Cast Iron", "Glass"),
            ("Small", "Medium", "Large"),
        ),
        gift_names=("Kitchen Gift Set {}",),
    ),
    _Category(
        "garden", 0.5, 120, 12.0,
        (
            ("Plant Pot", "Watering Can", "Seed Collection", "Garden Gloves", "Bird Feeder",
             "Hose Reel", "Pruning Shears", "Solar Lights", "Herb Kit"),
            ("Terracotta", "Green", "Slate", "Copper", "Olive", "Sage"),
            ("Small", "Medium", "Large"),
        ),
        gift_names=("Gardener Gift Set {}",),
    ),
    _Category(
        "toys", 0.6, 130, 15.0,
        (
            ("Building Blocks", "Jigsaw", "Plush Bear", "Toy Car", "Board Game", "Kite", "Doll",
             "Train Set", "Science Kit"),
            ("Dinosaur", "Space", "Pirate", "Farm", "Unicorn", "Ocean"),
            ("Ages 3+", "Ages 6+", "Ages 8+"),
        ),
        party_names=("Party Bag Fillers {}",),
    ),
    _Category(
        "books", 0.5, 110, 11.0,
        (
            ("Cookbook", "Novel", "Picture Book", "Travel Guide", "Biography", "Wine Atlas",
             "Gardening Handbook", "Puzzle Book"),
            ("Italian", "Vegan", "Mystery", "Nordic", "Baking", "History", "Science"),
            ("Hardback", "Paperback"),
        ),
        gift_names=("{} Gift Edition",),
    ),
    _Category(
        "home", 0.7, 130, 14.0,
        (
            ("Scented Candle", "Photo Frame", "Cushion", "Throw Blanket", "Vase", "Diffuser",
             "Wall Clock", "Fairy Lights"),
            ("Lavender", "Fig", "Sandalwood", "Linen", "Ochre", "Charcoal", "Ivory"),
            ("Small", "Medium", "Large"),
        ),
        gift_names=("Candle Gift Set {}",),
    ),
    _Category(
        "stationery", 0.6, 120, 4.0,
        (
            ("Notebook", "Greeting Card", "Wrapping Paper", "Gift Tags", "Pen Set", "Diary",
             "Envelopes", "Washi Tape"),
            ("Floral", "Botanical", "Geometric", "Kraft", "Marble", "Polka Dot"),
            ("A5", "A4", "Pack of 5", "Pack of 12"),
        ),
    ),
    _Category(
        "beauty", 0.6, 130, 8.0,
        (
            ("Hand Cream", "Lip Balm", "Bath Bomb", "Body Lotion", "Shower Gel", "Face Mask",
             "Perfume"),
            ("Rose", "Lavender", "Citrus", "Coconut", "Oud", "Peony", "Mint"),
            ("30ml", "50ml", "100ml", "250ml"),
        ),
        gift_names=("Pamper Gift Set {}",),
    ),
)  # fmt: skip

GIFT_SHARE = 0.08  # share of a category's products renamed as a gift item (when it has gift names)
PARTY_SHARE = 0.06


@dataclass(frozen=True)
class Catalog:
    """Products with prices and popularity, plus the product-group membership matrix.

    Attributes
    ----------
    product_id, product_name, category : np.ndarray
        One entry per product, sorted by category.
    category_index : np.ndarray
        Index into `categories` for each product.
    price : np.ndarray
        List price per product (cents-rounded).
    category_cum : np.ndarray
        Cumulative within-category popularity, offset by the category index (product k of
        category c has the value c + its cumulative share), for vectorised sampling.
    groups : tuple[str, ...]
        Product groups from the rules, in file order, followed by `any`.
    membership : np.ndarray
        Boolean (n_products, n_groups): product p belongs to group g.
    category_group_share : np.ndarray
        (n_categories, n_groups): probability that an item drawn from category c is in group g.
    """

    categories: tuple[str, ...]
    category_popularity: np.ndarray
    product_id: np.ndarray
    product_name: np.ndarray
    category: np.ndarray
    category_index: np.ndarray
    price: np.ndarray
    category_cum: np.ndarray
    rules: tuple[GroupRule, ...]
    groups: tuple[str, ...]
    membership: np.ndarray
    category_group_share: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.product_id)

    @property
    def product_probability(self) -> np.ndarray:
        """P(product | its category) exactly as the simulation draws it (the steps of
        `category_cum`: the top of each category is c + 1, the start of the next)."""
        return np.diff(self.category_cum, prepend=0.0)

    def category_mean_price(self, prices: np.ndarray | None = None) -> np.ndarray:
        """Expected price of one item drawn from each category (`prices` per product; default
        the list prices): the within-category popularity-weighted mean."""
        prices = self.price if prices is None else prices
        return np.bincount(
            self.category_index,
            weights=self.product_probability * prices,
            minlength=len(self.categories),
        )

    def products_table(self) -> pa.Table:
        return pa.table(
            {
                "product_id": pa.array(self.product_id.tolist(), pa.string()),
                "product_name": pa.array(self.product_name.tolist(), pa.string()),
                "category": pa.array(self.category.tolist(), pa.string()),
            }
        )


def _names(cat: _Category, rng: np.random.Generator) -> list[str]:
    combos = [" ".join(words) for words in cartesian(*cat.parts)]
    order = rng.permutation(len(combos))[: cat.n_products]
    names = [combos[i] for i in order]
    n = len(names)
    special: list[tuple[tuple[str, ...], float]] = [
        (cat.gift_names, GIFT_SHARE),
        (cat.party_names, PARTY_SHARE),
    ]
    taken = np.zeros(n, dtype=bool)
    for templates, share in special:
        if not templates:
            continue
        k = max(1, round(share * n))
        free = np.flatnonzero(~taken)
        picks = rng.choice(free, size=min(k, len(free)), replace=False)
        for i in picks:
            base = " ".join(names[i].split(" ")[:-1]) or names[i]  # drop the size word
            names[i] = templates[int(rng.integers(len(templates)))].format(base)
            taken[i] = True
    # Make names unique (a special rename may collide with another product's name).
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            seen[name] += 1
            names[i] = f"{name} No. {seen[name]}"
        else:
            seen[name] = 1
    return names


def group_membership(
    rules: tuple[GroupRule, ...] | list[GroupRule],
    *,
    product_id: np.ndarray,
    product_name: np.ndarray,
    category: np.ndarray,
) -> tuple[tuple[str, ...], np.ndarray]:
    """Apply group rules as dbt does (`ingest._groups.match_patterns`) on the rule's field.

    Returns the group names (rule order, then `any`) and a boolean (n_products, n_groups) matrix.
    """
    groups: list[str] = []
    for r in rules:
        if r.product_group not in groups:
            groups.append(r.product_group)
    groups.append(ANY_GROUP)
    fields = {"product_id": product_id, "product_name": product_name, "category": category}
    member = np.zeros((len(product_id), len(groups)), dtype=bool)
    member[:, -1] = True
    for field, values in fields.items():
        on_field = [r for r in rules if r.match_on == field]
        hits = match_patterns(list(values), [r.pattern for r in on_field])
        for k, r in enumerate(on_field):
            member[:, groups.index(r.product_group)] |= hits[:, k]
    return tuple(groups), member


def build_catalog(rng: np.random.Generator, *, groups_file: Path = GROUPS_FILE) -> Catalog:
    """Draw the product catalogue (about 2,000 products in 15 categories) and its groups."""
    names: list[str] = []
    cats: list[str] = []
    cat_idx: list[int] = []
    prices: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for c, cat in enumerate(CATEGORIES):
        cat_names = _names(cat, rng)
        n = len(cat_names)
        names += cat_names
        cats += [cat.name] * n
        cat_idx += [c] * n
        price = cat.median_price * rng.lognormal(0.0, 0.45, size=n)
        is_gift = np.array(["gift" in s.lower() or "hamper" in s.lower() for s in cat_names])
        price = np.where(is_gift, price * 1.8, price)
        prices.append(np.maximum(np.round(price, 1) - 0.01, 0.49))  # "charm" prices: 4.99
        w = rng.lognormal(0.0, 1.0, size=n)
        weights.append(w / w.sum())
    category_index = np.array(cat_idx, dtype=np.int64)
    category_cum = np.concatenate(
        [c + np.cumsum(w) for c, w in enumerate(weights)]
    )  # monotone across categories: c + share in (c, c + 1]
    for c in range(len(CATEGORIES)):  # guard the top of each category against rounding
        category_cum[np.flatnonzero(category_index == c)[-1]] = c + 1.0
    product_id = np.array([f"SKU-{i + 10001:05d}" for i in range(len(names))], dtype=object)
    product_name = np.array(names, dtype=object)
    category = np.array(cats, dtype=object)
    rules = tuple(read_group_rules(groups_file))
    groups, member = group_membership(
        rules, product_id=product_id, product_name=product_name, category=category
    )
    weight = np.concatenate(weights)
    share = np.zeros((len(CATEGORIES), len(groups)))
    np.add.at(share, category_index, weight[:, None] * member)
    popularity = np.array([c.popularity for c in CATEGORIES])
    return Catalog(
        categories=tuple(c.name for c in CATEGORIES),
        category_popularity=popularity / popularity.sum(),
        product_id=product_id,
        product_name=product_name,
        category=category,
        category_index=category_index,
        price=np.concatenate(prices),
        category_cum=category_cum,
        rules=rules,
        groups=groups,
        membership=member,
        category_group_share=share,
    )
