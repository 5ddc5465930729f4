{#-
  Cutoff configuration and the list of cutoffs the feature marts are built for.

  A cutoff T (as_of_date) is a date: features use events strictly before T at 00:00, labels use
  [T, T + horizon_days). The cutoffs themselves live in the mart dim_cutoffs; the materialization
  propensity_by_cutoff reads it at run time (run_query) and renders its model once per cutoff,
  the model writing the cutoff as as_of().
-#}

{% macro propensity_int_var(name, minimum) %}
    {%- set value = var(name) -%}
    {%- if value is none or value is boolean or (value | string) | trim | int(-999999) | string != (value | string) | trim -%}
        {{ exceptions.raise_compiler_error(
            "dbt var " ~ name ~ " must be a whole number >= " ~ minimum ~ ", got " ~ (value | string)
            ~ ". Set it in dbt_project.yml or with --vars '{" ~ name ~ ": ...}'.") }}
    {%- endif -%}
    {%- if (value | int) < minimum -%}
        {{ exceptions.raise_compiler_error(
            "dbt var " ~ name ~ " must be >= " ~ minimum ~ ", got " ~ value
            ~ (". The label window [T, T + horizon_days) needs at least one day." if name == 'horizon_days' else "")
            ~ " Set it in dbt_project.yml or with --vars '{" ~ name ~ ": ...}'.") }}
    {%- endif -%}
    {{- return(value | int) -}}
{% endmacro %}


{% macro propensity_horizon_days() %}
    {{- return(propensity_int_var('horizon_days', 1)) -}}
{% endmacro %}


{#- Cap (and fill for "never") of every days_since_* feature. -#}
{% macro propensity_days_cap() %}
    {{- return(propensity_int_var('feature_days_cap', 1)) -}}
{% endmacro %}


{#- Parse a date given in a var: 'YYYY-MM-DD' (a string or a date). -#}
{% macro propensity_parse_date(value, what) %}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error(
            what ~ " must be a date written YYYY-MM-DD, got '" ~ text ~ "'.") }}
    {%- endif -%}
    {{- return(modules.datetime.date.fromisoformat(text)) -}}
{% endmacro %}


{#- The explicit training cutoffs (var training_cutoffs) as dates, or none when derived from data. -#}
{% macro propensity_explicit_training_cutoffs() %}
    {%- set value = var('training_cutoffs') -%}
    {%- if value is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if value is string -%}
        {%- set value = value.split(',') | map('trim') | reject('equalto', '') | list -%}
    {%- endif -%}
    {%- if value | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var training_cutoffs is an empty list: give at least one date (YYYY-MM-DD) or set it "
            ~ "to null to derive the cutoffs every cutoff_step_days back from the scoring cutoff.") }}
    {%- endif -%}
    {%- set dates = [] -%}
    {%- for v in value -%}
        {%- do dates.append(propensity_parse_date(v, 'each entry of dbt var training_cutoffs')) -%}
    {%- endfor -%}
    {{- return(dates | unique | sort) -}}
{% endmacro %}


