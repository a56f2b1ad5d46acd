"""The Dagster runs of a generation (or any run of the instance) as the API reports them."""

from __future__ import annotations

from datetime import datetime, timezone

# The tag every Dagster run of a generation request carries (the request's id): how its runs are found.
REQUEST_TAG = "scenarios/request_id"


def run_state(status: str) -> str:
    return {"SUCCESS": "success", "FAILURE": "failure", "CANCELED": "canceled", "CANCELING": "running",
            "STARTED": "running", "STARTING": "running"}.get(status, "queued")


def _iso(timestamp) -> str | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp.astimezone(timezone.utc).isoformat(timespec="seconds")
    return datetime.fromtimestamp(float(timestamp), timezone.utc).isoformat(timespec="seconds")


def dagster_runs(instance, ui: str | None, tags: dict | None = None, run_ids: list[str] | None = None) -> list[dict]:
    if instance is None:
        return []
    from dagster import RunsFilter

    records = instance.get_run_records(filters=RunsFilter(tags=tags, run_ids=run_ids), ascending=True,
                                       order_by="create_timestamp")
    return [
        {
            "run_id": rec.dagster_run.run_id,
            "job_name": rec.dagster_run.job_name,
            "partition": rec.dagster_run.tags.get("dagster/partition"),
            "status": rec.dagster_run.status.value,
            "created_at": _iso(rec.create_timestamp),
            "started_at": _iso(rec.start_time),
            "finished_at": _iso(rec.end_time),
            "dagster_ui_url": f"{ui}/runs/{rec.dagster_run.run_id}" if ui else None,
        }
        for rec in records
    ]


def ui_runs_url(ui: str | None, request_id: str) -> str | None:
    from urllib.parse import quote

    return f"{ui}/runs?q%5B%5D={quote(f'tag:{REQUEST_TAG}={request_id}', safe='')}" if ui else None


