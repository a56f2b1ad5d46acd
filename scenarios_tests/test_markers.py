"""The marker table of conftest.py names tests that exist, so a renamed slow test cannot slip into `make test`."""

import re
import subprocess
import sys
from pathlib import Path

from scenarios_tests.conftest import MARKED, marker_entries

TESTS = Path(__file__).parent
SELECTION = "not live and not browser and not postgres and not scale"


def test_every_marked_entry_selects_collected_tests():
    files = sorted({entry.split("::")[0] for _, entry in marker_entries()})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", " or ".join(MARKED),
         *(str(TESTS / f) for f in files)], capture_output=True, text=True, cwd=TESTS.parent, timeout=300)
    selected = [line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if "::" in line]
    broken = set(re.findall(r"^ERROR scenarios_tests/(\S+\.py)", proc.stdout, re.M))  # reported by their own run
    for marker, entry in marker_entries():
        if entry.split("::")[0] in broken:
            continue
        assert any(n == entry or n.startswith(entry if entry.endswith("::") else (entry + "[", entry + "::"))
                   for n in selected), f"{marker}: {entry} selects no test\n{proc.stdout[-1500:]}"
    assert len(selected) >= len(marker_entries()) - len(broken)
    assert f'TEST_SELECTION ?= {SELECTION}' in (TESTS.parent / "Makefile").read_text()
