"""The uplift spec (``kind: uplift``): which experiment, arms and outcomes an uplift model set is
trained on. Declared as a pydantic schema; `load_uplift_specs` turns every problem into one
`ConfigError` naming the spec and the field.

```yaml
specs:
  - name: discount_uplift
    kind: uplift
    relation: marts.fct_experiment_examples
    experiment_id: discount_2026q3   # null: the relation must hold one experiment
    offer_family: discount           # what fct_uplift_scores and offers.yml call the model set
    control_arm: "0"
    purchase: purchased              # 0/1 outcome: T- and DR-learner, chosen by Qini
    revenue: revenue                 # optional: two-part model (P(purchase) x revenue)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from models_py._errors import ConfigError
from models_py._yaml import read_yaml_file

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,59}$"
RELATION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"
LEARNERS = ("t_learner", "dr_learner")
#: Every learner a spec may list (LEARNERS is the default list).
ALL_LEARNERS = ("t_learner", "dr_learner", "class_transformation")
DEFAULT_UPLIFT_SPEC_PATH = Path(__file__).resolve().parents[1] / "training/specs/uplift.yml"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Column = Annotated[str, StringConstraints(min_length=1)]


class UpliftSpecSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Name
    kind: Literal["uplift"]
    description: str = ""
    relation: Annotated[str, StringConstraints(pattern=RELATION_PATTERN)] = (
        "marts.fct_experiment_examples"
    )
    experiment_id: str | None = None
    offer_family: Name
    arm: Column = "arm"
    control_arm: str
    id_columns: list[Column] = Field(default_factory=lambda: ["experiment_id", "customer_id"])
    purchase: Column = "purchased"
    revenue: Column | None = None
    exclude_columns: list[Column] = Field(default_factory=list)
    learners: list[Literal["t_learner", "dr_learner", "class_transformation"]] = Field(
        default_factory=lambda: list(LEARNERS), min_length=1
    )
    base: Literal["hgb", "linear"] = "hgb"
    test_share: float = Field(0.3, gt=0.05, lt=0.8)
    selection_folds: int = Field(3, ge=2, le=10)
    cross_fit_folds: int = Field(3, ge=2, le=10)
    min_rows_per_arm: int = Field(200, ge=20)
    random_state: int = 0


@dataclass(frozen=True)
class UpliftSpec:
    name: str
    description: str
    relation: str
    experiment_id: str | None
    offer_family: str
    arm: str
    control_arm: str
    id_columns: tuple[str, ...]
    purchase: str
    revenue: str | None
    exclude_columns: tuple[str, ...]
    learners: tuple[str, ...]
    base: str
    test_share: float
    selection_folds: int
    cross_fit_folds: int
    min_rows_per_arm: int
    random_state: int

    @property
    def outcome_columns(self) -> tuple[str, ...]:
        return (self.purchase, *((self.revenue,) if self.revenue else ()))


def _message(spec_name: str, error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        problems.append(f"{where}: {e['msg']}")
    return f"uplift spec {spec_name!r}: " + "; ".join(problems)


def parse_uplift_spec(raw: dict) -> UpliftSpec:
    name = str(raw.get("name", "?")) if isinstance(raw, dict) else "?"
    try:
        parsed = UpliftSpecSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_message(name, exc)) from None
    values = parsed.model_dump()
    for key in ("id_columns", "exclude_columns", "learners"):
        values[key] = tuple(values[key])
    values.pop("kind")
    return UpliftSpec(**values)


def load_uplift_specs(path: Path | str | None = None) -> list[UpliftSpec]:
    """Read and validate an uplift spec file (default: the packaged ``specs/uplift.yml``)."""
    path = Path(path) if path is not None else DEFAULT_UPLIFT_SPEC_PATH
    config = read_yaml_file(path, what="uplift spec file")
    specs = config.get("specs") if isinstance(config, dict) else None
    if not isinstance(specs, list) or not specs:
        raise ConfigError(f"{path}: an uplift spec file holds `specs:`, a list of specs")
    parsed = []
    for raw in specs:
        try:
            parsed.append(parse_uplift_spec(raw))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: spec names must be unique, got {names}")
    return parsed
