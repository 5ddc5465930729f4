"""Synthetic warehouse generator with known ground truth (`propensity generate`).

`generate_warehouse` writes every table of the raw input contract for a simulated retailer
(about 2,000 products in 15 categories; groups from ``models_py/ingest/synth/groups.yml``), plus:

- ``raw.oracle_propensity(customer_id, product_group, as_of_date, probability)``: for every
  customer created before the cutoff T, every product group and `any`, and T = end_date - 30 k
  (k = 0..12; k = 0..6 above 200,000 customers), the true probability under the simulation, given
  the latent state (purchase rate, affinities, basket size, churn time, experiment arm), of at
  least one purchase containing a group product with ordered_at in [T, T + 30 days).
- ``raw.oracle_treatment_effect``: per experiment customer and treated arm ('20', '25'), the true
  probability of any purchase in the experiment window without (arm '0') and with the discount,
  and the expected revenue and margin (`Behaviour.margin_rate` of the list price) of its
  purchases.
- ``raw.oracle_offer_effects``: per customer created before the scoring cutoff end_date and arm
  ('0', '20', '25'), the true purchase probability, expected orders, revenue and margin of a new
  30-day discount offer made at end_date, and their effects against arm '0' (docs/oracle.md,
  "Offer effects").
- ``raw.oracle_customer_state``: the latent traits (purchase rate, churn time, engagement, ...).
- ``raw.oracle_regime_shift`` (only with ``shift_at``): per customer the kind of regime shift,
  its first day and the factor of the customer's purchase rate from then on (docs/oracle.md,
  "Regime shift"). Without a shift the table does not exist and every other
  table is exactly what it was before shifts existed.

Semantics shared with the dbt features:

- The history is [end_date - days, end_date); one purchase falls on end_date - 1, so dbt's
  default scoring cutoff (the day after the last order) is end_date.
- A purchase is an order with at least one line of positive quantity. A return is its own order
  (own order_id, same customer, 2+ days after the purchase, only negative quantities, products of
  that purchase). Returns never count as purchases.
- Group membership: the rules of groups.yml on category / product_name, case-insensitive regex
  search, exactly as dbt's `int_products_mapped_to_groups`; `any` is every product.
- Customers may be created before the history and may never order; a churned customer (latent
  death time before T) has oracle probability 0.
- Discount experiment 'discount_2026q3': assigned at end_date - 60 days (midnight) to 30% of the
  customers created before then, arms '0', '20', '25' with equal probability; the arm multiplies
  the purchase rate during [assigned_at, assigned_at + 30 days) by 1 + sensitivity x (0, 1.0, 1.5),
  and lines of those purchases carry the discounted price.
- Regime shift (optional, `shift_at` / `propensity generate --shift-at DATE [--shift KIND]`):
  from midnight of `shift_at`, prices, purchase rates (of the price-sensitive half, or by
  engagement) and the email programme change by kind (`_simulate.SHIFTS`; docs/oracle.md,
  "Regime shift"). Everything dated before `shift_at` (orders with their ids, lines, email
  events) is that of the same warehouse without the shift; `raw.oracle_propensity.probability`
  integrates the new rates, so it stays exact for windows before, across and after the shift.
  The observable oracle follows `email_fatigue` only.
"""

from __future__ import annotations

from models_py.ingest.synth._generate import GenerationReport, generate_warehouse

__all__ = ["GenerationReport", "generate_warehouse"]
