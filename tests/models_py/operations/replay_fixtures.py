"""A replay timeline as `propensity replay` writes it (table replay.timeline), made by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from models_py._warehouse import connect

#: The shift's first step and the steps of the hand-made timeline.
SHIFT_STEP, STEPS = 4, 8


def write_timeline(path: Path) -> None:
    """A replay timeline as `propensity replay` writes it: two policies, two groups, 8 steps,
    a shift at step 4 after which `never` decays and `if-needed` retrains once."""
    rows = []
    for policy in ("never", "if-needed"):
        for group in ("any", "wine"):
            for step in range(STEPS):
                shifted = step >= SHIFT_STEP
                decayed = policy == "never" and shifted
                retrain = policy == "if-needed" and step == 5
                rows.append(
                    {
                        "label": "shift price_rise at 2026-07-01",
                        "policy": policy,
                        "step": step,
                        "as_of_date": dt.date(2026, 5, 1) + dt.timedelta(days=7 * step),
                        "product_group": group,
                        "model_id": f"{group}-hgb-{policy}",
                        "shifted": shifted,
                        "realised_roc_auc": 0.90 - (0.05 if decayed else 0.0),
                        "estimated_roc_auc": 0.905,
                        "score_psi": 0.3 if shifted else 0.01,
                        "max_feature_psi": 0.4 if shifted else 0.02,
                        "feature_alerts": 3 if shifted and step < 6 else 0,
                        "alerted_features": "spend_30d, aov_90d" if shifted else None,
                        "decision": "retrain"
                        if retrain
                        else ("keep" if policy != "never" else None),
                        "reasons": "3 of its 10 most important features drifted at 2026-06-05: "
                        "spend_30d, aov_90d, monetary_value_90d"
                        if retrain
                        else None,
                    }
                )
    con = connect(path)
    try:
        con.register("timeline_view", pa.Table.from_pylist(rows))
        con.execute("create schema replay")
        con.execute("create table replay.timeline as select * from timeline_view")
    finally:
        con.close()
