{#-
  Helpers of the drift marts (models/marts/monitoring/fct_drift_bins, fct_feature_drift,
  fct_score_drift). Shares are per bin; a sum over a distribution's bins of the terms below gives
  its PSI and its Jensen-Shannon divergence.
-#}

{#- PSI term of one bin: (current - reference) * ln(current / reference), both shares floored at
    dbt var drift_psi_epsilon (default 0.0001), so a bin empty on one side adds a large but finite
    term and a bin empty on both sides adds 0. -#}
{% macro drift_psi_term(reference_share, current_share) -%}
    {%- set eps = drift_float_var('drift_psi_epsilon') -%}
    {%- if eps <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var drift_psi_epsilon must be above 0 (an empty bin would make PSI infinite), got " ~ eps
        ) }}
    {%- endif -%}
    ((greatest({{ current_share }}, {{ eps }}) - greatest({{ reference_share }}, {{ eps }}))
        * ln(greatest({{ current_share }}, {{ eps }}) / greatest({{ reference_share }}, {{ eps }})))
{%- endmacro %}


{#- Jensen-Shannon term of one bin, base 2: p log2(p / m) / 2 + q log2(q / m) / 2 with
    m = (p + q) / 2 and 0 log 0 = 0 (no epsilon: m > 0 wherever p or q is). Summed over the bins
    it lies in [0, 1]. -#}
{% macro drift_js_term(reference_share, current_share) -%}
    (0.5 * (case
        when {{ reference_share }} > 0
            then {{ reference_share }}
            * log2({{ reference_share }} / (({{ reference_share }} + {{ current_share }}) / 2))
        else 0
    end
    + case
        when {{ current_share }} > 0
            then {{ current_share }}
            * log2({{ current_share }} / (({{ reference_share }} + {{ current_share }}) / 2))
        else 0
    end))
{%- endmacro %}


{#- The aggregates of one distribution over its bins (rows of fct_drift_bins, grouped by the
    caller): psi, js_divergence, unseen_share (current share in bins the reference never saw),
    bins, reference_rows, current_rows. -#}
{% macro drift_aggregates() -%}
    sum({{ drift_psi_term('reference_share', 'current_share') }}) as psi,
    greatest(0, least(1, sum({{ drift_js_term('reference_share', 'current_share') }}))) as js_divergence,
    sum(case when reference_rows = 0 then current_share else 0 end) as unseen_share,
    count(*) as bins,
    sum(reference_rows) as reference_rows,
    sum(current_rows) as current_rows
{%- endmacro %}


{#- 'alert' from dbt var drift_psi_alert up, 'warn' from drift_psi_warn up, else 'ok'; null when
    `is_monitored` is false (dbt var drift_ignore_features). -#}
{% macro drift_status(psi, is_monitored='true') -%}
    {%- set warn = drift_float_var('drift_psi_warn') -%}
    {%- set alert = drift_float_var('drift_psi_alert') -%}
    {%- if warn > alert -%}
        {{ exceptions.raise_compiler_error(
            "dbt var drift_psi_warn (" ~ warn ~ ") must not exceed drift_psi_alert (" ~ alert ~ ")"
        ) }}
    {%- endif -%}
    (case
        when not ({{ is_monitored }}) then null
        when {{ psi }} >= {{ alert }} then 'alert'
        when {{ psi }} >= {{ warn }} then 'warn'
        else 'ok'
    end)
{%- endmacro %}


{#- A non-negative number from dbt var `name`, or a compile error naming the var. -#}
{% macro drift_float_var(name) -%}
    {%- set value = var(name) -%}
    {%- if value is boolean or value is not number or value < 0 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var " ~ name ~ " must be a non-negative number, got " ~ value
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- The customers binned per cutoff: at most dbt var drift_sample_customers (default 200,000),
    chosen by a hash of customer_id (the same customers every run while they exist). -#}
{% macro drift_sample_size() -%}
    {%- set value = var('drift_sample_customers') -%}
    {%- if value is boolean or value is not integer or value < 1 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var drift_sample_customers must be a positive integer, got " ~ value
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- The numeric columns of `relation` except `exclude`, in table order (compile time; [] while
    parsing or when the relation does not exist yet). -#}
{% macro drift_numeric_columns(relation, exclude=[]) -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- if column.name | lower not in exclude and propensity_is_numeric_type(column.dtype) -%}
                {%- do names.append(column.name | lower) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(names) }}
{%- endmacro %}


{#- One row per (row of `relation`, column): the `columns` unpivoted to (feature_name,
    feature_value float) next to `keep`; no rows (typed) for an empty column list. -#}
{% macro drift_unpivot(relation, columns, keep) -%}
    {%- if columns -%}
        unpivot (
            select
                {%- for k in keep %}
                {{ k }},
                {%- endfor %}
                {%- for c in columns %}
                cast({{ adapter.quote(c) }} as float) as {{ adapter.quote(c) }}{{ ',' if not loop.last }}
                {%- endfor %}
            from {{ relation }}
        )
        on {% for c in columns %}{{ adapter.quote(c) }}{{ ', ' if not loop.last }}{% endfor %}
        into name feature_name value feature_value
    {%- else -%}
        select
            {%- for k in keep %}
            {{ k }},
            {%- endfor %}
            cast(null as {{ string_type() }}) as feature_name,
            cast(null as float) as feature_value
        from {{ relation }}
        where false
    {%- endif -%}
{%- endmacro %}
