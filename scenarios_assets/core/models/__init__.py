"""The data model every layer passes around: scenarios and their sets and streams, severities and seeds,
the typed config, the one error type of bad input, units."""
