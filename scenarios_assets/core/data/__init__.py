"""Data access: market-data sources (files, PostgreSQL), the input contract, dates, exchange sessions and
each symbol's calendar, the bundled data's paths, and a user's config file."""
