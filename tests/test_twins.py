"""The chapter sources book/NN_name.md and their reader notebooks book/NN_name.ipynb.

The reader notebooks are generated (``make notebooks``, i.e.
``python book/_ext/reader_notebooks.py``): every MyST reference resolved, no outputs. These
tests keep them identical to what the generator makes now, test the generator on small
inputs, and check the conventions of the sources that the notebooks rely on outside Sphinx
(the pinned installer cell, float64 switched on explicitly, figures as ordinary outputs, no
myst-nb at run time, code lines that fit the page).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from conftest import BOOK, ROOT, chapter_sources, toc_files

sys.path.insert(0, str(BOOK / "_ext"))
import reader_notebooks as rn  # noqa: E402

CHAPTERS = chapter_sources()
IDS = [p.stem for p in CHAPTERS]
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
MAX_CODE_LINE = 88  # characters; longer lines overflow the code column of the website


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters():
    assert CHAPTERS, "no chapter sources book/NN_name.md found"
    assert CHAPTERS[0].stem == "00_introduction"


def test_every_notebook_has_a_source():
    orphans = sorted(p.name for p in BOOK.glob("[0-9][0-9]_*.ipynb") if not p.with_suffix(".md").exists())
    assert not orphans, f"notebooks without a MyST source: {orphans}"


def test_toc_lists_every_chapter():
    listed = toc_files()
    missing = sorted(f"book/{p.stem}" for p in CHAPTERS if f"book/{p.stem}" not in listed)
    assert not missing, f"chapters missing from _toc.yml: {missing}"
    absent = sorted(f for f in listed if not (ROOT / f"{f}.md").exists())
    assert not absent, f"_toc.yml entries without a source file: {absent}"


# --- the committed reader notebooks ---------------------------------------------------------


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_notebook_is_what_the_generator_makes(md: Path):
    twin = md.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} is missing: run `make notebooks`"
    expected = rn.render(rn.reader_notebook(md))
    if twin.read_text() != expected:
        actual = nbformat.reads(twin.read_text(), as_version=4).cells
        want = nbformat.reads(expected, as_version=4).cells
        first = next((i for i, (a, b) in enumerate(zip(actual, want)) if a != b), min(len(actual), len(want)))
        pytest.fail(f"{twin.name} differs from what the generator makes from {md.name} (first at cell "
                    f"{first}; {len(actual)} vs {len(want)} cells): run `make notebooks`")


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_notebook_reads_without_sphinx(md: Path):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "the notebook needs the python3 kernelspec"
    with_output = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_output, f"{md.stem}.ipynb has outputs in cells {with_output}"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            assert not rn.unresolved_myst(cell.source), f"cell {i}: {rn.unresolved_myst(cell.source)}"
    # every code cell of the source is there (the hidden glue-free ones included), in order
    source_code = [c.source for c in _code_cells(jupytext.read(md))[1:]
                   if "remove-cell" not in c.metadata.get("tags", [])]
    assert [c.source for c in _code_cells(nb)[1:]] == source_code


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_notebook_captions_every_figure(md: Path):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    names = [c.metadata["mystnb"]["figure"]["name"] for c in _code_cells(jupytext.read(md))
             if "figure" in c.metadata.get("mystnb", {})]
    captions = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("**Fig. ")]
    numbers = [re.match(r"\*\*Fig\. ([\d.]+)\.\*\*", c).group(1) for c in captions]
    assert len(numbers) == len(names), captions
    page = rn.book_index()[md.relative_to(ROOT).with_suffix("").as_posix()]
    assert numbers == [page.figures[n] for n in names]
    prefix = f"{page.number}." if page.number else ""
    assert numbers == [f"{prefix}{i}" for i in range(1, len(numbers) + 1)]


def test_numbers_restart_in_every_chapter():
    """The numbered parts of _toc.yml number chapters 1, 2, ... in reading order; chapter N's
    figures, equations and exercises are N.1, N.2, ... and its theorem blocks of each kind too;
    the introduction (the unnumbered root) counts 1, 2, ..."""
    chapter = 0
    for docname, numbered in rn.toc_order():
        page = rn.book_index().get(docname)
        if page is None:
            continue
        if numbered:
            chapter += 1
        assert page.number == (str(chapter) if numbered else None), docname
        prefix = f"{chapter}." if numbered else ""
        for numbers in (page.figures, page.equations, page.exercises):
            assert list(numbers.values()) == [f"{prefix}{i}" for i in range(1, len(numbers) + 1)], docname
        kinds = [kind for kind, _ in page.theorems.values()]
        for kind in set(kinds):
            got = [n for k, n in page.theorems.values() if k == kind]
            assert got == [f"{prefix}{i}" for i in range(1, len(got) + 1)], (docname, kind)
    assert chapter == len(rn.chapters()) - 1, "every chapter but the introduction is numbered"


def test_exercises_and_theorems_in_the_reader_notebooks():
    """Exercises, solutions and theorem blocks become numbered block quotes; the gated solution
    with code cells a heading; nothing of the directives is left."""
    for md in rn.chapters():
        page = rn.book_index()[md.relative_to(ROOT).with_suffix("").as_posix()]
        text = "\n".join(c.source for c in rn.reader_notebook(md).cells if c.cell_type == "markdown")
        for label, number in page.exercises.items():
            assert f"**Exercise {number}" in text, (md.name, label)
            assert f"**Solution to Exercise {number}.**" in text, (md.name, label, "no solution")
        for kind, number in page.theorems.values():
            assert f"**{kind} {number}" in text, (md.name, kind, number)


# --- the installer cell: one pinned install target ---------------------------------------


def test_install_target_comes_from_config_and_version():
    assert rn.install_spec() == f"ntknotes @ git+{REPO_URL}@v{VERSION}"
    src = rn.installer_source()
    assert rn.install_spec() in src and "myst" not in src.lower() and "sphinx" not in src.lower()


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_first_code_cell_is_the_installer(md: Path):
    installer = _code_cells(jupytext.read(md))[0]
    assert "remove-cell" in installer.metadata.get("tags", []), "the installer cell must be tagged remove-cell"
    assert installer.source == rn.installer_source(), (
        f"{md.name}: the installer cell differs from the canonical one: run `make notebooks`")


def _run_installer(tmp_path: Path, prelude: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "installer.py"
    script.write_text(prelude + rn.installer_source() + "\nprint(repr(calls))\n")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=env or {k: v for k, v in os.environ.items() if k != "NTKNOTES_SPEC"})


_RECORD = "import subprocess\ncalls = []\nsubprocess.run = lambda *a, **k: calls.append(a[0])\n"
_HIDE = ("import importlib.util\n_find = importlib.util.find_spec\n"
         "importlib.util.find_spec = lambda name, *a: None if name == 'ntknotes' else _find(name, *a)\n")


def test_installer_does_nothing_when_ntknotes_is_installed(tmp_path: Path):
    out = _run_installer(tmp_path, _RECORD)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr or out.stdout


def test_installer_installs_the_release_when_ntknotes_is_missing(tmp_path: Path):
    out = _run_installer(tmp_path, _HIDE + _RECORD)
    assert out.returncode == 0, out.stderr
    calls = ast.literal_eval(out.stdout.strip())
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", rn.install_spec()]], calls


def test_installer_honours_ntknotes_spec(tmp_path: Path):
    env = dict(os.environ, NTKNOTES_SPEC="/tmp/ntknotes-9.9-py3-none-any.whl")
    out = _run_installer(tmp_path, _HIDE + _RECORD, env)
    assert out.returncode == 0, out.stderr
    assert ast.literal_eval(out.stdout.strip())[0][-1] == "/tmp/ntknotes-9.9-py3-none-any.whl"


# --- conventions of the sources -----------------------------------------------------------


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_setup_cell_turns_on_float64_before_ntknotes(md: Path):
    code = _code_cells(jupytext.read(md))
    assert len(code) >= 2, f"{md.name} has only the installer cell"
    lines = code[1].source.splitlines()
    assert "use_style()" in code[1].source, "the setup cell should call ntknotes.plotting.use_style()"
    enable = next((i for i, l in enumerate(lines) if l.startswith('jax.config.update("jax_enable_x64", True)')), None)
    assert enable is not None, "the setup cell must call jax.config.update(\"jax_enable_x64\", True)"
    first_ntknotes = next(i for i, l in enumerate(lines) if re.match(r"(import|from) ntknotes\b", l))
    assert enable < first_ntknotes, "float64 must be switched on before ntknotes is imported"
    assert "float64" in code[1].source and "print(" in code[1].source, "the setup cell prints whether float64 is on"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_no_myst_nb_at_run_time(md: Path):
    text = md.read_text()
    assert "myst_nb" not in text and "glue(" not in text and "{glue:" not in text, (
        f"{md.name}: figures are cell outputs with `mystnb: figure:` metadata and numbers are printed; "
        "the notebooks must run without myst-nb")


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_figure_cells_have_a_name_and_caption(md: Path):
    for cell in _code_cells(jupytext.read(md)):
        fig = cell.metadata.get("mystnb", {}).get("figure")
        if fig is not None:
            assert fig.get("name", "").startswith("fig-") and fig.get("caption"), fig
            assert "plt.show()" in cell.source, f"{fig['name']}: the cell should show its figure (plt.show())"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_code_lines_fit_the_page(md: Path):
    long = [(i, line) for i, c in enumerate(jupytext.read(md).cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, (f"{md.name}: {len(long)} code lines longer than {MAX_CODE_LINE} characters, "
                      f"e.g. cell {long[0][0]}: {long[0][1]!r}")


# --- the generator on small inputs ---------------------------------------------------------


def _resolver(figures=None, equations=None) -> rn.Resolver:
    chapter = rn.Chapter("book/99_test", "Test", dict(figures or {}), dict(equations or {}))
    return rn.Resolver(chapter)


def test_references_become_plain_text():
    r = _resolver({"fig-a": "1", "fig-b": "2"}, {"eq-x": "3"})
    assert r.markdown("See {numref}`fig-b` and {eq}`eq-x`.") == "See Fig. 2 and Eq. (3)."
    assert r.markdown("{numref}`Figure %s <fig-a>`") == "Figure 1"
    assert r.markdown("in {mod}`ntknotes.dynamics` and {func}`~ntknotes.kernels.nngp`") == \
        "in `ntknotes.dynamics` and `nngp`"


def test_references_to_other_chapters():
    r = _resolver()
    assert r.markdown("{eq}`eq-intro-dynamics`") == "Eq. (1)"  # a label of 00_introduction
    link = r.markdown("{doc}`01_gradient_flow`")
    assert link == f"[Gradient flow and the NTK]({rn.site_url()}book/01_gradient_flow.html)"
    assert r.markdown("{doc}`the next chapter <02_gaussian_processes>`").startswith("[the next chapter](")


def test_citations_are_author_year():
    r = _resolver()
    assert r.markdown("{cite:p}`jacot2018neural`") == "(Jacot et al., 2018)"
    assert r.markdown("{cite:t}`jacot2018neural`") == "Jacot et al. (2018)"
    assert r.markdown("{cite}`jacot2018neural,lee2019wide`") == "(Jacot et al., 2018; Lee et al., 2019)"
    with pytest.raises(rn.UnresolvedMyST, match="nosuchkey"):
        r.markdown("{cite:p}`nosuchkey`")


def test_labelled_math_loses_its_label_and_shows_its_number():
    r = _resolver(equations={"eq-x": 4})
    out = r.markdown("$$\na = b\n$$ (eq-x)\n\ntext")
    assert out == "$$\na = b\n\\tag{4}\n$$\n\ntext"


def test_admonitions_targets_and_comments():
    r = _resolver()
    text = "(sec-a)=\n## A\n\n% a comment\n```{note}\nRead **this**.\n\nTwice.\n```\nend"
    assert r.markdown(text) == "## A\n\n> **Note.**\n> Read **this**.\n>\n> Twice.\nend"


@pytest.mark.parametrize("text, what", [
    ("{glue:text}`acc:.1f`", "glue:text"),
    ("{numref}`fig-missing`", "fig-missing"),
    ("{eq}`eq-missing`", "eq-missing"),
    ("{doc}`99_nowhere`", "99_nowhere"),
    ("```{figure} x.png\ncaption\n```", "figure"),
    ("```{note}\nnever closed", "unclosed"),
    (":::{solution} ex-none\nx\n:::", "ex-none"),
    (":::{solution-start} ex-none\n:::", "ex-none"),
    ("{prf:ref}`thm-none`", "thm-none"),
    ("{numref}`ex-none`", "ex-none"),
])
def test_what_cannot_be_resolved_is_an_error(text, what):
    with pytest.raises(rn.UnresolvedMyST, match=re.escape(what)):
        _resolver().markdown(text)


def test_exercises_solutions_and_theorems_become_numbered_quotes():
    chapter = rn.Chapter("book/99_test", "Test", number="4")
    chapter.exercises = {"ex-a": "4.1"}
    chapter.theorems = {"thm-a": ("Proposition", "4.1")}
    r = rn.Resolver(chapter)
    text = (":::{exercise} Title\n:label: ex-a\nShow it.\n:::\n\n"
            ":::{solution} ex-a\n:class: dropdown\nDone.\n:::\n\n"
            ":::{prf:proposition} Bound\n:label: thm-a\nTrue.\n:::\n\n"
            ":::{prf:proof}\nBecause.\n:::\n\n"
            "See {numref}`ex-a` and {prf:ref}`thm-a`.")
    assert r.markdown(text) == (
        "> **Exercise 4.1 (Title).**\n> Show it.\n\n"
        "> **Solution to Exercise 4.1.**\n> Done.\n\n"
        "> **Proposition 4.1 (Bound).**\n> True.\n\n"
        "> *Proof.* Because. ∎\n\n"
        "See Exercise 4.1 and Proposition 4.1.")
    gated = ":::{solution-start} ex-a\n:class: dropdown\n:::\nText.\n:::{solution-end}\n:::"
    assert r.markdown(gated) == "**Solution to Exercise 4.1.**\nText."


def test_an_exercise_without_a_label_is_an_error(tmp_path: Path):
    md = BOOK / "98_unlabelled_exercise_test.md"
    md.write_text("---\njupytext:\n  text_representation: {extension: .md, format_name: myst}\n"
                  "kernelspec: {display_name: Python 3, language: python, name: python3}\n---\n\n"
                  "# T\n\n:::{exercise}\nNo label.\n:::\n")
    try:
        with pytest.raises(rn.UnresolvedMyST, match="needs a :label:"):
            rn.scan_chapter(md)
    finally:
        md.unlink()


def test_remove_cells_go_and_the_installer_stays(tmp_path: Path, monkeypatch):
    md = BOOK / "99_generator_test.md"
    md.write_text(textwrap.dedent("""\
        ---
        jupytext:
          text_representation: {extension: .md, format_name: myst}
        kernelspec: {display_name: Python 3, language: python, name: python3}
        ---

        # A test page

        ```{code-cell} ipython3
        :tags: [remove-cell]

        print("installer")
        ```

        ```{code-cell} ipython3
        :tags: [remove-cell]

        hidden = 1
        ```

        ```{code-cell} ipython3
        ---
        mystnb:
          figure: {name: fig-t, caption: 'A caption with {eq}`eq-t`.'}
        ---
        shown = 2
        ```

        $$
        x
        $$ (eq-t)
        """))
    try:
        rn.book_index.cache_clear()
        nb = rn.reader_notebook(md)
    finally:
        md.unlink()
        rn.book_index.cache_clear()
    kinds = [(c.cell_type, c.source.split("\n")[0]) for c in nb.cells]
    assert kinds[0][1] == "# A test page"
    assert nb.cells[1].source == rn.installer_source()
    assert [c.source for c in nb.cells if c.cell_type == "code"][1:] == ["shown = 2"]
    assert "**Fig. 1.** A caption with Eq. (1)." in [c.source for c in nb.cells]
