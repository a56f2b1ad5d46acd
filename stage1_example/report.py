"""(b) A non-Dagster stage-1 pipeline announcing new market data to the scenarios pipeline.

After writing the OHLCV file the scenarios location reads (``SCENARIOS_MARKET_DATA``), call

    python -m stage1_example.report http://127.0.0.1:3000 [--rows N]

or ``report_new_market_data(url)`` from Python. It records a materialisation of ``market_data/ohlcv`` on the
Dagster instance (``POST /report_asset_materialization/market_data/ohlcv``); the sensor
``scenarios_after_market_data`` sees it, reloads the market data from the source, and the scenario runs
follow. Only the standard library is used, as an external pipeline would.
"""

import argparse
import json
import sys
import urllib.request

ASSET_PATH = "market_data/ohlcv"


def report_new_market_data(webserver: str, metadata: dict | None = None, timeout: float = 10.0) -> dict:
    """POST the report; return the webserver's JSON answer (raises on an HTTP error)."""
    body = json.dumps({"metadata": metadata or {}, "description": "new data published by stage 1"}).encode()
    request = urllib.request.Request(
        f"{webserver.rstrip('/')}/report_asset_materialization/{ASSET_PATH}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Report new stage-1 market data to the Dagster webserver.")
    parser.add_argument("webserver", help="e.g. http://127.0.0.1:3000")
    parser.add_argument("--rows", type=int, help="rows published (recorded as metadata)")
    args = parser.parse_args(argv)
    answer = report_new_market_data(args.webserver, {"rows": args.rows} if args.rows is not None else None)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
