"""A stand-in for the stage-1 market-data pipeline, in its own Dagster code location.

It shows the two ways stage 1 hands over to the scenarios pipeline (README, "Automation"):
(a) ``definitions.py``: the asset ``stage1/ohlcv`` in a second code location (``workspace.yaml`` here loads
    both). ``market_data/ohlcv`` of the scenarios location depends on that key across locations and
    refreshes by declarative automation when it materialises.
(b) ``report.py``: a non-Dagster pipeline telling the webserver that ``market_data/ohlcv`` has new data
    (``POST /report_asset_materialization/market_data/ohlcv``).
"""
