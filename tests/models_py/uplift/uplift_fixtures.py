"""Synthetic randomised experiments with a known CATE per treated arm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARMS = ("control", "arm_a", "arm_b")
FEATURES = ("x0", "x1", "x2", "x3", "segment")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Synthetic:
    X: np.ndarray
    arm: np.ndarray
    visit: np.ndarray  # binary outcome
    spend: np.ndarray  # 0 without a purchase
    true_cate: dict[str, np.ndarray]  # on the visit probability
    true_spend_cate: dict[str, np.ndarray]  # on expected spend


def synthetic(n: int, seed: int) -> Synthetic:
    """Three arms (40/30/30 %). Visit: logit -1 + x0 + 0.5 x1, plus 1.2 x2 for arm_a and
    -0.8 x3 for arm_b. Spend: a purchase with probability 0.1 (arm_a: sigmoid(-2 + x2); arm_b:
    0.4 where x1 > 0), amount 50 + 20 x0 (1.5 times that for arm_a): the spend effects depend on
    x0 and x2 (arm_a) and on x0 and x1 (arm_b)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 4] = rng.integers(0, 4, n)  # an integer-coded category, ignored by the outcomes
    arm = rng.choice(ARMS, size=n, p=[0.4, 0.3, 0.3])
    base = -1.0 + X[:, 0] + 0.5 * X[:, 1]
    logit = {"control": base, "arm_a": base + 1.2 * X[:, 2], "arm_b": base - 0.8 * X[:, 3]}
    p = {a: _sigmoid(z) for a, z in logit.items()}
    p_row = np.select([arm == a for a in ARMS], [p[a] for a in ARMS])
    visit = (rng.random(n) < p_row).astype(int)

    buy = {
        "control": np.full(n, 0.1),
        "arm_a": _sigmoid(-2.0 + X[:, 2]),
        "arm_b": np.where(X[:, 1] > 0, 0.4, 0.1),
    }
    amount = {a: np.clip(50 + 20 * X[:, 0], 5, None) for a in ARMS}
    amount["arm_a"] = amount["arm_a"] * 1.5
    bought = rng.random(n) < np.select([arm == a for a in ARMS], [buy[a] for a in ARMS])
    noise = rng.gamma(4.0, 0.25, n)  # mean 1
    spend = np.where(bought, np.select([arm == a for a in ARMS], [amount[a] for a in ARMS]), 0)
    spend = spend * noise
    expected = {a: buy[a] * amount[a] for a in ARMS}
    return Synthetic(
        X=X,
        arm=arm,
        visit=visit,
        spend=spend,
        true_cate={a: p[a] - p["control"] for a in ARMS[1:]},
        true_spend_cate={a: expected[a] - expected["control"] for a in ARMS[1:]},
    )
