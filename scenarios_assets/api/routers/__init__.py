"""One router per resource: health, catalog (builds, the catalog build), scenarios (list, detail, time
series), runs (generation, status, cancel), report (page and charts)."""
