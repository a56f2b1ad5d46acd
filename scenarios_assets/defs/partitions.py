from dagster import StaticPartitionsDefinition

from scenarios_assets.core.severity import SEVERITIES

severity_partitions = StaticPartitionsDefinition(list(SEVERITIES))
