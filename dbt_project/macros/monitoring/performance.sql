{#-
  Helpers of the performance marts (models/marts/monitoring/fct_model_calibration.sql and
  fct_model_performance.sql).
-#}


{#-
  Which cutoffs of the score history fct_model_calibration computes in this run, and which of
  its stored rows it keeps. Returns {now, compute, keep, matured}:
  - now: the run's scoring cutoff (dim_cutoffs role 'scoring'), a date; none before a build.
  - compute: cutoffs (dates) of `scores` with as_of_date <= now whose stored rows are missing or
    stale: the scores changed since (other row count or newer scored_at), the label window moved
    (horizon_days changed) or the maturity changed (label_window_end <= now flipped, either way).
  - keep: the other cutoffs <= now: their stored rows are still exact (matured labels do not
    change as later orders arrive; estimates depend on the scores only).
  - matured: the cutoffs of `compute` whose label window has matured (they need labels).
  Stored rows of cutoffs after now or no longer in the score history are dropped. With
  --full-refresh, a missing table, or stored columns that differ from the model's YAML columns
  (an upgrade), every cutoff is computed.
-#}
{% macro propensity_performance_plan(scores, existing) %}
    {%- set plan = {'now': none, 'compute': [], 'keep': [], 'matured': []} -%}
    {%- if not execute -%}
        {{- return(plan) -}}
    {%- endif -%}
    {%- set scoring = propensity_cutoffs(['scoring']) -%}
    {%- set scores_relation = adapter.get_relation(
        database=scores.database, schema=scores.schema, identifier=scores.identifier) -%}
    {%- if scoring | length == 0 or scoring[0].cutoff_role != 'scoring' or scores_relation is none -%}
        {%- if flags.WHICH in ('run', 'build') -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ": the score history " ~ scores ~ " does not exist yet: build it first "
                ~ "(dbt build --select +" ~ model.name ~ ", after `propensity train`).") }}
        {%- endif -%}
        {{- return(plan) -}}
    {%- endif -%}
    {%- set now = scoring[0].as_of_date -%}
    {%- do plan.update({'now': now}) -%}
    {%- set horizon = propensity_horizon_days() -%}

    {%- set stored_relation = adapter.get_relation(
        database=existing.database, schema=existing.schema, identifier=existing.identifier) -%}
    {%- set reuse = stored_relation is not none and not flags.FULL_REFRESH -%}
    {%- if reuse -%}
        {%- set stored_columns = adapter.get_columns_in_relation(stored_relation)
            | map(attribute='name') | map('lower') | list -%}
        {%- set model_columns = model.columns.keys() | map('lower') | list -%}
        {%- if stored_columns != model_columns -%}
            {%- do log(model.name ~ ": stored columns differ from the model's; recomputing every cutoff", info=true) -%}
            {%- set reuse = false -%}
        {%- endif -%}
    {%- endif -%}

    {%- set query -%}
        with history as (
            select
                as_of_date,
                count(*) as cutoff_score_rows,
                max(scored_at) as scored_at
            from {{ scores_relation }}
            where as_of_date <= {{ propensity_date_literal(now) }}
            group by as_of_date
        ),

        {% if reuse -%}
        stored as (
            select
                as_of_date,
                min(cutoff_score_rows) as min_rows,
                max(cutoff_score_rows) as max_rows,
                min(scored_at) as min_scored_at,
                max(scored_at) as max_scored_at,
                min(label_window_end) as min_window_end,
                max(label_window_end) as max_window_end,
                bool_and(is_matured) as all_matured,
                bool_or(is_matured) as any_matured
            from {{ stored_relation }}
            group by as_of_date
        ),
        {%- else -%}
        stored as (
            select
                cast(null as date) as as_of_date,
                0 as min_rows,
                0 as max_rows,
                cast(null as timestamp) as min_scored_at,
                cast(null as timestamp) as max_scored_at,
                cast(null as date) as min_window_end,
                cast(null as date) as max_window_end,
                false as all_matured,
                false as any_matured
            where false
        ),
        {%- endif %}

        expected as (
            select
                as_of_date,
                cutoff_score_rows,
                scored_at,
                cast({{ dbt.dateadd('day', horizon, 'as_of_date') }} as date) as label_window_end
            from history
        )

        select
            cast(expected.as_of_date as {{ string_type() }}) as as_of_date,
            coalesce(
                stored.min_rows = expected.cutoff_score_rows
                and stored.max_rows = expected.cutoff_score_rows
                and stored.min_scored_at = expected.scored_at
                and stored.max_scored_at = expected.scored_at
                and stored.min_window_end = expected.label_window_end
                and stored.max_window_end = expected.label_window_end
                and stored.all_matured = (expected.label_window_end <= {{ propensity_date_literal(now) }})
                and stored.any_matured = (expected.label_window_end <= {{ propensity_date_literal(now) }}),
                false
            ) as is_current,
            expected.label_window_end <= {{ propensity_date_literal(now) }} as is_matured
        from expected
        left join stored on expected.as_of_date = stored.as_of_date
        order by expected.as_of_date
    {%- endset -%}
    {%- for row in run_query(query).rows -%}
        {%- set day = propensity_parse_date(row[0], 'as_of_date in ' ~ scores) -%}
        {%- if row[1] -%}
            {%- do plan.keep.append(day) -%}
        {%- else -%}
            {%- do plan.compute.append(day) -%}
            {%- if row[2] -%}
                {%- do plan.matured.append(day) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do log(model.name ~ ": now " ~ now ~ "; computing " ~ plan.compute | length ~ " cutoff(s) ["
        ~ plan.compute | join(', ') ~ "], " ~ plan.matured | length ~ " of them matured; keeping "
        ~ plan.keep | length ~ " stored", info=true) -%}
    {{- return(plan) -}}
{% endmacro %}


{#- A list of dates as SQL literals for `in (...)`; an empty list matches nothing. -#}
{% macro propensity_date_list(days) %}
    {%- if days | length == 0 -%}
        {{- return('cast(null as date)') -}}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for day in days -%}
        {%- do literals.append(propensity_date_literal(day)) -%}
    {%- endfor -%}
    {{- return(literals | join(', ')) -}}
{% endmacro %}


{#-
  The labels of the matured cutoffs of `plan` (a select of customer_id, product_group,
  as_of_date): one row per customer with a purchase order of the group in [as_of_date,
  as_of_date + horizon_days), the label of fct_training_examples. `orders` is
  int_order_groups_summarised; only its rows in [oldest matured cutoff, now) are read, never an
  order at or after now. No matured cutoff: no row (and no order read).
-#}
{% macro propensity_matured_labels(plan, orders) %}
    {%- set horizon = propensity_horizon_days() -%}
    select distinct
        purchases.customer_id,
        purchases.product_group,
        windows.as_of_date
    from {{ orders }} as purchases
    inner join (
        {%- for day in plan.matured %}
        select
            {{ propensity_date_literal(day) }} as as_of_date,
            {{ propensity_date_literal(day, -horizon) }} as label_window_end
            {%- if not loop.last %}
        union all
            {%- endif %}
        {%- else %}
        select
            cast(null as date) as as_of_date,
            cast(null as date) as label_window_end
        where false
        {%- endfor %}
    ) as windows
        on
            purchases.order_date >= windows.as_of_date
            and purchases.order_date < windows.label_window_end
    where
        purchases.is_purchase
        {%- if plan.matured %}
        and purchases.order_date >= {{ propensity_date_literal(plan.matured | min) }}
        and purchases.order_date < {{ propensity_date_literal(plan.now) }}
        {%- else %}
        and false
        {%- endif %}
{%- endmacro %}
