"""The date column of market data, as real exports write it, read as the exchange's local calendar date.

What is read (``parse_date_column``):

* date/datetime values of a Parquet file or database (naive: their date; time-zone aware: the date on the
  wall clock of their own zone, i.e. the exchange's local date when the zone is the exchange's);
* ISO 8601 text, ``YYYY-MM-DD`` with an optional time and UTC offset (``2022-03-14 00:00:00-04:00``,
  ``2022-03-14T16:00:00Z``): the date as written, whatever the offset, so offsets that change with
  daylight saving inside one column are read like a time-zone aware column;
* ``YYYY/MM/DD`` and ``YYYY.MM.DD``; compact ``YYYYMMDD`` (text or a whole number);
* ``DD/MM/YYYY`` or ``MM/DD/YYYY`` (``/``, ``-`` or ``.`` separated) when the column itself decides which:
  some value has a first field above 12 (day first) or a second field above 12 (month first);
* month names (``3 Jan 2022``, ``Jan 3, 2022``, ``03-Jan-2022``, RFC 2822 with an offset), read by
  ``dateutil`` (a dependency of pandas) and refused when a field is missing.

Everything else is refused with one line naming the column, the first bad value and the form expected:
a day/month order the column does not decide, two-digit years, other numbers (spreadsheet serials and Unix
timestamps: their epoch, unit and time zone are guesses), impossible dates, a column mixing forms.
Values are parsed once per distinct value (a daily file has a few thousand), then mapped to the rows.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from scenarios_assets.core.models.errors import ScenarioInputError

class DateColumnError(ScenarioInputError):
    """A date column that cannot be read; ``value`` is the first offending value as written (or None).

    Parameters
    ----------
    message : str
        One line: source, column, first bad value, expected form.
    value : object, optional
        The first offending value as written (lets a directory source name the file it came from).
    """

    def __init__(self, message: str, value: object = None):
        super().__init__(message)
        self.value = value


EXPECTED = "YYYY-MM-DD, e.g. 2022-01-03"
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_OFFSET = r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?"
ISO = re.compile(rf"^(\d{{4}})-(\d{{2}})-(\d{{2}}){_TIME}{_OFFSET}$")
YMD = re.compile(rf"^(\d{{4}})[/.-](\d{{1,2}})[/.-](\d{{1,2}}){_TIME}$")
COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
DAY_MONTH = re.compile(rf"^(\d{{1,2}})([/.-])(\d{{1,2}})\2(\d{{4}}){_TIME}$")
SHORT_YEAR = re.compile(r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2}$")
NUMBER = re.compile(r"^[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?$")
MONTH_NAME = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|"
    r"september|october|november|december)\b",
    re.IGNORECASE,
)


def parse_date_column(values: pd.Series, column: str, source: str) -> pd.Series:
    """The calendar date of every value of ``values`` (a date column as read from a file or table).

    Parameters
    ----------
    values : pandas.Series
        The column as read: datetime64 (naive or time-zone aware), whole numbers (``YYYYMMDD``) or text.
    column : str
        The column's name, for the messages.
    source : str
        The source's name, for the messages.

    Returns
    -------
    pandas.Series of datetime64[s]
        The calendar date of each value at midnight (time-zone aware values: the date on their own zone's
        wall clock); NaT where a value is missing; same index as ``values``.

    Raises
    ------
    DateColumnError
        A :class:`ScenarioInputError` (one line: source, column, first bad value, expected form) when the
        column is not in one of the forms of the module docstring.

    References
    ----------
    .. [1] ISO 8601-1:2019, Date and time -- Representations for information interchange.
    .. [2] RFC 2822, Internet Message Format, section 3.3 (date and time specification).
    """
    prefix = f"market data '{source}': column '{column}'"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return _midnight(values.dt.tz_localize(None))
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _midnight(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DateColumnError(f"{prefix} holds true/false values, not dates (expected {EXPECTED})")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _numbers(values, prefix)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # parse each distinct value once
    if len(uniques) == 0:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    parsed = _distinct(list(uniques), prefix)
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
    known = codes >= 0
    out[known] = parsed[codes[known]]
    return pd.Series(out, index=values.index, name=values.name)


def _midnight(values: pd.Series) -> pd.Series:
    return values.dt.normalize().astype("datetime64[s]")


def _numbers(values: pd.Series, prefix: str) -> pd.Series:
    """Whole numbers YYYYMMDD; any other number is refused."""
    present = values.dropna()
    if present.empty:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    floats = present.to_numpy(dtype="float64")
    whole = np.isfinite(floats) & (floats == np.round(floats))
    compact = whole & (floats >= 10000101) & (floats <= 99991231)
    if not compact.all():
        bad = present.iloc[int(np.argmin(compact))]
        raise DateColumnError(f"{prefix}: {_show(bad)} is a number, not a date ({_NUMBER_HINT})", bad)
    text = pd.Series(floats.astype("int64").astype(str), index=present.index)
    parsed = _distinct_series(text, prefix)
    return parsed.reindex(values.index)


_NUMBER_HINT = (
    f"expected {EXPECTED}, or a YYYYMMDD number; spreadsheet serial numbers and Unix timestamps are not read "
    "because their epoch, unit and time zone would be guesses"
)


def _distinct_series(text: pd.Series, prefix: str) -> pd.Series:
    codes, uniques = pd.factorize(text)
    parsed = _distinct(list(uniques), prefix)
    return pd.Series(parsed[codes], index=text.index)


def _distinct(uniques: list, prefix: str) -> np.ndarray:
    """datetime64[s] of each distinct value (in order), or a ScenarioInputError for the first bad one."""
    texts: list[str] = []
    for value in uniques:
        if isinstance(value, (pd.Timestamp, dt.datetime)):
            # A datetime object keeps its own wall-clock date, whatever its zone.
            texts.append(value.replace(tzinfo=None).date().isoformat())
        elif isinstance(value, dt.date):
            texts.append(value.isoformat())
        elif isinstance(value, (bool, np.bool_)):
            raise DateColumnError(f"{prefix} holds true/false values, not dates (expected {EXPECTED})")
        elif isinstance(value, (int, float, np.integer, np.floating)):
            parsed = _numbers(pd.Series([value]), prefix)
            texts.append(str(parsed.iloc[0].date()))
        else:
            texts.append(str(value).strip())
    first = next((t for t in texts if t), None)
    if first is None:
        return np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[s]")
    form = _form_of(first, prefix)
    parts = _split(texts, form, prefix)
    return _assemble(parts, texts, prefix)


def _form_of(text: str, prefix: str) -> str:
    for name, pattern in (("iso", ISO), ("ymd", YMD), ("compact", COMPACT), ("day_month", DAY_MONTH)):
        if pattern.match(text):
            return name
    if MONTH_NAME.search(text):
        return "named"
    if SHORT_YEAR.match(text):
        raise DateColumnError(f"{prefix}: {_show(text)} has a two-digit year (expected {EXPECTED})", text)
    if NUMBER.match(text):
        raise DateColumnError(f"{prefix}: {_show(text)} is a number, not a date ({_NUMBER_HINT})", text)
    raise DateColumnError(f"{prefix}: {_show(text)} is not a date (expected {EXPECTED})", text)


_FORM_LABEL = {
    "iso": "YYYY-MM-DD (with an optional time and UTC offset)",
    "ymd": "YYYY/MM/DD",
    "compact": "YYYYMMDD",
    "day_month": "DD/MM/YYYY or MM/DD/YYYY",
    "named": "a date with a month name, e.g. 3 Jan 2022",
}


def _split(texts: list[str], form: str, prefix: str) -> np.ndarray:
    """(K, 3) int64 year, month, day of each text (-1 for an empty one) in ``form``."""
    out = np.full((len(texts), 3), -1, dtype=np.int64)
    if form == "named":
        return _named(texts, prefix)
    pattern = {"iso": ISO, "ymd": YMD, "compact": COMPACT, "day_month": DAY_MONTH}[form]
    first_field: list[int] = []
    second_field: list[int] = []
    for i, text in enumerate(texts):
        if not text:
            continue
        match = pattern.match(text)
        if match is None:
            raise DateColumnError(
                f"{prefix}: {_show(text)} is not in the form of the column's first value, {_FORM_LABEL[form]} "
                f"(expected one form for the whole column, best {EXPECTED})",
                text,
            )
        if form == "day_month":
            a, _, b, year = match.groups()[:4]
            first_field.append(int(a))
            second_field.append(int(b))
            out[i] = (int(year), 0, 0)
        else:
            out[i] = [int(g) for g in match.groups()[:3]]
    if form == "day_month":
        _order_day_month(out, texts, np.array(first_field), np.array(second_field), prefix)
    return out


def _order_day_month(out: np.ndarray, texts: list[str], a: np.ndarray, b: np.ndarray, prefix: str) -> None:
    """Put day and month in place for DD/MM/YYYY or MM/DD/YYYY, as the column's values decide."""
    filled = np.flatnonzero(out[:, 0] >= 0)
    day_first, month_first = bool((a > 12).any()), bool((b > 12).any())
    if day_first and month_first:
        x = texts[filled[int(np.argmax(a > 12))]]
        y = texts[filled[int(np.argmax(b > 12))]]
        raise DateColumnError(
            f"{prefix} mixes day-first and month-first dates ({_show(x)} and {_show(y)}); expected one order, best {EXPECTED}",
            y,
        )
    if not (day_first or month_first):
        first = texts[filled[0]]
        x, y = int(a[0]), int(b[0])
        year = out[filled[0], 0]
        raise DateColumnError(
            f"{prefix}: {_show(first)} could be {_long(year, y, x)} or {_long(year, x, y)} (no value of the column "
            f"has a day above 12 to tell); expected {EXPECTED}",
            first,
        )
    if day_first:
        out[filled, 1], out[filled, 2] = b, a
    else:
        out[filled, 1], out[filled, 2] = a, b


