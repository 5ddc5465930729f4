{#-
  Materialization `propensity_by_cutoff`: a table built ONE CUTOFF PER STATEMENT, so the hash
  tables of one cutoff are freed before the next one runs. The model is a select for one cutoff
  that writes the cutoff as as_of() (and window bounds as as_of(days)); for each cutoff of
  dim_cutoffs this materialization sets the cutoff and renders the model's own SQL again with
  dbt's render(), so every statement the engine runs has plain date literals.

  Config:
  - unique_key: 'as_of_date' (the column holding the cutoff; the unit of replacement);
  - cutoff_roles: roles of dim_cutoffs to build (default: dbt var feature_cutoff_roles, i.e. all);
  - rebuild: true = rebuilt whole each run (a plain table); false = incremental by cutoff;
  - on_schema_change: 'fail' (the only value accepted: a clear error when the columns differ);
  - cutoffs_per_statement: how many cutoffs one statement writes (default 1), as a `union all` of
    their renders. Only for a model whose cutoffs are small together (fct_training_examples when
    the training set is sampled): its wide rows write faster in one statement (docs/features.md),
    while one cutoff per statement bounds memory to one cutoff's hash tables. DuckDB only; Spark
    writes one cutoff per statement.

  Incremental (rebuild false, the table exists, no --full-refresh): per cutoff of dim_cutoffs,
  `delete where as_of_date = T` then `insert` that cutoff's rows; rows of other (older) cutoffs
  stay. Otherwise the table is created from the first cutoff (contract enforced as for a table),
  the other cutoffs are inserted one by one, and it replaces the old table. Everything runs in the
  model's transaction: a failure leaves the previous table as it was.

  A model may say while it renders that this run has nothing to write (fct_propensity_scores
  without a champion): `model.update({'propensity_write_nothing': true})`. Then the stored
  cutoffs stay as they are instead of being replaced by no rows (a new table is still created).
-#}
{% materialization propensity_by_cutoff, adapter='duckdb' %}
  {%- set unique_key = config.get('unique_key') or 'as_of_date' -%}
  {%- if unique_key != 'as_of_date' -%}
    {{ exceptions.raise_compiler_error(
        "model " ~ model.name ~ ": materialization propensity_by_cutoff replaces whole cutoffs; "
        ~ "unique_key must be 'as_of_date', got '" ~ unique_key ~ "'.") }}
  {%- endif -%}
  {%- set rebuild = config.get('rebuild', false) -%}
  {%- set on_schema_change = config.get('on_schema_change') or 'fail' -%}
  {%- if on_schema_change != 'fail' and not rebuild -%}
    {{ exceptions.raise_compiler_error(
        "model " ~ model.name ~ ": materialization propensity_by_cutoff supports only "
        ~ "on_schema_change='fail' (got '" ~ on_schema_change ~ "'); rebuild with --full-refresh "
        ~ "after a column change.") }}
  {%- endif -%}
  {%- set cutoffs = propensity_cutoffs(config.get('cutoff_roles', none)) -%}
  {%- set per_statement = config.get('cutoffs_per_statement', 1) -%}
  {%- if per_statement is boolean or per_statement is not number or per_statement < 1
      or per_statement != per_statement | int -%}
    {{ exceptions.raise_compiler_error(
        "model " ~ model.name ~ ": cutoffs_per_statement must be a whole number >= 1, got '"
        ~ per_statement ~ "'.") }}
  {%- endif -%}
  {%- set batches = [] -%}
  {%- for cutoff in cutoffs -%}
    {%- if loop.index0 % per_statement == 0 -%}{%- do batches.append([]) -%}{%- endif -%}
    {%- do batches[-1].append(cutoff) -%}
  {%- endfor -%}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set backup_relation = make_backup_relation(target_relation, 'table') -%}
  {%- set full_refresh_mode = rebuild or existing_relation is none or should_full_refresh()
      or existing_relation.is_view -%}
  {%- set grant_config = config.get('grants') -%}

  {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
  {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- if cutoffs | length == 0 -%}
    {#- No cutoff of these roles (e.g. no training cutoff yet): the columns, no rows. -#}
    {%- set first_sql = 'select * from (' ~ propensity_render_for_cutoff(modules.datetime.date(2000, 1, 1))
        ~ ') as model_subq where false' -%}
  {%- else -%}
    {%- set first_sql = propensity_render_for_cutoffs(batches[0]) -%}
  {%- endif -%}

  {%- if full_refresh_mode -%}
    {%- set build_relation = intermediate_relation -%}
    {%- set to_insert = batches[1:] -%}
    {% call statement('main' if to_insert | length == 0 else 'create') -%}
      {{ create_table_as(False, intermediate_relation, first_sql) }}
    {%- endcall %}
  {%- else -%}
    {%- set build_relation = target_relation -%}
    {%- do propensity_assert_same_columns(existing_relation, first_sql) -%}
    {%- set to_insert = [] if model.get('propensity_write_nothing') else batches -%}
  {%- endif -%}

  {%- set quoted = [] -%}
  {%- for col in adapter.get_columns_in_relation(build_relation) -%}
    {%- do quoted.append(adapter.quote(col.name)) -%}
  {%- endfor -%}
  {%- set column_list = quoted | join(', ') -%}
  {%- if to_insert | length == 0 and not full_refresh_mode %}
    {% call statement('main') -%}
      select count(*) from {{ build_relation }} where false
    {%- endcall %}
  {%- endif -%}
  {%- for batch in to_insert -%}
    {%- set dates = [] -%}
    {%- for cutoff in batch -%}{%- do dates.append(propensity_date_literal(cutoff.as_of_date)) -%}{%- endfor -%}
    {% call statement('main' if loop.last else 'cutoff_' ~ loop.index) -%}
      {%- if not full_refresh_mode %}
      delete from {{ build_relation }} where {{ unique_key }} in ({{ dates | join(', ') }});
      {%- endif %}
      insert into {{ build_relation }} ({{ column_list }})
      select {{ column_list }} from (
        {{ propensity_render_for_cutoffs(batch) }}
      ) as cutoff_subq;
    {%- endcall %}
  {%- endfor -%}

  {%- if full_refresh_mode -%}
    {%- if existing_relation is not none -%}
      {{ adapter.rename_relation(existing_relation, backup_relation) }}
    {%- endif -%}
    {{ adapter.rename_relation(intermediate_relation, target_relation) }}
  {%- endif -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=full_refresh_mode) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  -- `COMMIT` happens here
  {{ adapter.commit() }}

  {{ drop_relation_if_exists(backup_relation) }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- on_schema_change='fail' for propensity_by_cutoff: the stored table must have the columns (names,
    order and types) of the select; otherwise stop with the differences and the remedy. -#}
{% macro propensity_assert_same_columns(relation, select_sql) %}
  {%- set stored = [] -%}
  {%- for col in adapter.get_columns_in_relation(relation) -%}
    {%- do stored.append(col.name | lower ~ ' ' ~ col.dtype | upper) -%}
  {%- endfor -%}
  {%- set built = [] -%}
  {%- for row in run_query(('describe query ' if target.type == 'spark' else 'describe ') ~ select_sql).rows -%}
    {%- do built.append(row[0] | lower ~ ' ' ~ row[1] | upper) -%}
  {%- endfor -%}
  {%- if target.type == 'spark' -%}
    {#- Spark stores the partition column (as_of_date) last: compare the columns, not their order. -#}
    {%- set stored = stored | sort -%}
    {%- set built = built | sort -%}
  {%- endif -%}
  {%- if stored != built -%}
    {%- set removed = stored | reject('in', built) | list -%}
    {%- set added = built | reject('in', stored) | list -%}
    {{ exceptions.raise_compiler_error(
        "The columns of " ~ relation ~ " differ from what model " ~ model.name ~ " now builds "
        ~ "(on_schema_change='fail'): only in the table: [" ~ (removed | join(', ')) ~ "]; only in "
        ~ "the model: [" ~ (added | join(', ')) ~ "]" ~ ("; same columns in another order" if not
        removed and not added else "") ~ ". Rebuild it with `dbt run --full-refresh --select "
        ~ model.name ~ "` (older cutoffs are then recomputed only for the cutoffs in dim_cutoffs).") }}
  {%- endif -%}
{% endmacro %}


{#- The model's own SQL rendered for one cutoff: as_of() reads the cutoff set here. -#}
{% macro propensity_render_for_cutoff(cutoff, role=none) %}
    {%- do model.update({'propensity_as_of_date': cutoff, 'propensity_cutoff_role': role}) -%}
    {{- return(render(model.raw_code)) -}}
{% endmacro %}


{#- The model's SQL for several cutoffs (items of propensity_cutoffs()): one cutoff alone, or
    the union all of each cutoff's render. -#}
{% macro propensity_render_for_cutoffs(batch) %}
    {%- if batch | length == 1 -%}
        {{- return(propensity_render_for_cutoff(batch[0].as_of_date, batch[0].cutoff_role)) -}}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- for cutoff in batch -%}
        {%- do parts.append('select * from (' ~ propensity_render_for_cutoff(cutoff.as_of_date, cutoff.cutoff_role)
            ~ ') as cutoff_' ~ loop.index) -%}
    {%- endfor -%}
    {{- return(parts | join('\nunion all\n')) -}}
{% endmacro %}


{#-
  Spark (docs/spark.md): the same contract on Parquet tables PARTITIONED BY as_of_date (the
  partition column is stored last). Every cutoff is written with `insert overwrite ... partition
  (as_of_date)` under spark.sql.sources.partitionOverwriteMode=dynamic, which replaces that
  cutoff's partition alone: the delete + insert of DuckDB without a delete. A full build writes a
  new table beside the old one and swaps them by rename at the end, so a failure before the swap
  leaves the previous table as it was (Spark has no transaction around the statements).
-#}
{% materialization propensity_by_cutoff, adapter='spark' %}
  {%- set unique_key = config.get('unique_key') or 'as_of_date' -%}
  {%- if unique_key != 'as_of_date' -%}
    {{ exceptions.raise_compiler_error(
        "model " ~ model.name ~ ": materialization propensity_by_cutoff replaces whole cutoffs; "
        ~ "unique_key must be 'as_of_date', got '" ~ unique_key ~ "'.") }}
  {%- endif -%}
  {%- set rebuild = config.get('rebuild', false) -%}
  {%- set cutoffs = propensity_cutoffs(config.get('cutoff_roles', none)) -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set backup_relation = make_backup_relation(target_relation, 'table') -%}
  {%- set full_refresh_mode = rebuild or existing_relation is none or should_full_refresh()
      or existing_relation.is_view -%}

  {{ run_hooks(pre_hooks) }}

  {%- if cutoffs | length == 0 -%}
    {%- set first_sql = 'select * from (' ~ propensity_render_for_cutoff(modules.datetime.date(2000, 1, 1))
        ~ ') as model_subq where false' -%}
  {%- else -%}
    {%- set first_sql = propensity_render_for_cutoff(cutoffs[0].as_of_date, cutoffs[0].cutoff_role) -%}
  {%- endif -%}
  {%- if config.get('contract').enforced -%}
    {{ get_assert_columns_equivalent(first_sql) }}
  {%- endif -%}

  {%- if full_refresh_mode -%}
    {%- set build_relation = intermediate_relation.incorporate(type='table') -%}
    {%- set to_insert = cutoffs[1:] -%}
    {{ drop_relation_if_exists(build_relation) }}
    {% call statement('main' if to_insert | length == 0 else 'create') -%}
      create table {{ build_relation }}
      using parquet
      partitioned by ({{ unique_key }})
      as select * from ({{ first_sql }}) as model_subq
    {%- endcall %}
  {%- else -%}
    {%- set build_relation = target_relation -%}
    {%- set to_insert = cutoffs -%}
    {%- do propensity_assert_same_columns(existing_relation, first_sql) -%}
    {%- if to_insert | length == 0 %}
      {% call statement('main') -%}
        select count(*) from {{ build_relation }} where false
      {%- endcall %}
    {%- endif -%}
  {%- endif -%}

  {%- set quoted = [] -%}
  {%- for col in adapter.get_columns_in_relation(build_relation) -%}
    {%- do quoted.append(adapter.quote(col.name)) -%}
  {%- endfor -%}
  {%- set column_list = quoted | join(', ') -%}
  {%- for cutoff in to_insert -%}
    {% call statement('main' if loop.last else 'cutoff_' ~ loop.index) -%}
      insert overwrite table {{ build_relation }} partition ({{ unique_key }})
      select {{ column_list }} from (
        {{ propensity_render_for_cutoff(cutoff.as_of_date, cutoff.cutoff_role) }}
      ) as cutoff_subq
    {%- endcall %}
  {%- endfor -%}

  {%- if full_refresh_mode -%}
    {%- if existing_relation is not none -%}
      {{ drop_relation_if_exists(backup_relation) }}
      {{ adapter.rename_relation(existing_relation, backup_relation) }}
    {%- endif -%}
    {{ adapter.rename_relation(build_relation, target_relation) }}
    {{ drop_relation_if_exists(backup_relation) }}
  {%- endif -%}

  {{ run_hooks(post_hooks) }}
  {% do persist_docs(target_relation, model) %}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
