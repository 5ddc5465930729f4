{#-
  The training-set sample (fct_training_examples; docs/training.md, "The training set is a
  sample"). Per (product group, cutoff) the model keeps

  - train cutoffs: about training_sample_positives of the positives (all of them when fewer) and
    about training_sample_negatives of the negatives;
  - validation and test cutoffs: about evaluation_sample_rows customers, whatever their label
    (a uniform sample, so metrics need no weights);

  each row with sample_weight = rows of its stratum in the population / rows of its stratum in
  the sample (stratum: group, cutoff and, on train cutoffs, the label). A var set to null keeps
  every row of its strata (weight 1).
-#}

{#- A sample size var: null, or a whole number >= 1. -#}
{% macro propensity_sample_size(name) %}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(propensity_int_var(name, 1)) -}}
{% endmacro %}


{#- The sampling rate that keeps about `size` of `population` rows: 1 without a size. -#}
{% macro propensity_sample_rate(size, population) -%}
    {%- if size is none -%}
        cast(1.0 as double)
    {%- else -%}
        least(cast(1.0 as double), cast({{ size }} as double) / greatest({{ population }}, 1))
    {%- endif -%}
{%- endmacro %}


{#-
  A uniform number in [0, 1) per customer and cutoff: the first 8 hex digits of
  md5(seed | customer_id | cutoff) / 2^32. A row is sampled when its number is below its
  stratum's rate, so the sample is a deterministic function of the data (a rebuild keeps the same
  rows) and the product groups of one cutoff share their sampled customers (their features are
  read once). md5, not hash(): the same on every engine.
-#}
{% macro propensity_sample_unit(customer_id, cutoff) -%}
    {{- return(adapter.dispatch('propensity_sample_unit', 'propensity')(customer_id, cutoff)) -}}
{%- endmacro %}

{% macro default__propensity_sample_unit(customer_id, cutoff) -%}
    cast(
        '0x' || left(md5(
            '{{ propensity_int_var("training_sample_seed", 0) }}|'
            || cast({{ customer_id }} as {{ string_type() }}) || '|' || cast({{ cutoff }} as {{ string_type() }})
        ), 8)
        as bigint
    ) / 4294967296.0
{%- endmacro %}

{#- Spark: the same md5 digits read with conv() (Spark casts no '0x' literal) and divided as a
    double (a decimal division would round differently from DuckDB's double). -#}
{% macro spark__propensity_sample_unit(customer_id, cutoff) -%}
    cast(conv(left(md5(
            '{{ propensity_int_var("training_sample_seed", 0) }}|'
            || cast({{ customer_id }} as string) || '|' || cast({{ cutoff }} as string)
        ), 8), 16, 10) as double) / cast(4294967296 as double)
{%- endmacro %}


{#-
  Whether the feature marts build the cutoff being rendered for a subset of customers: the
  customers of the training sample (int_training_sample) and those an experiment assigned that
  day (their balance and outcome models read these features). True at train, validation and
  test cutoffs while a sample size is set and var sample_training_features is true (default);
  scoring and experiment cutoffs always hold every customer created before T.
-#}
{% macro propensity_features_of_sample_only() %}
    {%- if as_of_role() not in ('train', 'validation', 'test') -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set flag = var('sample_training_features', true) -%}
    {%- if flag not in (true, false) -%}
        {{ exceptions.raise_compiler_error(
            "dbt var sample_training_features must be true or false; got '" ~ flag ~ "'.") }}
    {%- endif -%}
    {%- set sizes = [] -%}
    {%- for name in ['training_sample_positives', 'training_sample_negatives', 'evaluation_sample_rows'] -%}
        {%- if propensity_sample_size(name) is not none -%}{%- do sizes.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {{- return(flag and sizes | length > 0) -}}
{% endmacro %}


{#- The customers whose features a sampled training cutoff builds (see above): a select of one
    column, customer_id. -#}
{% macro propensity_sampled_feature_customers() -%}
    select training_sample.customer_id
    from {{ ref('int_training_sample') }} as training_sample
    where training_sample.as_of_date = {{ as_of() }}
    union
    select assignments.customer_id
    from {{ ref('int_experiment_assignments') }} as assignments
    where
        assignments.assigned_at >= cast({{ as_of() }} as timestamp)
        and assignments.assigned_at < cast({{ as_of(-1) }} as timestamp)
{%- endmacro %}


{#- A filter keeping the customers whose features the cutoff being rendered builds: `true` at a
    cutoff of every customer; at a sampled training cutoff `column in (customers)`, customers a
    select of their ids (default: propensity_sampled_feature_customers()). -#}
{% macro propensity_sample_filter(column, customers=none) -%}
    {%- if not propensity_features_of_sample_only() -%}
        true
    {%- else -%}
        {{ column }} in ({{ customers or propensity_sampled_feature_customers() }})
    {%- endif -%}
{%- endmacro %}


{#- How many training cutoffs fct_training_examples writes per statement: with every sample size
    set, as many as keep about 200,000 sampled rows per product group in one statement (3 with the
    packaged sizes); with a size null (every row of a stratum), one cutoff per statement. At 1M
    customers, 12 cutoffs wrote in 6.0 s one per statement, 4.3 s three per statement (peak
    1.4 GB against 1.0 GB), 4.1 s all in one (2.6 GB): the wide rows write faster in larger
    statements, and memory grows with the rows of a statement. -#}
{% macro propensity_training_cutoffs_per_statement() %}
    {%- set sizes = [] -%}
    {%- for name in ['training_sample_positives', 'training_sample_negatives', 'evaluation_sample_rows'] -%}
        {%- do sizes.append(propensity_sample_size(name)) -%}
    {%- endfor -%}
    {%- if none in sizes -%}
        {{- return(1) -}}
    {%- endif -%}
    {{- return([1, 200000 // ([sizes[0] + sizes[1], sizes[2]] | max)] | max) -}}
{% endmacro %}
