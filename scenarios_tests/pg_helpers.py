"""A throw-away PostgreSQL database per test session, on the server of SCENARIOS_TEST_PG_URL.

Tests never touch a real ``market_data`` schema: each session creates ``scenarios_test_<pid>_<random>``,
works inside it (the contract table ``market_data.ohlcv`` there, other tables through ``?table=``) and drops
it with everything in it. No server is a failure, not a skip: `.ci/run` and `make test-all` start one.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("SCENARIOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def url_for_database(name: str, url: str = ADMIN_URL) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def connect(url: str = ADMIN_URL):
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as dbapi

    try:
        return dbapi.connect(url, autocommit=True)
    except adbc_driver_manager.Error as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({' '.join(str(exc).split())[:200]}); start it with "
            "scripts/start_postgres.sh or point SCENARIOS_TEST_PG_URL at a server",
            pytrace=False,
        )


def execute(url: str, *statements: str) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def query(url: str, sql: str) -> list[tuple]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@contextmanager
def temporary_database():
    """Yield the URL of a new, empty database; drop it (closing other sessions) afterwards."""
    name = f"scenarios_test_{os.getpid()}_{secrets.token_hex(4)}"
    execute(ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        yield url_for_database(name)
    finally:
        execute(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dagster_pg_env(url: str) -> dict:
    """The environment dagster.postgres.yaml reads, for the database of ``url``."""
    parts = urlsplit(url)
    env = {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "postgres",
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return env


def normalised_metadata(path, source: str | None = None) -> dict:
    """scenario_metadata.json without what legitimately differs between two builds: when and how long, the
    build's ``run`` (build id, staged slice ids, timings), and where the market data came from (``source``,
    named in e.g. ``calibration_source``)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "generated_at" and "seconds" not in k and "timing" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    with open(path) as fh:
        text = fh.read()
    if source:
        text = text.replace(json.dumps(source)[1:-1], "<market data source>")
    document = json.loads(text)
    document.pop("run", None)
    return strip(document)
