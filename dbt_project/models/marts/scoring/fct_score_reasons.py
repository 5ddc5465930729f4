"""Reason codes: for every (customer, product group) scored at the latest cutoff of
fct_propensity_scores, the (up to) three features pushing the score up the most, with their value,
their contribution and a plain-words label from the feature catalogue. docs/explaining.md.

A dbt Python model: the contributions are computed from the champion's own ONNX trees
(models_py.explain: exact TreeSHAP with shap, or Saabas by onnxruntime; var score_reasons_method),
from the bytes of stg_ml__model_onnx (sha256-checked), and streamed to the table batch by batch,
one group after another. Only the latest cutoff is kept (a table, rebuilt each run): reasons
explain today's scores.
"""


def model(dbt, session):
    dbt.config(materialized="table", tags=["scoring"])
    method = dbt.config.get("reasons_method")
    from models_py.explain import score_reasons

    reasons = score_reasons(
        dbt.ref("fct_propensity_scores"),
        dbt.ref("fct_scoring_features"),
        dbt.ref("stg_ml__model_onnx"),
        connection=session,
        method=method or "auto",
        max_decile=dbt.config.get("reasons_max_decile"),
    )
    # A stream: DuckDB writes each batch of reasons as it is explained (at 10M customers the
    # reasons are ~300M rows). Labels come with the rows; the value is formatted here, one
    # vectorised format per row, not a Python string per reason.
    session.register("score_reasons_rows", reasons)
    return session.sql(
        """
        select
            customer_id,
            product_group,
            as_of_date,
            model_id,
            reason_rank,
            feature_name,
            label_text || ': ' || case value_kind
                when 'flag' then case when feature_value > 0 then 'yes' else 'no' end
                when 'rate' then cast(round(feature_value * 100) as bigint) || '%'
                when 'money' then printf('%.2f', feature_value)
                else case
                    when feature_value = round(feature_value)
                        then cast(cast(feature_value as bigint) as varchar)
                    else printf('%.2f', feature_value)
                end
            end as feature_label,
            feature_value,
            contribution,
            contribution_units,
            method
        from score_reasons_rows
        """
    )
