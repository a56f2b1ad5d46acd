"""The thin Dagster layer: assets, checks, partitions, jobs, schedules, sensors and resources."""
