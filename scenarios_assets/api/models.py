"""The API's request and response models: what the OpenAPI schema (``/openapi.json``) says of each route."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.families.registry import CLI_TYPES

EXAMPLE_ID = "historical.covid_crash.severe"


class ErrorBody(BaseModel):
    status: int
    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class ValidationResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    passed: bool
    value: float | None = None
    threshold: Any = None
    blocking: bool | None = None
    detail: str | None = None


class ScenarioSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(examples=[EXAMPLE_ID])
    name: str
    family: str
    scenario_type: str
    severity: str
    start_date: str
    end_date: str
    symbols: list[str]
    num_days: int | None = None
    expected_return: float | None = None
    volatility_multiplier: float | None = None
    max_drawdown: float | None = None
    seed: int | None = None
    active: bool = Field(description="every blocking validation check of the scenario passed")


class ScenarioPage(BaseModel):
    total: int
    offset: int
    limit: int
    count: int
    next: str | None = Field(description="URL of the next page, if any")
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    items: list[ScenarioSummary]


class Metrics(BaseModel):
    source: str = Field(description="scenario_metrics.parquet, or catalog_record (computed summary)")
    note: str = ""
    portfolio: dict[str, float | int | None]
    by_symbol: list[dict[str, Any]]


class ScenarioDetail(ScenarioSummary):
    validation: dict[str, ValidationResult]
    metadata: dict[str, Any]
    metrics: Metrics
    build_id: str
    generated_at: str
    data_version: str = Field(description="the data version this scenario's slice was built from")
    config_hash: str = Field(description="the config hash this scenario's slice was built with")
    origin: Literal["new", "carried"] = Field(description="new in this build, or carried over from an earlier one")
    stale: bool = Field(description="carried over from another data version or config of its family")


class CatalogInfo(BaseModel):
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    scenario_count: int
    counts: dict[str, dict[str, int]] = Field(description="family -> severity -> scenarios")
    families: dict[str, Any] = Field(description="per family/severity: count, origin, stale, validation, ...")
    files: list[str] = Field(description="the build's files and datasets")


class Health(BaseModel):
    status: Literal["ok"]
    catalog: bool
    build_id: str | None = None
    generated_at: str | None = None


class BuildInfo(BaseModel):
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    scenario_count: int
    current: bool


class BuildList(BaseModel):
    current: str | None = Field(description="id of the current build")
    builds: list[BuildInfo] = Field(description="the kept builds, newest first")


BuildParam = Annotated[str | None, Query(
    max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    description="a kept build (GET /builds); default: the current build")]


Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9^][A-Za-z0-9._^=-]{0,19}$")]


# YYYY-MM-DD only (the schema's `format: date`), not a number or a timestamp coerced into a date.
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


class GenerateRequest(BaseModel):
    """What to generate: the CLI's flags as JSON (lists where the CLI takes one value or `all`)."""

    # Strict: a number is not a date or a boolean, a string not a number (the schema's types, exactly).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"types": ["historical"], "severities": ["severe"], "symbols": ["SPX", "AAPL"],
                      "start_date": "2015-01-01"}]
    })
    types: list[Literal[CLI_TYPES]] = Field(  # type: ignore[valid-type]
        default=["all"], min_length=1, max_length=len(CLI_TYPES))
    severities: list[Literal["moderate", "severe", "extreme", "all"]] = Field(
        default=["all"], min_length=1, max_length=4)
    num_scenarios: int | None = Field(default=None, ge=1, le=100_000,
                                      description="scenarios per severity for the stochastic families")
    symbols: list[Symbol] | None = Field(default=None, min_length=1, max_length=1000,
                                      description="the universe (default: every symbol in the market data)")
    start_date: IsoDate | None = None
    end_date: IsoDate | None = None
    include_full_cycles: bool = False
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    save_timeseries: bool = True
    dry_run: bool = Field(default=False, description="generate and validate, write no files")


class GenerateAccepted(BaseModel):
    run_id: str
    state: str
    status_url: str
    dagster_ui_url: str | None
    families: list[str]
    severities: list[str]


class DagsterRun(BaseModel):
    run_id: str
    job_name: str
    partition: str | None
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    dagster_ui_url: str | None


class RunStatus(BaseModel):
    run_id: str
    kind: Literal["generation", "dagster_run"]
    state: Literal["queued", "running", "success", "failure", "canceled"]
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    request: dict[str, Any] | None = None
    families: list[str] | None = None
    severities: list[str] | None = None
    dagster_runs: list[DagsterRun]
    dagster_ui_url: str | None = None


