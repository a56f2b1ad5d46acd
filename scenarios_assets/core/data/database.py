"""PostgreSQL as a market-data source and target: the table ``market_data.ohlcv`` of the input contract (README, "Market data").

A source is a libpq URL, ``postgresql://user[:password]@host[:port]/db[?libpq-params]``. The extra query
parameter ``table=schema.table`` reads (or loads) another table with the same columns, e.g. a test
schema; it is removed before the URL reaches libpq. Without it the contract table ``market_data.ohlcv``
is used.

Driver: ADBC (``adbc-driver-postgresql``). A query without bound parameters runs as
``COPY (query) TO STDOUT (FORMAT binary)`` and arrives as Arrow columns (text -> string,
date -> date32, float8 -> float64), with no per-row Python objects and no text parsing. So the selection
(symbols, dates) is written into the query as literals, quoted here, rather than bound: a parameterised
statement would leave COPY for the slower row protocol. Metadata look-ups (small) do bind parameters.

Every problem becomes one :class:`ScenarioInputError` line naming the source (password hidden) and the
table: unreachable server, missing table or column, wrong column type, unknown symbol, lost connection.
Row-level problems (null close, duplicate keys, bad prices) are found by ``core.data.market.validate_ohlcv``
on the rows read, exactly as for files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa

from scenarios_assets.core.data.symbols import resolve_symbols
from scenarios_assets.core.models.errors import ScenarioInputError

URL_PREFIXES = ("postgresql://", "postgres://")
DEFAULT_SCHEMA, DEFAULT_TABLE = "market_data", "ohlcv"
TABLE_PARAM = "table"
COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
NUMERIC_COLUMNS = ("open", "high", "low", "close", "volume")
# information_schema.columns.data_type values accepted for each contract column.
TEXT_TYPES = {"text", "character varying", "character"}
DATE_TYPES = {"date", "timestamp without time zone"}
NUMBER_TYPES = {"double precision", "real", "numeric", "integer", "bigint", "smallint"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

ARROW_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("date", pa.date32()),
        *[(c, pa.float64()) for c in NUMERIC_COLUMNS],
    ]
)


def is_postgres_url(source: object) -> bool:
    """Whether ``source`` is a PostgreSQL URL.

    Parameters
    ----------
    source : object
        A market-data source (path, URL); compared as ``str(source)``.

    Returns
    -------
    bool
        True when it starts with ``postgresql://`` or ``postgres://``.
    """
    return str(source).startswith(URL_PREFIXES)


@dataclass(frozen=True)
class PostgresSource:
    """A parsed source URL: what libpq gets, which table, and a printable name without the password.

    Parameters
    ----------
    dsn : str
        The URL libpq gets (``table`` parameter removed, password possibly added from the environment).
    schema, table : str
        The table's schema and name (unquoted identifiers).
    name : str
        The printable URL: password as ``***``, ``table=schema.table`` always present.
    """

    dsn: str
    schema: str
    table: str
    name: str

    @property
    def qualified(self) -> str:
        """The table as SQL: quoted identifiers."""
        return f'"{self.schema}"."{self.table}"'

    @property
    def label(self) -> str:
        """The table as ``schema.table`` (unquoted), for messages."""
        return f"{self.schema}.{self.table}"


# Where a password taken out of a source URL travels to the process that connects (``split_password``):
# the environment of the CLI's run (in-process, subprocess or local Dask steps inherit it), never the run
# config, tags or metadata that Dagster stores.
PASSWORD_ENV = "SCENARIOS_MARKET_DATA_PASSWORD"
_NETLOC_PASSWORD = re.compile(r"^([^/?#@]*?:)[^/?#@]*@")


def mask_password(url: str) -> str:
    """``url`` with its passwords replaced by ``***``, for messages about a URL that cannot even be parsed.

    Parameters
    ----------
    url : str
        Any text; the password of a ``scheme://user:password@`` part and any ``password=`` parameter are
        masked.

    Returns
    -------
    str
        The masked text.
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if sep:
        rest = _NETLOC_PASSWORD.sub(r"\1***@", rest, count=1)
        text = scheme + sep + rest
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", text)


