"""How a scenario's time series and the report's files go out: content negotiation (Accept header or
``?format=``), JSON/CSV/Parquet streams in batches of BATCH_ROWS rows, file chunks, a scaled-down PNG."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scenarios_assets.api.errors import ApiError
from scenarios_assets.api.snapshot import Snapshot

MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/octet-stream": "parquet",
    "application/*": "json",
    "text/*": "csv",
    "*/*": "json",
}
BATCH_ROWS = 16_384


def negotiate(fmt: str | None, accept: str | None) -> str:
    if fmt:
        return fmt
    if not accept:
        return "json"
    choices = []
    for position, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media, q = pieces[0].lower(), 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in ACCEPT and q > 0:
            choices.append((-q, position, ACCEPT[media]))
    if not choices:
        raise ApiError(406, "unsupported Accept header: ask for application/json, text/csv or "
                            "application/vnd.apache.parquet (or use ?format=json|csv|parquet)")
    return min(choices)[2]


async def iterate(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


def scaled_png(png: bytes, width: int) -> bytes:
    """``png`` scaled down to ``width`` pixels wide, aspect kept (Pillow, Lanczos); unchanged when not wider."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.width <= width:
            return png
        height = max(1, round(image.height * width / image.width))
        out = io.BytesIO()
        image.resize((width, height), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
        return out.getvalue()


def file_chunks(source) -> Iterator[bytes]:
    with source:
        while chunk := source.read(1 << 20):
            yield chunk


def _prepare(data: pa.RecordBatch | pa.Table) -> pa.Table:
    """Dictionary columns as plain strings."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if pa.types.is_dictionary(col.type):
            table = table.set_column(i, name, col.cast(pa.string()))
    return table


def json_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    head = {"scenario_id": scenario_id, **snap.provenance}
    yield (json.dumps(head)[:-1] + ', "rows": [').encode()
    count, columns = 0, [c for c in table.column_names if c != "scenario_id"]
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        if batch.num_rows == 0:
            continue
        rows = _prepare(batch).drop_columns(["scenario_id"])
        for i, name in enumerate(columns):
            col = rows.column(i)
            if pa.types.is_date(col.type):
                rows = rows.set_column(i, name, col.cast(pa.string()))
            elif pa.types.is_floating(col.type):
                # The shortest decimal that reads back as this float32 (not its float64 expansion); NaN -> null.
                col = col.cast(pa.string()).cast(pa.float64())
                rows = rows.set_column(i, name, pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col))
        text = json.dumps(rows.to_pylist(), separators=(",", ":"), allow_nan=False)
        yield ((", " if count else "") + text[1:-1]).encode()
        count += batch.num_rows
    yield f'], "columns": {json.dumps(columns)}, "row_count": {count}}}'.encode()


def csv_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    import pyarrow.csv as pacsv

    first = True
    for batch in table.to_batches(max_chunksize=BATCH_ROWS) or [pa.RecordBatch.from_pylist([], table.schema)]:
        if batch.num_rows == 0 and not first:
            continue
        buffer = io.BytesIO()
        pacsv.write_csv(_prepare(batch), buffer, pacsv.WriteOptions(include_header=first, quoting_style="needed"))
        first = False
        yield buffer.getvalue()


def parquet_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    table = _prepare(table)
    schema = table.schema.with_metadata({b"generated_at": snap.generated_at.encode(),
                                         b"build_id": snap.build_id.encode(), b"scenario_id": scenario_id.encode()})
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)
    try:
        pq.write_table(table.replace_schema_metadata(schema.metadata), spool, compression="zstd")
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk
    finally:
        spool.close()


