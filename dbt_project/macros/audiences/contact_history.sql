{#-
  Per customer, from email events strictly before the cutoff (`cutoff` names a relation with one
  row and column as_of_date): the last send, the sends in the 30 days before the cutoff and
  whether the customer unsubscribed. The suppression rules of fct_campaign_audiences and
  fct_offer_assignments read it (docs/audiences.md).
-#}
{% macro propensity_contact_history(email_events, cutoff) -%}
    select
        {{ email_events }}.customer_id,
        max(case when {{ email_events }}.event_type = 'sent' then {{ email_events }}.occurred_at end) as last_sent_at,
        count(
            case
                when
                    {{ email_events }}.event_type = 'sent'
                    and {{ email_events }}.occurred_at
                    >= cast({{ dbt.dateadd('day', -30, cutoff ~ '.as_of_date') }} as timestamp)
                    then 1
            end
        ) as email_sends_30d,
        max(case when {{ email_events }}.event_type = 'unsubscribe' then 1 else 0 end) = 1 as is_unsubscribed
    from {{ email_events }}
    cross join {{ cutoff }}
    where {{ email_events }}.occurred_at < cast({{ cutoff }}.as_of_date as timestamp)
    group by {{ email_events }}.customer_id
{%- endmacro %}


{#-
  The hash hold-out bucket of a customer in a campaign or offer: the first 8 hex digits of
  md5(salt | id | customer_id) as an integer, mod 10000. Stable across runs and cutoffs,
  independent of the scores; a customer is held out when bucket < round(share * 10000).
-#}
{% macro propensity_holdout_bucket(salt, id, customer_id) -%}
    cast(
        cast(
            '0x' || left(md5({{ salt }} || '|' || {{ id }} || '|' || cast({{ customer_id }} as {{ string_type() }})), 8)
            as bigint
        ) % 10000 as integer
    )
{%- endmacro %}
