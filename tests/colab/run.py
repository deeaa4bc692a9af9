"""Run the reader notebooks the way Colab does, and check what a reader would see.

For each chapter this script

1. makes (once, then reuses) a virtual environment with Colab's Python 3.12 and the packages
   Colab has preinstalled (``tests/colab/requirements.txt``: JAX 0.7, NumPy 2.0, matplotlib,
   ipykernel, ... and neither myst-nb nor Sphinx), with a Jupyter kernel of its own;
2. builds the ntknotes wheel from this checkout and removes any ntknotes from that
   environment, so the chapter's installer cell has to install it; the installer honours
   ``NTKNOTES_SPEC``, which points it at the wheel instead of the release on GitHub;
3. generates the chapter's reader notebook (``book/_ext/reader_notebooks.py``) and executes it
   top to bottom with nbclient in an empty working directory;
4. fails unless every code cell ran without error, the installer really installed ntknotes
   from the wheel, each figure cell left exactly one ``image/png`` output (one per figure the
   website shows, nothing else), no markdown cell contains an unresolved MyST role or
   directive, and nothing Sphinx-related was installed.

Usage::

    python tests/colab/run.py 03_ntk_recursion      # one chapter (make test)
    python tests/colab/run.py                        # every chapter (make colab)

Options: ``--python`` (a Python 3.12 interpreter; default: ``python3.12`` on PATH or under
pyenv), ``--workdir`` (default ``_build/colab``: the environment, the wheel and the executed
notebooks, kept for inspection), ``--timeout`` (seconds per cell).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
KERNEL = "ntknotes-colab"
FORBIDDEN = ("sphinx", "myst-nb", "myst-parser", "jupyter-book")


def _generator():
    """book/_ext/reader_notebooks.py, the generator of the reader notebooks."""
    if "reader_notebooks" not in sys.modules:
        path = ROOT / "book" / "_ext" / "reader_notebooks.py"
        spec = importlib.util.spec_from_file_location("reader_notebooks", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["reader_notebooks"] = module
        spec.loader.exec_module(module)
    return sys.modules["reader_notebooks"]


class ColabCheckError(RuntimeError):
    """A chapter did not run, or did not read, as it should in Colab."""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        raise ColabCheckError(f"command failed ({out.returncode}): {' '.join(map(str, cmd))}\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return out


def find_python(explicit: str | None) -> str:
    if explicit:
        candidates = [explicit]
    else:  # pyenv's own interpreters before PATH (a pyenv shim may refuse to run)
        candidates = [
            os.environ.get("COLAB_PYTHON"),
            *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True),
            *sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"), reverse=True),
            shutil.which("python3.12"),
        ]
    for c in candidates:
        if not (c and Path(c).exists()):
            continue
        probe = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        version = probe.stdout.strip()
        if probe.returncode == 0 and version == "3.12":
            return c
        if explicit:
            raise ColabCheckError(f"{c} is not a working Python 3.12 (Colab's version): {version or probe.stderr}")
    raise ColabCheckError("no Python 3.12 found (Colab's version): pass --python or set COLAB_PYTHON "
                          "(e.g. pyenv install 3.12)")


def colab_env(python: str, workdir: Path) -> Path:
    """The Colab-like environment in ``workdir/venv``, made once per requirements file."""
    venv = workdir / "venv"
    stamp = venv / ".colab-requirements"
    wanted = hashlib.sha256((REQUIREMENTS.read_text() + python).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating the Colab environment in {venv} ...", flush=True)
    _run([python, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    _run([py, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    _run([py, "-m", "ipykernel", "install", "--prefix", str(venv), "--name", KERNEL,
          "--display-name", "Python 3 (Colab check)"])
    stamp.write_text(wanted)
    return venv


def build_wheel(venv: Path, workdir: Path) -> Path:
    dist = workdir / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    _run([str(venv / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)])
    wheels = sorted(dist.glob("ntknotes-*.whl"))
    if len(wheels) != 1:
        raise ColabCheckError(f"expected one ntknotes wheel in {dist}, found {wheels}")
    return wheels[0]


def installed(venv: Path) -> dict[str, str]:
    out = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"])
    return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}


def check_chapter(md: Path, venv: Path, wheel: Path, workdir: Path, timeout: int) -> tuple[int, float]:
    """Execute the reader notebook of ``md`` in the Colab environment; return (figures, seconds)."""
    gen = _generator()
    nb = gen.reader_notebook(md)
    name = md.stem
    # Colab starts without ntknotes: the installer cell must install it.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "ntknotes"],
                   capture_output=True, text=True)
    # pip leaves files it did not install (Numba's on-disk cache in ntknotes/__pycache__): such a
    # directory would be imported as an empty namespace package and the installer would skip.
    for leftover in venv.glob("lib/python3.12/site-packages/ntknotes"):
        shutil.rmtree(leftover)
    figure_cells = [i for i, c in enumerate(nb.cells)
                    if c.cell_type == "markdown" and c.source.startswith("**Fig. ")]
    figure_cells = [i - 1 for i in figure_cells]  # the code cell before each caption
    expected = len(gen.book_index()[md.relative_to(ROOT).with_suffix("").as_posix()].figures)
    if len(figure_cells) != expected:
        raise ColabCheckError(f"{name}: {len(figure_cells)} captions for {expected} figures")

    env = dict(os.environ, NTKNOTES_SPEC=str(wheel), JUPYTER_PATH=str(venv / "share" / "jupyter"),
               PYDEVD_DISABLE_FILE_VALIDATION="1",
               PYTHONNOUSERSITE="1")
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND"):
        env.pop(key, None)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"colab-{name}-") as cwd:
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=False,
                                resources={"metadata": {"path": cwd}})
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            client.execute()
        except CellExecutionError as err:
            raise ColabCheckError(f"{name}: a cell failed in the Colab environment:\n{str(err)[-4000:]}") from None
        finally:
            os.environ.clear()
            os.environ.update(old)
    seconds = time.perf_counter() - start
    out = workdir / "executed" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)

    problems = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    not_run = [i for i, c in code if c.get("execution_count") is None]
    if not_run:
        problems.append(f"cells that did not run: {not_run}")
    errors = [i for i, c in code if any(o.output_type == "error" for o in c.outputs)]
    if errors:
        problems.append(f"cells with errors: {errors}")
    pngs = {i: sum("image/png" in o.get("data", {}) for o in c.outputs) for i, c in code}
    for i in figure_cells:
        if pngs.get(i) != 1:
            problems.append(f"figure cell {i} has {pngs.get(i, 0)} image/png outputs, not 1")
        shown = [o for o in nb.cells[i].outputs if o.output_type in ("display_data", "execute_result")]
        if len(shown) != 1:  # MyST-NB would wrap every one of them in the same numbered figure
            problems.append(f"figure cell {i} displays {len(shown)} outputs; only its figure belongs there")
    stray = {i: n for i, n in pngs.items() if n and i not in figure_cells}
    if stray:
        problems.append(f"image/png outputs outside the figure cells (cell: count): {stray}")
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            left = gen.unresolved_myst(c.source)
            if left:
                problems.append(f"markdown cell {i} has unresolved MyST: {left}")
    packages = installed(venv)
    if packages.get("ntknotes") != gen.package_version():
        problems.append(f"the installer did not install ntknotes {gen.package_version()} (found {packages.get('ntknotes')})")
    sphinxy = sorted(p for p in packages if p.startswith(FORBIDDEN))
    if sphinxy:
        problems.append(f"Sphinx-related packages were installed: {sphinxy}")
    if problems:
        raise ColabCheckError(f"{name} (executed copy: {out}):\n  " + "\n  ".join(problems))
    return len(figure_cells), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the reader notebooks in a Colab-like environment.")
    parser.add_argument("chapters", nargs="*", help="chapter names (e.g. 03_ntk_recursion); default: all")
    parser.add_argument("--python", help="a Python 3.12 interpreter")
    parser.add_argument("--workdir", type=Path, default=ROOT / "_build" / "colab")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    every = sorted((ROOT / "book").glob("[0-9][0-9]_*.md"))
    if args.chapters:
        by_name = {p.stem: p for p in every}
        unknown = [c for c in args.chapters if c.removesuffix(".md").split("/")[-1] not in by_name]
        if unknown:
            parser.error(f"no such chapters: {unknown}; choose from {sorted(by_name)}")
        selected = [by_name[c.removesuffix(".md").split("/")[-1]] for c in args.chapters]
    else:
        selected = every
    total = time.perf_counter()
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
        venv = colab_env(find_python(args.python), args.workdir)
        versions = installed(venv)
        print("Colab environment: Python 3.12, " + ", ".join(
            f"{p} {versions[p]}" for p in ("jax", "numpy", "numba", "matplotlib") if p in versions), flush=True)
        wheel = build_wheel(venv, args.workdir)
        print(f"wheel: {wheel.name}", flush=True)
        for md in selected:
            figures, seconds = check_chapter(md, venv, wheel, args.workdir, args.timeout)
            print(f"ok  {md.stem}: every cell ran, {figures} figures as image/png, "
                  f"no unresolved MyST ({seconds:.0f} s)", flush=True)
    except ColabCheckError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print(f"{len(selected)} chapter(s) passed the Colab check in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