def _checked_parts(text: str):
    """urlsplit of ``text`` with its port checked: one clear line for a bad host or port."""
    shown = mask_password(text)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ScenarioInputError(
            f"market data URL '{shown}': the host is not a valid IPv6 address in brackets, e.g. [::1]"
        ) from None
    try:
        port = parts.port
    except ValueError:
        raw = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ScenarioInputError(
            f"market data URL '{shown}': port '{raw}' is not a number from 1 to 65535 (PostgreSQL's default is 5432)"
        ) from None
    if port == 0:
        raise ScenarioInputError(f"market data URL '{shown}': port 0 is not a number from 1 to 65535 (PostgreSQL's default is 5432)")
    return parts


def split_password(url: str) -> tuple[str, str | None]:
    """Take the password out of a PostgreSQL URL (the user part's or a ``password=`` parameter's).

    The password travels to the connecting process in ``$SCENARIOS_MARKET_DATA_PASSWORD``
    (:data:`PASSWORD_ENV`), never in what Dagster stores.

    Parameters
    ----------
    url : str
        A source; anything that is not a ``postgresql://`` URL is returned as it is.

    Returns
    -------
    url : str
        The URL without its password.
    password : str or None
        The (URL-decoded) password, None when there is none.

    Raises
    ------
    ScenarioInputError
        For a URL whose host (IPv6) or port does not parse.
    """
    text = str(url)
    if not is_postgres_url(text):
        return text, None
    parts = _checked_parts(text)
    params = parse_qsl(parts.query, keep_blank_values=True)
    password = parts.password
    kept = [(k, v) for k, v in params if k != "password"]
    if len(kept) != len(params):
        password = [v for k, v in params if k == "password"][-1]
    if password is None:
        return text, None
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode(kept, quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), unquote(password)


def parse_source(url: str) -> PostgresSource:
    """Split ``?table=schema.table`` off a postgresql:// URL and name it without its password.

    A URL without a password takes ``$SCENARIOS_MARKET_DATA_PASSWORD`` when set (``split_password``).

    Parameters
    ----------
    url : str
        ``postgresql://user[:password]@host[:port]/db[?libpq-params][&table=schema.table]``; the schema
        defaults to ``market_data``, the table to ``market_data.ohlcv``.

    Returns
    -------
    PostgresSource
        The libpq DSN, the table and the printable name.

    Raises
    ------
    ScenarioInputError
        For a URL that is not postgresql://, a bad host or port (not 1 to 65535), or a table that is not
        ``schema.table`` of letters, digits and underscores (at most 63 characters each).

    References
    ----------
    .. [1] PostgreSQL documentation, libpq "Connection Strings",
       https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING
    """
    text = str(url)
    if not is_postgres_url(text):
        raise ScenarioInputError(f"'{mask_password(text)}' is not a postgresql:// URL")
    parts = _checked_parts(text)
    params = parse_qsl(parts.query, keep_blank_values=True)
    table_values = [v for k, v in params if k == TABLE_PARAM]
    rest = [(k, v) for k, v in params if k != TABLE_PARAM]
    schema, table = DEFAULT_SCHEMA, DEFAULT_TABLE
    if table_values:
        spec = table_values[-1]
        schema, _, table = spec.rpartition(".")
        schema = schema or DEFAULT_SCHEMA
        for ident in (schema, table):
            if not _IDENTIFIER.match(ident):
                raise ScenarioInputError(
                    f"market data URL: table '{spec}' is not schema.table made of letters, digits and underscores"
                )
    netloc_dsn = parts.netloc
    env_password = os.environ.get(PASSWORD_ENV)
    from_env = bool(env_password) and parts.password is None and not any(k == "password" for k, _ in rest)
    if from_env:
        user, at, host = parts.netloc.rpartition("@")
        netloc_dsn = f"{user}:{quote(env_password or '', safe='')}@{host}" if at else netloc_dsn
        if not at:
            rest = [*rest, ("password", env_password)]
    dsn = urlunsplit((parts.scheme, netloc_dsn, parts.path, urlencode(rest, quote_via=quote), parts.fragment))
    # The printable name: user, host, port, database and the non-secret parameters, always with the table.
    netloc = parts.hostname or ""
    if parts.hostname and ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{unquote(parts.username)}{':***' if parts.password or from_env else ''}@{netloc}"
    shown = [(k, "***" if k == "password" else v) for k, v in params if k != TABLE_PARAM] + [(TABLE_PARAM, f"{schema}.{table}")]
    name = urlunsplit((parts.scheme, netloc, parts.path, urlencode(shown, safe="*.", quote_via=quote), ""))
    return PostgresSource(dsn=dsn, schema=schema, table=table, name=name)


