"""The marker table of conftest.py names tests that exist, so a renamed slow test cannot slip into `make test`."""

from pathlib import Path

import pytest

from scenarios_tests.conftest import MARKED, marker_entries

TESTS = Path(__file__).parent
SELECTION = "not live and not browser and not postgres and not scale"


class Collected:
    """Records what a nested collection selected and which files failed to import."""

    def __init__(self):
        self.nodes: list[str] = []
        self.broken: set[str] = set()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        self.nodes = [item.nodeid.rsplit("/", 1)[-1] for item in items]

    def pytest_collectreport(self, report):
        if report.failed:
            self.broken.add(Path(report.nodeid.split("::")[0]).name)


def test_every_marked_entry_selects_collected_tests():
    files = sorted({entry.split("::")[0] for _, entry in marker_entries()})
    present = [f for f in files if (TESTS / f).is_file()]
    assert len(present) >= len(files) - 1, f"marked files missing: {sorted(set(files) - set(present))}"
    collected = Collected()
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", " or ".join(MARKED),
                 *(str(TESTS / f) for f in present)], plugins=[collected])
    for marker, entry in marker_entries():
        # an import error is reported by that file's own run; one file may be on its way (a branch without it)
        if entry.split("::")[0] in collected.broken or entry.split("::")[0] not in present:
            continue
        assert any(n == entry or n.startswith(entry if entry.endswith("::") else (entry + "[", entry + "::"))
                   for n in collected.nodes), f"{marker}: {entry} selects no test"
    assert f'TEST_SELECTION ?= {SELECTION}' in (TESTS.parent / "Makefile").read_text()
