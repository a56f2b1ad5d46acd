#!/usr/bin/env bash
# `make ui`: the Dagster UI (dg dev: webserver + daemon) on the project's instance, and beside it the REST API
# (`scenarios serve`), which serves the report and the charts the UI shows in the catalog's metadata panel.
# PORT (default 3000): the UI; API_PORT (default 8000): the API. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's environment, active (dg warns when the active one differs from the project's .venv).
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"

PORT="${PORT:-3000}"
API_PORT="${API_PORT:-8000}"
UI="http://127.0.0.1:${PORT}"
# The code location reads it: the catalog's chart images and report link point at this API.
export SCENARIOS_API_URL="${SCENARIOS_API_URL:-http://127.0.0.1:${API_PORT}}"

.venv/bin/scenarios serve --host 127.0.0.1 --port "$API_PORT" --dagster-ui "$UI" --log-level warning &
api=$!
trap 'kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true' EXIT

# The global lineage opens with every group collapsed; this address opens them (the UI then remembers it).
groups="global@global:market_data,global@global:scenarios,global@global:metrics"
cat <<EOF
== Dagster UI      ${UI}
== asset lineage   ${UI}/asset-groups?expanded=${groups}
== scenario group  ${UI}/locations/scenarios/asset-groups/scenarios/lineage
== REST API        ${SCENARIOS_API_URL}/docs   (serves the charts of the catalog's metadata)
EOF
.venv/bin/dg dev --host 127.0.0.1 --port "$PORT"