def source_name(url: str) -> str:
    """The source as shown in messages and metadata: password hidden, table named.

    Parameters
    ----------
    url : str
        A ``postgresql://`` URL.

    Returns
    -------
    str
        :attr:`PostgresSource.name` of :func:`parse_source`.

    Raises
    ------
    ScenarioInputError
        As :func:`parse_source`.
    """
    return parse_source(url).name


# SQLSTATE classes and libpq texts of a connection that went away (server shutdown, terminated backend,
# network failure): reported as a lost connection.
_LOST = re.compile(r"SQLSTATE: (08|57P0)|server closed the connection|connection to server .* lost|no connection to the server")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for prefix in ("IO: ", "INTERNAL: ", "INVALID_ARGUMENT: ", "NOT_FOUND: ", "ALREADY_EXISTS: "):
        text = text.removeprefix(prefix)
    text = re.sub(r"^\[libpq\]\s*", "", text)
    text = re.sub(r"\s*CONTEXT: .*?(?=SQLSTATE:|$)", " ", text).strip()
    if _LOST.search(text):
        text = f"connection lost: {text}"
    return text[:400] or type(exc).__name__


def _driver():
    try:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError:  # pragma: no cover - a dependency of the project
        raise ScenarioInputError(
            "reading market data from PostgreSQL needs the package adbc-driver-postgresql (pip install it)"
        ) from None
    return dbapi, adbc_driver_manager


def connect(src: PostgresSource, *, autocommit: bool = True):
    """An ADBC connection (DB-API 2.0) to the source's database, with ``standard_conforming_strings`` on.

    Parameters
    ----------
    src : PostgresSource
        The parsed source.
    autocommit : bool, default True
        False for a transaction (the caller commits).

    Returns
    -------
    adbc_driver_manager.dbapi.Connection
        The open connection; the caller closes it.

    Raises
    ------
    ScenarioInputError
        When the driver is missing, the server cannot be reached or refuses the login, or the session
        setting fails.

    References
    ----------
    .. [1] Apache Arrow ADBC, PostgreSQL driver, https://arrow.apache.org/adbc/current/driver/postgresql.html
    .. [2] PEP 249, Python Database API Specification v2.0.
    """
    dbapi, adbc = _driver()
    try:
        conn = dbapi.connect(src.dsn, autocommit=autocommit)
    except adbc.Error as exc:
        raise ScenarioInputError(f"market data '{src.name}': cannot connect to PostgreSQL: {_one_line(exc)}") from None
    try:
        with conn.cursor() as cur:
            # Literals below are quoted by doubling single quotes, which is exact only with this setting.
            cur.execute("SET standard_conforming_strings = on")
    except adbc.Error as exc:
        conn.close()
        raise ScenarioInputError(f"market data '{src.name}': cannot use the connection: {_one_line(exc)}") from None
    return conn


