from dagster import StaticPartitionsDefinition

from scenarios_assets.core.models.severity import SEVERITIES

severity_partitions = StaticPartitionsDefinition(list(SEVERITIES))
