{{ config(severity='warn') }}
{#- A configured group whose rules match no product is skipped (warning, not error). -#}
select
    product_group,
    'product group ' || product_group || ' matches no product and is skipped; '
    || 'check its patterns in raw.product_group_rules (propensity groups set FILE.yml)' as problem
from {{ ref('dim_product_groups') }}
where not is_active
