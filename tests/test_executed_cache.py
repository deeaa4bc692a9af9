"""`make test` executes each chapter once: nbval's outputs reach the book build.

Two pieces (see book/conftest.py and book/_ext/executed_cache.py):
nbval ``--executed-dir`` writes the chapters it passed with their outputs, and
``executed_cache.fill_cache`` puts those outputs into MyST-NB's execution cache under the
source's code cells, where the build's lookup (jupyter-cache's ``match_cache_notebook`` on the
notebook MyST-NB reads from the ``.md``) finds them.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import BOOK, chapter_sources

sys.path.insert(0, str(BOOK / "_ext"))
import executed_cache as ec  # noqa: E402
import reader_notebooks as rn  # noqa: E402


def _executed(md):
    """The reader notebook of ``md`` with a distinct stream output on every code cell."""
    nb = rn.reader_notebook(md)
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = k + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {k}\n")]
    return nb


def test_cache_holds_every_chapter_under_its_source_cells(tmp_path):
    from jupyter_cache import get_cache

    for md in chapter_sources():
        nbformat.write(_executed(md), tmp_path / f"{md.stem}.ipynb")
    status = ec.fill_cache(tmp_path, tmp_path / "cache")
    assert set(status.values()) == {"cached"}, status
    cache = get_cache(tmp_path / "cache")
    for md in chapter_sources():
        # what the book build does: look the source up, merge the cached outputs in
        _, nb = cache.merge_match_into_notebook(ec.source_notebook(md))
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.outputs[0]["text"] for c in code] == [f"cell {k}\n" for k in range(len(code))]


def test_a_chapter_that_differs_is_not_cached(tmp_path):
    md = chapter_sources()[0]
    nb = _executed(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].source += "\nprint('edited')"
    with pytest.raises(ValueError, match="differs"):
        ec.merged(md, nb)
    code[-1].source = code[-1].source.rsplit("\n", 1)[0]
    code[1].execution_count = None
    with pytest.raises(ValueError, match="not executed"):
        ec.merged(md, nb)
    nb.cells = [c for c in nb.cells if c is not code[-1]]
    with pytest.raises(ValueError, match="code cells"):
        ec.merged(md, nb)
    nbformat.write(nb, tmp_path / f"{md.stem}.ipynb")
    status = ec.fill_cache(tmp_path, tmp_path / "cache")
    assert status[md.name] != "cached" and "code cells" in status[md.name]


def test_nbval_writes_passed_chapters_with_their_outputs(tmp_path):
    shutil.copy(BOOK / "conftest.py", tmp_path / "conftest.py")
    good = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t"),
        nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)"),
        nbformat.v4.new_code_cell("x + 1"),
    ])
    bad = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('ran')"),
        nbformat.v4.new_code_cell("1 / 0"),
    ])
    for nb in (good, bad):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(good, tmp_path / "good.ipynb")
    nbformat.write(bad, tmp_path / "bad.ipynb")
    out = tmp_path / "executed"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
         "--executed-dir", str(out), "good.ipynb", "bad.ipynb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed" in run.stdout, run.stdout + run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.ipynb"]
    nb = nbformat.read(out / "good.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2]
    assert code[0].outputs[0]["text"] == "42\n"
    assert code[1].outputs[0]["data"]["text/plain"] == "43"
    assert code[1].outputs[0]["execution_count"] == 2
