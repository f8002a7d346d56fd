"""Fixtures and the human summary of the HIL scenarios.

Every scenario takes ``bench``: the bench file's VoltageStrategy with the DUT running (the
first scenario that asks powers it on; later ones reuse it, unless one left it off). A scenario
records its key figure with ``figure(...)``; it goes into the JUnit XML as a property and into
the summary printed at the end of the run (scenario, result, key figure).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import voltagehil  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

_RESULTS = {}


@pytest.fixture
def bench(strategy):
    """The DUT, powered and delivering data."""
    strategy.transition("running")
    return strategy


@pytest.fixture
def figure(record_property, request):
    """figure("cold boot to first sample: 12.3 s") records the scenario's key figure."""

    def record(text):
        record_property("figure", text)
        print(f"figure: {text}")
        _RESULTS.setdefault(request.node.nodeid, {})["figure"] = text

    return record


def pytest_runtest_logreport(report):
    r = _RESULTS.setdefault(report.nodeid, {})
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        r["outcome"] = report.outcome
        if report.skipped and isinstance(report.longrepr, tuple):
            r["figure"] = report.longrepr[2].removeprefix("Skipped: ")
        elif report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            msg = crash.message if crash is not None else str(report.longrepr).strip()
            r.setdefault("figure", " ".join(msg.split())[:160])
        r["seconds"] = r.get("seconds", 0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("HIL scenarios")
    for nodeid, r in _RESULTS.items():
        if "outcome" not in r:
            continue
        name = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
        tr.write_line(f"{name:<22} {r['outcome'].upper():<8} {r.get('seconds', 0):6.1f} s  {r.get('figure', '')}")
