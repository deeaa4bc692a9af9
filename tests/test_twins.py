"""Every chapter source book/NN_name.md has an up-to-date Colab twin book/NN_name.ipynb.

Regenerate a twin with ``.venv/bin/jupytext --to ipynb book/NN_name.md`` (or ``make twins``).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from conftest import BOOK, ROOT, chapter_sources, toc_files

CHAPTERS = chapter_sources()
IDS = [p.stem for p in CHAPTERS]
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def _cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters():
    assert CHAPTERS, "no chapter sources book/NN_name.md found"
    assert CHAPTERS[0].stem == "00_introduction"


def test_every_twin_has_a_source():
    orphans = sorted(p.name for p in BOOK.glob("[0-9][0-9]_*.ipynb") if not p.with_suffix(".md").exists())
    assert not orphans, f"notebooks without a MyST source: {orphans}"


def test_toc_lists_every_chapter():
    listed = toc_files()
    missing = sorted(f"book/{p.stem}" for p in CHAPTERS if f"book/{p.stem}" not in listed)
    assert not missing, f"chapters missing from _toc.yml: {missing}"
    absent = sorted(f for f in listed if not (ROOT / f"{f}.md").exists())
    assert not absent, f"_toc.yml entries without a source file: {absent}"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_twin_matches_source(md: Path):
    twin = md.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} is missing: run .venv/bin/jupytext --to ipynb {md.relative_to(ROOT)}"
    expected = _cells(jupytext.read(md))
    actual = _cells(nbformat.read(twin, as_version=4))
    if actual != expected:
        first = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), min(len(actual), len(expected)))
        pytest.fail(
            f"{twin.name} is out of sync with {md.name} (first difference at cell {first}; "
            f"{len(actual)} vs {len(expected)} cells): run .venv/bin/jupytext --to ipynb {md.relative_to(ROOT)}"
        )


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_twin_has_no_outputs(md: Path):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    with_output = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_output, f"{md.stem}.ipynb has outputs in cells {with_output}; commit twins without outputs"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "the twin needs the python3 kernelspec"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_first_code_cell_is_the_colab_installer(md: Path):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    code = _code_cells(nb)
    assert code, f"{md.name} has no code cells"
    installer = code[0]
    assert "remove-cell" in installer.metadata.get("tags", []), "the installer cell must be tagged remove-cell"
    src = installer.source
    assert 'find_spec("ntknotes") is None' in src, "the installer must only act when ntknotes is missing"
    assert f"ntknotes @ git+{REPO_URL}" in src, f"the installer should install from {REPO_URL} (_config.yml)"
    if "myst_nb" in "".join(c.source for c in code[1:]):
        assert '"myst-nb"' in src, "the chapter imports myst_nb (glue): the installer must install myst-nb too"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_second_code_cell_sets_the_style(md: Path):
    code = _code_cells(jupytext.read(md))
    if len(code) < 2:
        pytest.skip(f"{md.name} has only the installer cell (placeholder chapter)")
    assert "use_style()" in code[1].source, "the second code cell should call ntknotes.plotting.use_style()"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_installer_does_nothing_when_ntknotes_is_installed(md: Path, tmp_path: Path):
    # run the cell in a fresh interpreter where subprocess.run is booby-trapped: it must not be called
    src = _code_cells(jupytext.read(md))[0].source
    script = tmp_path / "installer.py"
    script.write_text(
        "import subprocess\n"
        "def _forbidden(*a, **k):\n"
        "    raise SystemExit('the installer tried to run ' + repr(a))\n"
        "subprocess.run = _forbidden\n" + src + "\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr or out.stdout


def test_installer_would_install_when_ntknotes_is_missing(tmp_path: Path):
    # the same cell, with ntknotes hidden: it must call pip exactly once with the repository URL
    src = _code_cells(jupytext.read(CHAPTERS[0]))[0].source
    script = tmp_path / "installer.py"
    script.write_text(
        "import importlib.util, subprocess\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'ntknotes' else _find(name, *a)\n"
        "calls = []\n"
        "subprocess.run = lambda *a, **k: calls.append(a[0])\n" + src + "\nprint(repr(calls))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    calls = eval(out.stdout.strip())  # noqa: S307 (our own repr)
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"], calls
    assert f"ntknotes @ git+{REPO_URL}" in calls[0]
