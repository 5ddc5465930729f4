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