{#-
  The cutoffs to build, read from dim_cutoffs at run time: a list of dicts
  {as_of_date: date, cutoff_role: str, label_window_end: date}, oldest first.
  `roles` restricts them (e.g. ['train', 'validation', 'test']); by default the dbt var
  feature_cutoff_roles does (null = every cutoff; ['scoring'] for a daily scoring run that leaves
  the stored training cutoffs as they are).
  While parsing, or when dim_cutoffs does not exist yet (compile or lint of a fresh warehouse), it
  returns one placeholder cutoff so that the SQL compiles; `dbt run`/`build` always build
  dim_cutoffs first (the ref below makes it a parent of every model calling this macro).
-#}
{% macro propensity_cutoffs(roles=none) %}
    {%- set cutoffs_relation = ref('dim_cutoffs') -%}
    {%- set placeholder = [{
        'as_of_date': modules.datetime.date(2000, 1, 1),
        'cutoff_role': 'placeholder',
        'label_window_end': modules.datetime.date(2000, 1, 1) + modules.datetime.timedelta(days=propensity_horizon_days()),
    }] -%}
    {%- if roles is not none and roles | length == 0 -%}
        {#- A model whose roles this run builds none of (propensity_run_training_roles). -#}
        {{- return([]) -}}
    {%- endif -%}
    {%- if roles is none -%}
        {%- set roles = var('feature_cutoff_roles', none) -%}
        {%- if roles is string -%}{%- set roles = [roles] -%}{%- endif -%}
        {%- for r in roles or [] -%}
            {%- if r not in ('train', 'validation', 'test', 'scoring', 'experiment') -%}
                {{ exceptions.raise_compiler_error(
                    "dbt var feature_cutoff_roles must list roles among train, validation, test, scoring, experiment; got '"
                    ~ r ~ "'. Use null to build every cutoff.") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if not execute -%}
        {{- return(placeholder) -}}
    {%- endif -%}
    {%- set relation = adapter.get_relation(
        database=cutoffs_relation.database,
        schema=cutoffs_relation.schema,
        identifier=cutoffs_relation.identifier) -%}
    {%- if relation is none -%}
        {%- if flags.WHICH in ('run', 'build') -%}
            {{ exceptions.raise_compiler_error(
                "dim_cutoffs does not exist yet: build it first (dbt build --select +" ~ model.name ~ ").") }}
        {%- endif -%}
        {{- return(placeholder) -}}
    {%- endif -%}
    {%- set query -%}
        select as_of_date, cutoff_role, label_window_end
        from {{ relation }}
        {%- if roles %}
        where cutoff_role in ({% for r in roles %}'{{ r }}'{% if not loop.last %}, {% endif %}{% endfor %})
        {%- endif %}
        order by as_of_date
    {%- endset -%}
    {%- set rows = run_query(query) -%}
    {%- set cutoffs = [] -%}
    {%- for row in rows -%}
        {%- set d = row[0] -%}
        {%- if d is string -%}{%- set d = propensity_parse_date(d, 'as_of_date in dim_cutoffs') -%}{%- endif -%}
        {%- set e = row[2] -%}
        {%- if e is string -%}{%- set e = propensity_parse_date(e, 'label_window_end in dim_cutoffs') -%}{%- endif -%}
        {%- do cutoffs.append({'as_of_date': d, 'cutoff_role': row[1], 'label_window_end': e}) -%}
    {%- endfor -%}
    {{- return(cutoffs) -}}
{% endmacro %}


{#- The training roles (train, validation, test) this run builds: all of them unless dbt var
    feature_cutoff_roles names others only (the daily run: [scoring] gives []). -#}
{% macro propensity_run_training_roles() %}
    {%- set roles = var('feature_cutoff_roles', none) -%}
    {%- if roles is string -%}{%- set roles = [roles] -%}{%- endif -%}
    {%- set training = ['train', 'validation', 'test'] -%}
    {{- return(training if roles is none else training | select('in', roles) | list) -}}
{% endmacro %}


{#- A date literal `days` days before `day` (a python date), computed at compile time. -#}
{% macro propensity_date_literal(day, days_before=0) %}
    {%- if day is string -%}{%- set day = propensity_parse_date(day, 'a cutoff') -%}{%- endif -%}
    {%- set d = day - modules.datetime.timedelta(days=days_before) -%}
    {{- return("cast('" ~ d.isoformat() ~ "' as date)") -}}
{% endmacro %}


{#-
  The cutoff of the statement being built, `days_before` days earlier, as a date literal: the
  cutoff T of a propensity_by_cutoff model. The materialization sets it before it renders the
  model for each cutoff; anywhere else (dbt compile, docs, unit tests, lint) it is the first
  cutoff of the model's cutoff_roles in dim_cutoffs, so the compiled model is one cutoff's select.
-#}
{% macro as_of(days_before=0) %}
    {%- if model.get('propensity_as_of_date') is none -%}
        {%- set cutoffs = propensity_cutoffs(config.get('cutoff_roles', none)) -%}
        {%- set first = cutoffs[0].as_of_date if cutoffs else modules.datetime.date(2000, 1, 1) -%}
        {%- do model.update({
            'propensity_as_of_date': first,
            'propensity_cutoff_role': cutoffs[0].cutoff_role if cutoffs else none,
        }) -%}
    {%- endif -%}
    {{- return(propensity_date_literal(model['propensity_as_of_date'], days_before)) -}}
{% endmacro %}


{#- The dim_cutoffs role of the cutoff being built ('train', 'validation', 'test', 'scoring',
    'experiment'; a date has one role), or none when unknown (a placeholder cutoff). -#}
{% macro as_of_role() %}
    {%- do as_of() -%}
    {{- return(model.get('propensity_cutoff_role')) -}}
{% endmacro %}


{#-
  The training cutoffs a scoring-only run keeps: when dbt var feature_cutoff_roles names no
  training role (the daily run: [scoring]) and var training_cutoffs is null, the cutoffs and
  splits stored in fct_training_examples (built next to dim_cutoffs, in the same schema), as a
  list of {as_of_date, cutoff_role}; otherwise none (derive them from the scoring cutoff). So a
  daily run with a moving scoring cutoff leaves dim_cutoffs describing the stored training examples
  the champions were trained on; a build of fct_training_examples (selector training_set) moves
  them.
-#}
{% macro propensity_stored_training_cutoffs() %}
    {%- set roles = var('feature_cutoff_roles', none) -%}
    {%- if roles is string -%}{%- set roles = [roles] -%}{%- endif -%}
    {%- if not execute or roles is none or var('training_cutoffs') is not none
        or (roles | select('in', ['train', 'validation', 'test']) | list) -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set relation = adapter.get_relation(
        database=this.database, schema=this.schema, identifier='fct_training_examples') -%}
    {%- if relation is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set rows = run_query(
        'select as_of_date, min(split) as split from ' ~ relation ~ ' group by as_of_date order by as_of_date'
    ).rows -%}
    {%- if rows | length == 0 -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set cutoffs = [] -%}
    {%- for row in rows -%}
        {%- set d = row[0] -%}
        {%- if d is string -%}{%- set d = propensity_parse_date(d, 'as_of_date in ' ~ relation) -%}{%- endif -%}
        {%- do cutoffs.append({'as_of_date': d, 'cutoff_role': row[1]}) -%}
    {%- endfor -%}
    {{- return(cutoffs) -}}
{% endmacro %}