def _long(year: int, month: int, day: int) -> str:
    try:
        return dt.date(int(year), int(month), int(day)).strftime("%-d %B %Y")
    except ValueError:
        return f"day {day} of month {month}"


def _named(texts: list[str], prefix: str) -> np.ndarray:
    """Dates with month names, by dateutil; a value that leaves the day or year to a default is refused."""
    from dateutil import parser

    out = np.full((len(texts), 3), -1, dtype=np.int64)
    a, b = dt.datetime(1901, 1, 1), dt.datetime(1902, 2, 2)
    for i, text in enumerate(texts):
        if not text:
            continue
        if not MONTH_NAME.search(text):
            raise DateColumnError(
                f"{prefix}: {_show(text)} is not in the form of the column's first value, {_FORM_LABEL['named']} "
                f"(expected one form for the whole column, best {EXPECTED})",
                text,
            )
        try:
            one, two = parser.parse(text, default=a), parser.parse(text, default=b)
        except (ValueError, OverflowError):
            raise DateColumnError(f"{prefix}: {_show(text)} is not a date (expected {EXPECTED})", text) from None
        if one.date() != two.date():
            raise DateColumnError(f"{prefix}: {_show(text)} lacks a day, month or year (expected {EXPECTED})", text)
        out[i] = (one.year, one.month, one.day)
    return out


