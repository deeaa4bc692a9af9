"""Hand the outputs of the chapter run (nbval) to the book build, so each chapter runs once.

``make test`` executes every chapter twice without this: nbval runs the reader notebooks
``book/NN_name.ipynb`` cell by cell, then Sphinx (MyST-NB) executes the sources
``book/NN_name.md`` again to put outputs on the pages. Both run the same code cells, in the same
order, in the same directory. nbval, given ``--executed-dir DIR`` (see ``book/conftest.py``),
writes each chapter it passed with its outputs to ``DIR/NN_name.ipynb``; this module puts those
outputs into MyST-NB's execution cache (jupyter-cache, ``_build/.jupyter_cache``) under the
source's own code cells, where the book build (``execute_notebooks: cache``) finds them and does
not execute the chapter again.

A chapter is cached only if its executed reader notebook has exactly the source's code cells
(same sources, same order; the reader notebook's installer cell is the source's, see
``reader_notebooks.installer_source``); anything else is reported and left for the book build
to execute. The cache is emptied first, so nothing from an earlier run survives.

Command line (``make test`` runs it between nbval and the book build)::

    python book/_ext/executed_cache.py _build/executed [--cache _build/.jupyter_cache]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
DEFAULT_CACHE = ROOT / "_build" / ".jupyter_cache"


def source_notebook(md: Path) -> nbformat.NotebookNode:
    """The notebook MyST-NB makes of the source ``md`` (the one its cache is keyed on)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    extensions = config.get("parse", {}).get("myst_enable_extensions", [])
    md_config = MdParserConfig(enable_extensions=set(extensions))
    return read_myst_markdown_notebook(md.read_text(), md_config, add_source_map=True, path=md)


def merged(md: Path, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The source notebook of ``md`` with the outputs of ``executed``, cell by cell.

    Raises ValueError when the two notebooks do not have the same code cells.
    """
    nb = source_notebook(md)
    src = [c for c in nb.cells if c.cell_type == "code"]
    run = [c for c in executed.cells if c.cell_type == "code"]
    if len(src) != len(run):
        raise ValueError(f"{md.name}: {len(src)} code cells in the source, {len(run)} executed")
    for k, (a, b) in enumerate(zip(src, run)):
        if a.source.strip() != b.source.strip():
            raise ValueError(f"{md.name}: code cell {k} differs between source and executed notebook")
        if b.get("execution_count") is None:
            raise ValueError(f"{md.name}: code cell {k} was not executed")
        a.outputs = b.outputs
        a.execution_count = b.execution_count
    return nb


def fill_cache(executed_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> dict[str, str]:
    """Empty the cache at ``cache_dir`` and add every chapter found in ``executed_dir``.

    Returns {chapter file name: "cached" or the reason it was not}.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache = get_cache(cache_dir)
    status = {}
    for md in sorted(BOOK.glob("[0-9][0-9]_*.md")):
        path = executed_dir / f"{md.stem}.ipynb"
        if not path.exists():
            status[md.name] = "not executed (no notebook in the executed directory)"
            continue
        try:
            nb = merged(md, nbformat.read(path, as_version=4))
        except ValueError as err:
            status[md.name] = str(err)
            continue
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(md)), check_validity=False, overwrite=True)
        status[md.name] = "cached"
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executed_dir", type=Path, help="the directory nbval --executed-dir wrote")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="jupyter-cache directory")
    args = parser.parse_args(argv)
    status = fill_cache(args.executed_dir.resolve(), args.cache.resolve())
    for name, what in status.items():
        print(f"{name}: {what}")
    missing = [n for n, s in status.items() if s != "cached"]
    if missing:
        print(f"{len(missing)} chapter(s) will be executed by the book build", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