def sql_text(value: str) -> str:
    """A SQL string literal (standard_conforming_strings on: only single quotes need doubling).

    Parameters
    ----------
    value : str
        The text (a symbol); converted with ``str``.

    Returns
    -------
    str
        ``'...'`` with every single quote doubled.

    Raises
    ------
    ScenarioInputError
        When the text contains a NUL character (PostgreSQL text cannot hold one).
    """
    value = str(value)
    if "\x00" in value:
        raise ScenarioInputError(f"symbol {value!r} contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def sql_date(value) -> str:
    """A SQL date literal.

    Parameters
    ----------
    value : date-like
        Anything ``pandas.Timestamp`` takes; the time of day is dropped.

    Returns
    -------
    str
        ``DATE 'YYYY-MM-DD'``.
    """
    return f"DATE '{pd.Timestamp(value).date().isoformat()}'"


def table_columns(conn, src: PostgresSource) -> dict[str, str]:
    """The source table's columns and their types, from ``information_schema.columns``.

    Parameters
    ----------
    conn : DB-API connection
        An open connection (:func:`connect`).
    src : PostgresSource
        The parsed source.

    Returns
    -------
    dict of str to str
        Column name -> ``data_type`` (e.g. ``"text"``, ``"date"``, ``"double precision"``); empty when the
        table does not exist or is not visible to the user.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2",
            parameters=(src.schema, src.table),
        )
        return {name: dtype for name, dtype in cur.fetchall()}


def check_table(conn, src: PostgresSource) -> None:
    """The table exists and has the contract's columns with usable types; otherwise one clear error.

    Parameters
    ----------
    conn : DB-API connection
        An open connection (:func:`connect`).
    src : PostgresSource
        The parsed source.

    Raises
    ------
    ScenarioInputError
        When the table does not exist (or is not visible), lacks a contract column, or a column's type is
        not in :data:`TEXT_TYPES` (symbol), :data:`DATE_TYPES` (date) or :data:`NUMBER_TYPES` (the others).
    """
    columns = table_columns(conn, src)
    if not columns:
        raise ScenarioInputError(
            f"market data '{src.name}': table {src.label} does not exist (or is not visible to this user); "
            f"create and fill it with `scenarios load-market-data --to {src.name}`"
        )
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ScenarioInputError(
            f"market data '{src.name}': table {src.label} lacks column(s) {', '.join(missing)} "
            f"(expected {', '.join(COLUMNS)})"
        )
    wrong = []
    for col in COLUMNS:
        dtype = columns[col]
        expected = TEXT_TYPES if col == "symbol" else DATE_TYPES if col == "date" else NUMBER_TYPES
        if dtype not in expected:
            want = "text" if col == "symbol" else "date" if col == "date" else "a number (double precision)"
            wrong.append(f"{col} is {dtype}, expected {want}")
    if wrong:
        raise ScenarioInputError(f"market data '{src.name}': table {src.label} has wrong column type(s): {'; '.join(wrong)}")


def available_symbols(conn, src: PostgresSource) -> list[str]:
    """The distinct non-null symbols of the source table.

    Parameters
    ----------
    conn : DB-API connection
        An open connection (:func:`connect`).
    src : PostgresSource
        The parsed source.

    Returns
    -------
    list of str
        The symbols, sorted by the database's collation.
    """
    with conn.cursor() as cur:
        cur.execute(f'SELECT DISTINCT "symbol"::text FROM {src.qualified} WHERE "symbol" IS NOT NULL ORDER BY 1')
        return [row[0] for row in cur.fetchall()]


def check_symbols(conn, src: PostgresSource, symbols: list[str]) -> list[str]:
    """The symbols as the table spells them (``core.data.symbols.resolve_symbols``: ``spx`` -> ``SPX``).

    One cheap query when all exist as given; otherwise the table's symbols are listed and matched.

    Parameters
    ----------
    conn : DB-API connection
        An open connection (:func:`connect`).
    src : PostgresSource
        The parsed source.
    symbols : list of str
        The requested symbols.

    Returns
    -------
    list of str
        The symbols as the table spells them, duplicates removed, in request order.

    Raises
    ------
    ScenarioInputError
        With the message files give (listing the available ones) for an unknown symbol, or when a requested
        symbol matches several that differ only in case.
    """
    values = ", ".join(f"({sql_text(s)}, {i})" for i, s in enumerate(symbols))
    query = (
        f"SELECT s.symbol FROM (VALUES {values}) AS s(symbol, pos) "
        f'WHERE NOT EXISTS (SELECT 1 FROM {src.qualified} t WHERE t."symbol" = s.symbol) ORDER BY s.pos'
    )
    with conn.cursor() as cur:
        cur.execute(query)
        unknown = [row[0] for row in cur.fetchall()]
    if not unknown:
        return list(dict.fromkeys(symbols))
    return resolve_symbols(symbols, available_symbols(conn, src), src.name)


def select_query(
    src: PostgresSource,
    symbols: Iterable[str] | None = None,
    start_date=None,
    end_date=None,
    reference_symbol: str | None = None,
) -> str:
    """The SELECT of the rows a selection needs; the predicate of ``core.data.market.select_rows`` in SQL.

    Requested symbols plus the reference index; requested dates, except the reference's (whole history).
    Values are written in as quoted literals (:func:`sql_text`, :func:`sql_date`), not bound, so that the
    driver can run the query as a binary ``COPY`` (module docstring).

    Parameters
    ----------
    src : PostgresSource
        The parsed source.
    symbols : iterable of str, optional
        The requested symbols; None or empty: every symbol.
    start_date, end_date : date-like, optional
        Inclusive date bounds.
    reference_symbol : str, optional
        The reference index's symbol.

    Returns
    -------
    str
        ``SELECT symbol::text, date::date, open..volume::float8 FROM schema.table [WHERE ...]``.

    Raises
    ------
    ScenarioInputError
        When a symbol contains a NUL character.
    """
    cols = ", ".join(
        [
            '"symbol"::text AS "symbol"',
            '"date"::date AS "date"',
            *[f'"{c}"::float8 AS "{c}"' for c in NUMERIC_COLUMNS],
        ]
    )
    where = []
    symbols = list(symbols or [])
    if symbols:
        wanted = list(dict.fromkeys([*symbols, *([reference_symbol] if reference_symbol else [])]))
        where.append(f'"symbol" IN ({", ".join(sql_text(s) for s in wanted)})')
    window = []
    if start_date is not None:
        window.append(f'"date" >= {sql_date(start_date)}')
    if end_date is not None:
        window.append(f'"date" <= {sql_date(end_date)}')
    if window:
        clause = " AND ".join(window)
        if reference_symbol:
            clause = f'({clause}) OR "symbol" = {sql_text(reference_symbol)}'
        where.append(f"({clause})")
    query = f"SELECT {cols} FROM {src.qualified}"
    return query + (" WHERE " + " AND ".join(where) if where else "")


def read_ohlcv_postgres(
    url: str,
    symbols: Iterable[str] | None = None,
    start_date=None,
    end_date=None,
    reference_symbol: str | None = None,
) -> pd.DataFrame:
    """Long OHLCV rows of the table, filtered in SQL (:func:`select_query`), as Arrow columns.

    Parameters
    ----------
    url : str
        A ``postgresql://`` URL (:func:`parse_source`).
    symbols : iterable of str, optional
        The requested symbols (any case: resolved by :func:`check_symbols`); None: every symbol.
    start_date, end_date : date-like, optional
        Inclusive date bounds (not applied to the reference symbol).
    reference_symbol : str, optional
        The reference index's symbol, read over its whole history.

    Returns
    -------
    pandas.DataFrame
        Columns ``symbol`` (str), ``date`` (datetime64[s]), ``open``, ``high``, ``low``, ``close``,
        ``volume`` (float64), not validated (:func:`~scenarios_assets.core.data.market.validate_ohlcv`);
        ``attrs["symbols"]``: the requested symbols as the table spells them.

    Raises
    ------
    ScenarioInputError
        For a bad URL, a failed connection, a missing table or column, a wrong column type, an unknown
        symbol, or a failed or interrupted read.

    References
    ----------
    .. [1] Apache Arrow columnar format, https://arrow.apache.org/docs/format/Columnar.html
    """
    src = parse_source(url)
    _, adbc = _driver()
    conn = connect(src)
    try:
        check_table(conn, src)
        if symbols:
            symbols = check_symbols(conn, src, list(symbols))
        query = select_query(src, symbols, start_date, end_date, reference_symbol)
        with conn.cursor() as cur:
            cur.execute(query)
            table = cur.fetch_arrow_table()
    except (adbc.Error, pa.ArrowException, OSError) as exc:
        raise ScenarioInputError(f"market data '{src.name}': reading table {src.label} failed: {_one_line(exc)}") from None
    finally:
        try:
            conn.close()
        except (adbc.Error, OSError):
            pass
    table = table.set_column(table.schema.get_field_index("date"), "date", table["date"].cast(pa.timestamp("s")))
    frame = table.to_pandas()
    if symbols:
        frame.attrs["symbols"] = list(symbols)  # as the table spells them
    return frame


# --- publishing a dataset -------------------------------------------------------------------------------

def create_table_sql(src: PostgresSource) -> list[str]:
    """The statements creating the contract table (and its schema) when missing.

    Parameters
    ----------
    src : PostgresSource
        The parsed target.

    Returns
    -------
    list of str
        ``CREATE SCHEMA IF NOT EXISTS`` and ``CREATE TABLE IF NOT EXISTS`` with the contract's columns, price
        checks (> 0), volume >= 0, a non-null close and the primary key (symbol, date).
    """
    return [
        f'CREATE SCHEMA IF NOT EXISTS "{src.schema}"',
        f"""CREATE TABLE IF NOT EXISTS {src.qualified} (
            "symbol" text NOT NULL,
            "date" date NOT NULL,
            "open" double precision CHECK ("open" > 0),
            "high" double precision CHECK ("high" > 0),
            "low" double precision CHECK ("low" > 0),
            "close" double precision NOT NULL CHECK ("close" > 0),
            "volume" double precision CHECK ("volume" >= 0),
            PRIMARY KEY ("symbol", "date")
        )""",
    ]


def _has_symbol_date_key(conn, src: PostgresSource) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL
              AND i.indnkeyatts = 2
              AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey::int2[])) = ARRAY['date', 'symbol']
            """,
            parameters=(src.schema, src.table),
        )
        return cur.fetchone()[0] > 0


