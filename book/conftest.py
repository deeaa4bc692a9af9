"""pytest options for the chapter run (nbval over ``book/NN_name.ipynb``).

``--executed-dir DIR`` keeps what nbval computed: after the run, every chapter whose cells all
passed is written to ``DIR/NN_name.ipynb`` with the outputs each cell produced (streams, rich
displays, figures). ``book/_ext/executed_cache.py`` then hands these outputs to the book build,
so that ``make test`` executes each chapter once, not twice (nbval, then Sphinx). Without the
option nothing is written.

Works under pytest-xdist with ``--dist loadfile``: a chapter's cells all run on one worker,
which writes that chapter when it finishes.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--executed-dir", default=None, metavar="DIR",
        help="write each fully passed chapter, with the outputs nbval computed, to DIR",
    )


class _Recorder:
    """Collects each notebook's cells, their outputs and whether every phase passed."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.cells: dict[Path, dict[int, list]] = {}
        self.failed: set[Path] = set()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        cell = getattr(item, "cell", None)
        if cell is None or not hasattr(item, "cell_num"):
            return  # not an nbval cell
        path = Path(str(item.fspath)).resolve()
        report = outcome.get_result()
        if not report.passed:
            self.failed.add(path)
        if call.when == "call" and report.passed:
            self.cells.setdefault(path, {})[item.cell_num] = list(item.test_outputs or [])

    def pytest_sessionfinish(self, session):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for path, outputs in self.cells.items():
            if path in self.failed:
                continue
            nb = nbformat.read(path, as_version=4)
            code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
            if sorted(outputs) != list(range(len(code))):
                continue  # some cell did not run (skipped or deselected)
            for k, i in enumerate(code):
                count = k + 1
                nb.cells[i].outputs = outputs[k]
                nb.cells[i].execution_count = count
                for out in outputs[k]:
                    if out.get("output_type") == "execute_result":
                        out["execution_count"] = count
            nbformat.validate(nb)
            nbformat.write(nb, self.out_dir / path.name)


def pytest_configure(config):
    out = config.getoption("--executed-dir", default=None)
    if out:
        config.pluginmanager.register(_Recorder(Path(out).resolve()), "ntknotes-executed-dir")
