{#-
  Sample-size designs saved by `propensity experiment design --name NAME`: what was asked
  (metric, baseline, minimum detectable effect, arms, alpha, power, audience) and the answer
  (customers per arm and in total, enrolment and total duration), one row per design, for BI
  (docs/experiments.md, "Design").
-#}
with designs as (
    select * from {{ ref('stg_raw__experiment_designs') }}
),

final as (
    select * from designs
)

select * from final