def to_arrow(ohlcv: pd.DataFrame) -> pa.Table:
    """Validated OHLCV rows as Arrow in the table's types.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (:func:`~scenarios_assets.core.data.market.validate_ohlcv`).

    Returns
    -------
    pyarrow.Table
        :data:`ARROW_SCHEMA`: ``symbol`` string, ``date`` date32, the prices and volume float64 (NaN as null).
    """
    frame = ohlcv.loc[:, list(COLUMNS)]
    dates = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    arrays = [pa.array(frame["symbol"].astype(str).to_numpy(dtype=object), pa.string()), pa.array(dates, pa.date32())]
    arrays += [pa.array(frame[c].to_numpy(dtype="float64"), pa.float64(), from_pandas=True) for c in NUMERIC_COLUMNS]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def write_ohlcv_postgres(ohlcv: pd.DataFrame, url: str) -> dict:
    """Upsert validated OHLCV rows into the table, in one transaction.

    The table is created with its schema and a primary key on (symbol, date) when missing. The rows are
    staged in a temporary table (ADBC bulk ingest), then inserted with ``ON CONFLICT ("symbol", "date") DO
    UPDATE`` where a price or the volume differs.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (:func:`~scenarios_assets.core.data.market.validate_ohlcv`).
    url : str
        The target, a ``postgresql://`` URL (:func:`parse_source`).

    Returns
    -------
    dict
        ``table`` (schema.table), ``target`` (printable URL) and row counts ``rows``, ``inserted``,
        ``updated``, ``unchanged``.

    Raises
    ------
    ScenarioInputError
        For a bad URL, a failed connection, an existing table with missing or mistyped columns or without a
        unique key on (symbol, date), or a failed write (the transaction is rolled back).
    """
    src = parse_source(url)
    _, adbc = _driver()
    conn = connect(src, autocommit=False)
    stage = "scenarios_ohlcv_stage"
    try:
        columns = table_columns(conn, src)
        if columns:
            check_table(conn, src)
            if not _has_symbol_date_key(conn, src):
                raise ScenarioInputError(
                    f"market data '{src.name}': table {src.label} has no primary key or unique index on (symbol, date), "
                    "so rows cannot be upserted; add one (ALTER TABLE ... ADD PRIMARY KEY (symbol, date))"
                )
        with conn.cursor() as cur:
            for statement in create_table_sql(src):
                cur.execute(statement)
            cur.adbc_ingest(stage, to_arrow(ohlcv), mode="create", temporary=True)
            cols = ", ".join(f'"{c}"' for c in COLUMNS)
            changes = " OR ".join(f't."{c}" IS DISTINCT FROM EXCLUDED."{c}"' for c in NUMERIC_COLUMNS)
            cur.execute(
                f"""
                WITH written AS (
                    INSERT INTO {src.qualified} AS t ({cols})
                    SELECT {cols} FROM "{stage}"
                    ON CONFLICT ("symbol", "date") DO UPDATE SET
                        {", ".join(f'"{c}" = EXCLUDED."{c}"' for c in NUMERIC_COLUMNS)}
                    WHERE {changes}
                    RETURNING (xmax = 0) AS inserted
                )
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
                """
            )
            inserted, updated = cur.fetchone()
            cur.execute(f'DROP TABLE "{stage}"')
        conn.commit()
    except ScenarioInputError:
        _rollback(conn, adbc)
        raise
    except (adbc.Error, pa.ArrowException, OSError) as exc:
        _rollback(conn, adbc)
        raise ScenarioInputError(f"market data '{src.name}': writing table {src.label} failed: {_one_line(exc)}") from None
    finally:
        try:
            conn.close()
        except (adbc.Error, OSError):
            pass
    inserted, updated = int(inserted), int(updated)
    return {
        "table": src.label,
        "target": src.name,
        "rows": len(ohlcv),
        "inserted": inserted,
        "updated": updated,
        "unchanged": len(ohlcv) - inserted - updated,
    }


def _rollback(conn, adbc) -> None:
    try:
        conn.rollback()
    except (adbc.Error, OSError):
        pass
