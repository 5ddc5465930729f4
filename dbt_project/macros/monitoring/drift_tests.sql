{#-
  Tests of the drift marts (severity warn in models/marts/monitoring/_monitoring__drift.yml, so
  `dbt build` lists them as warnings). Each returns one row per problem with a `problem` column.
-#}

{#- Rows of the newest as_of_date of `model` whose drift_status is 'alert'; `subject` is the SQL
    naming what drifted (a column or a literal). -#}
{% test drift_alerts(model, subject) %}
with newest as (
    select max(as_of_date) as as_of_date from {{ model }}
)

select
    drifted.*,
    {{ subject }} || ' of model ' || drifted.model_id || ' (product group ' || drifted.product_group
    || ') drifted at cutoff ' || cast(drifted.as_of_date as {{ string_type() }}) || ': PSI '
    || cast(round(drifted.psi, 3) as {{ string_type() }}) || ' >= drift_psi_alert {{ var("drift_psi_alert") }} (Jensen-Shannon '
    || cast(round(drifted.js_divergence, 3) as {{ string_type() }}) || ', '
    || cast(round(100 * drifted.unseen_share, 1) as {{ string_type() }}) || '% of rows outside the training range or categories). '
    || 'Check the inputs of that cutoff first (a load or feature change), then retrain '
    || '(`propensity retrain --if-needed`); fct_drift_bins shows which bins moved.' as problem
from {{ model }} as drifted
inner join newest on drifted.as_of_date = newest.as_of_date
where drifted.drift_status = 'alert'
{% endtest %}


{#- Models that scored the newest cutoff of `scores` without a drift reference in `references`:
    they have no drift rows. -#}
{% test drift_references_exist(model, scores, references) %}
with newest as (
    select max(as_of_date) as as_of_date from {{ scores }}
),

scored as (
    select distinct
        scores.product_group,
        scores.model_id,
        scores.as_of_date
    from {{ scores }} as scores
    inner join newest on scores.as_of_date = newest.as_of_date
)

select
    scored.*,
    'model ' || scored.model_id || ' scored product group ' || scored.product_group || ' at cutoff '
    || cast(scored.as_of_date as {{ string_type() }}) || ' but has no drift reference (it was trained before '
    || 'references were stored), so {{ model.identifier }} has no rows for it. Retrain the group '
    || '(`propensity train --group ' || scored.product_group || '`) to monitor its drift.' as problem
from scored
where not exists (
    select 1 from {{ references }} as reference
    where reference.model_id = scored.model_id
)
{% endtest %}
