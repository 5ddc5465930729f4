"""Reason codes: for every (customer, product group) scored at the latest cutoff of
fct_propensity_scores, the (up to) three features pushing the score up the most, with their value,
their contribution and a plain-words label from the feature catalogue. docs/explaining.md.

A dbt Python model: the contributions are computed from the champion's own ONNX trees
(models_py.explain: exact TreeSHAP with shap, or Saabas by onnxruntime; var score_reasons_method),
in one batched pass per group, from the bytes of stg_ml__model_onnx (sha256-checked). Only the
latest cutoff is kept (a table, rebuilt each run): reasons explain today's scores.
"""


def model(dbt, session):
    dbt.config(materialized="table", tags=["scoring"])
    method = dbt.config.get("reasons_method")
    from models_py.explain import score_reasons

    reasons, labels = score_reasons(
        dbt.ref("fct_propensity_scores"),
        dbt.ref("fct_scoring_features"),
        dbt.ref("stg_ml__model_onnx"),
        method=method or "auto",
    )
    # Labels joined in SQL: one vectorised format per row, not a Python string per reason.
    session.register("score_reasons_rows", reasons)
    session.register("score_reasons_labels", labels)
    return session.sql(
        """
        select
            reasons.customer_id,
            reasons.product_group,
            reasons.as_of_date,
            reasons.model_id,
            reasons.reason_rank,
            reasons.feature_name,
            labels.label_text || ': ' || case labels.value_kind
                when 'flag' then case when reasons.feature_value > 0 then 'yes' else 'no' end
                when 'rate' then cast(round(reasons.feature_value * 100) as bigint) || '%'
                when 'money' then printf('%.2f', reasons.feature_value)
                else case
                    when reasons.feature_value = round(reasons.feature_value)
                        then cast(cast(reasons.feature_value as bigint) as varchar)
                    else printf('%.2f', reasons.feature_value)
                end
            end as feature_label,
            reasons.feature_value,
            reasons.contribution,
            reasons.contribution_units,
            reasons.method
        from score_reasons_rows as reasons
        left join score_reasons_labels as labels on reasons.feature_name = labels.feature_name
        """
    )
