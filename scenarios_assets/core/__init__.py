"""Pure computational core: market data, scenario families, validation, storage. No Dagster imports."""
