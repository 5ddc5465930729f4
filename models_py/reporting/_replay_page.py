"""The monitoring page of a replay (`propensity replay`): realised and estimated ROC AUC over the
weekly steps per retraining policy, feature drift per step, alerts and retrain decisions, all
read from the ``replay.timeline`` table the replay writes."""

from __future__ import annotations

import html
from contextlib import closing
from pathlib import Path

from models_py._warehouse import connect
from models_py.reporting._report import _CSS, _png, _rows, _table

POLICY_COLOURS = {"never": "#c44e52", "weekly": "#4c72b0", "if-needed": "#55a868"}


def write_replay_page(results: Path | str, out: Path | str) -> Path:
    """Write the replay page `out` (HTML) from ``replay.timeline`` in `results`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with closing(connect(results, read_only=True)) as con:
        rows = _rows(con, "select * from replay.timeline order by label, policy, step")
    labels = sorted({r["label"] for r in rows})
    parts = [
        "<h1>Replay: monitoring over time</h1>",
        '<p class="muted">Weekly steps of the daily job and the retraining policies on one '
        "generated history (docs/operations.md). Realised ROC AUC uses the labels once they "
        "matured; estimated ROC AUC comes from the calibrated scores alone.</p>",
    ]
    for label in labels:
        part = [r for r in rows if r["label"] == label]
        groups = sorted({r["product_group"] for r in part})
        policies = [p for p in POLICY_COLOURS if any(r["policy"] == p for r in part)]
        shift_steps = [r["step"] for r in part if r["shifted"]]
        shift_step = min(shift_steps) if shift_steps else None
        parts.append(f"<h2>{html.escape(label)}</h2>")
        images = []
        for group in groups:
            fig, ax = plt.subplots(figsize=(4, 3.2))
            for policy in policies:
                pts = [r for r in part if r["product_group"] == group and r["policy"] == policy]
                colour = POLICY_COLOURS[policy]
                ax.plot(
                    [r["step"] for r in pts],
                    [r["realised_roc_auc"] for r in pts],
                    color=colour,
                    label=policy,
                )
                ax.plot(
                    [r["step"] for r in pts],
                    [r["estimated_roc_auc"] for r in pts],
                    color=colour,
                    ls=":",
                    lw=0.9,
                )
            if shift_step is not None:
                ax.axvline(shift_step, color="grey", ls="--", lw=0.8)
            ax.set(xlabel="week", ylabel="ROC AUC (dotted: estimated)", title=f"{group}: ROC AUC")
            ax.legend(fontsize=7)
            images.append(_png(fig))
        never = [r for r in part if r["policy"] == (policies[0] if policies else "")]
        if never:
            fig, ax = plt.subplots(figsize=(4, 3.2))
            steps = sorted({r["step"] for r in never})
            grid = [
                [
                    next(
                        (
                            r["max_feature_psi"] or 0.0
                            for r in never
                            if r["product_group"] == g and r["step"] == s
                        ),
                        0.0,
                    )
                    for s in steps
                ]
                for g in groups
            ]
            image = ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=0.5)
            ax.set_yticks(range(len(groups)), groups)
            ax.set(xlabel="week", title=f"max feature PSI ({policies[0]})")
            fig.colorbar(image, ax=ax)
            images.append(_png(fig))
        parts.append('<div class="grid">' + "".join(images) + "</div>")
        alerts = [r for r in part if r["feature_alerts"]]
        parts.append("<h3>Drift alerts</h3>")
        parts.append(
            _table(
                alerts[:40],
                ["policy", "step", "as_of_date", "product_group", "feature_alerts", "score_psi"],
            )
            if alerts
            else '<p class="muted">none</p>'
        )
        retrains = [r for r in part if r["decision"] == "retrain"]
        parts.append("<h3>Retrains</h3>")
        parts.append(
            _table(retrains[:60], ["policy", "step", "as_of_date", "product_group", "reasons"])
            if retrains
            else '<p class="muted">none</p>'
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Replay monitoring</title>"
        f"<style>{_CSS} td {{ overflow-wrap: anywhere; }}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page)
    tmp.replace(target)
    return target
