"""``python -m scenarios_assets.api run-request FILE``: the worker process of one generation request."""

import logging

from scenarios_assets.api.generation import worker_main

if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(worker_main(sys.argv[1:]))
