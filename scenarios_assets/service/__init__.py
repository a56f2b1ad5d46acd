"""The generation service shared by the command line and the REST API.

A :class:`~scenarios_assets.service.plan.GenerationRequest` (typed: what to generate, from where, into
where) becomes a validated :class:`~scenarios_assets.service.plan.Plan` (``build_plan``), which is checked
against the market data (``preflight.preflight``) and run as Dagster runs on the project's instance
(``run.run_plan``). The CLI builds the request from its flags (``cli/main.py``), the API from a JSON body
(``api/generation.py``); neither goes through the other.

Modules: ``plan`` (request -> plan, the output directory check), ``preflight`` (market data, footprint and
scheduler checks before anything runs), ``run`` (the Dagster runs, their locks and exit codes), ``progress``
(what a run shows while it executes), ``instance`` (the Dagster home), ``arguments`` (argparse whose errors
are one line).
"""