def _assemble(parts: np.ndarray, texts: list[str], prefix: str) -> np.ndarray:
    """datetime64[s] of (year, month, day) rows; an impossible date (31 February) is refused."""
    result = np.full(len(parts), np.datetime64("NaT"), dtype="datetime64[s]")
    filled = parts[:, 0] >= 0
    if not filled.any():
        return result
    y, m, d = parts[filled].T
    valid = (m >= 1) & (m <= 12) & (d >= 1) & (y >= 1)
    days = np.full(len(y), np.datetime64("NaT"), dtype="datetime64[D]")
    months = (y - 1970) * 12 + (m - 1)
    first_of_month = np.array(months, dtype="datetime64[M]").astype("datetime64[D]")
    days[valid] = first_of_month[valid] + (d[valid] - 1)
    # A day past the month's end rolls into the next month: refuse it.
    rolled = valid & (days.astype("datetime64[M]") != np.array(months, dtype="datetime64[M]"))
    bad = ~valid | rolled
    if bad.any():
        text = np.asarray(texts, dtype=object)[filled][int(np.argmax(bad))]
        raise DateColumnError(f"{prefix}: {_show(text)} is not a calendar date (expected {EXPECTED})", text)
    result[filled] = days.astype("datetime64[s]")
    return result


def _show(value) -> str:
    text = str(value)
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(value: str | dt.date) -> dt.date:
    """A date given by a person (the CLI's ``--start-date``, the API's date fields): ``YYYY-MM-DD`` only.

    One rule for every entry point, the JSON schema's ``format: date`` (RFC 3339 ``full-date``): four-digit
    year, two-digit month and day, a real calendar date. A ``datetime.date`` passes through; a datetime,
    a number, ``20220103`` or ``2022-W01-1`` (which ``date.fromisoformat`` accepts) are refused.

    Parameters
    ----------
    value : str or datetime.date
        ``YYYY-MM-DD`` text, or a date.

    Returns
    -------
    datetime.date
        The date.

    Raises
    ------
    ValueError
        ``'<value>' is not a date (use YYYY-MM-DD)``.

    References
    ----------
    .. [1] RFC 3339, Date and Time on the Internet: Timestamps, section 5.6 (``full-date``).
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"'{value}' is not a date (use YYYY-MM-DD)")
