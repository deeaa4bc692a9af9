"""Reader notebooks: the chapters as plain Jupyter notebooks, every MyST reference resolved.

The MyST sources ``book/NN_name.md`` are the one source of the book. Sphinx renders them for the
website; this module turns each into the notebook a reader opens in Colab or Jupyter, which
show MyST roles and directives as literal text. The result is committed as
``book/NN_name.ipynb`` (no outputs): the site's Colab button opens that file and its download
button serves it (:func:`setup` copies it into the built site).

What changes between the source and the reader notebook:

* ``{numref}`fig-x``` becomes "Fig. 3.2", ``{eq}`eq-x``` "Eq. (3.2)", ``{numref}`ex-x```
  "Exercise 3.2", ``{prf:ref}`thm-x``` "Theorem 3.1" (the numbers Sphinx gives: the numbered
  parts of ``_toc.yml`` make chapter N's figures, equations and exercises N.1, N.2, ..., and
  each kind of theorem block its own N.1, N.2, ...; the unnumbered introduction has 1, 2, ...;
  see :func:`book_index`; ``tests/test_site.py`` checks them against the built pages),
  ``{doc}`01_gradient_flow``` a link to that chapter's page on the website,
  ``{cite:p}``/``{cite:t}`` "(Author, Year)" / "Author (Year)" from ``book/references.bib``,
  ``{mod}``/``{func}``/``{class}`` inline code;
* ``$$ ... $$ (eq-x)`` loses its label and shows its number with ``\\tag``;
* a figure cell (code cell with ``mystnb: figure: {name, caption}`` metadata) is followed by
  a markdown cell "**Fig. N.** caption";
* admonitions become block quotes, ``(label)=`` targets and ``%`` comments disappear;
* an ``{exercise}`` becomes a block quote "**Exercise 3.2** (title)", a ``{solution}`` (folded on
  the website) a block quote "**Solution to Exercise 3.2.**", and the gated
  ``{solution-start}``/``{solution-end}`` pair (a solution with code cells) a heading line before
  its cells; ``{prf:theorem}`` and its kin become "**Theorem 3.1** (title)." block quotes and
  ``{prf:proof}`` a block quote "*Proof.* ... ∎";
* cells tagged ``remove-cell`` disappear, except the first code cell, the Colab installer,
  which is replaced by :func:`installer_source` (the one install target, from ``pyproject.toml``
  and ``_config.yml``).

Anything else written in MyST syntax (another role or directive, ``{glue:text}``) is an error:
:func:`reader_notebook` raises :class:`UnresolvedMyST` naming it, so nothing unresolved reaches
a reader.

Command line (``make notebooks``)::

    python book/_ext/reader_notebooks.py            # rewrite book/NN_name.ipynb
    python book/_ext/reader_notebooks.py --check    # exit 1 if any is out of date
    python book/_ext/reader_notebooks.py --sync-installers   # rewrite the sources' installer cells
"""
from __future__ import annotations

import argparse
import codecs
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
CHAPTER_GLOB = "[0-9][0-9]_*.md"

# A role ``{name}`content``` and the start of a directive (```{name} or :::{name}).
ROLE_RE = re.compile(r"\{([a-zA-Z][\w:+-]*)\}`([^`]*)`")
DIRECTIVE_RE = re.compile(r"^[ \t]*(`{3,}|:{3,})[ \t]*\{([\w:+-]+)\}[ \t]*(.*)$", re.M)
TARGET_RE = re.compile(r"^\([\w:.-]+\)=[ \t]*$", re.M)
LABELLED_MATH_RE = re.compile(r"^\$\$[ \t]*\n(.*?)\n\$\$[ \t]*\((?P<label>[\w:.-]+)\)[ \t]*$", re.S | re.M)
MYST_COMMENT_RE = re.compile(r"^%.*\n?", re.M)

ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
               "error", "seealso", "admonition"}
# sphinx-proof's numbered blocks (each kind numbered on its own) and its unnumbered proof
THEOREMS = {"prf:theorem", "prf:proposition", "prf:lemma", "prf:corollary", "prf:definition",
            "prf:conjecture", "prf:remark", "prf:example", "prf:property", "prf:observation",
            "prf:assumption", "prf:axiom", "prf:criterion", "prf:algorithm", "prf:notation"}
LABEL_OPTION_RE = re.compile(r"^:label:[ \t]*([\w:.-]+)[ \t]*$", re.M)
CODE_ROLES = {"mod", "func", "class", "meth", "attr", "obj", "data", "exc", "py:mod", "py:func",
              "py:class", "py:meth", "py:attr", "py:obj", "py:data", "py:exc"}


class UnresolvedMyST(ValueError):
    """A chapter uses MyST syntax that the reader-notebook generator cannot resolve."""


# --------------------------------------------------------------------------------------------
# The one install target


@lru_cache(maxsize=None)
def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def repository_url() -> str:
    """``repository.url`` of ``_config.yml``, without a trailing slash."""
    return str(_config()["repository"]["url"]).rstrip("/")


def package_version() -> str:
    """``project.version`` of ``pyproject.toml``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def site_url() -> str:
    """The website's address (``html.baseurl`` of ``_config.yml``), ending in a slash."""
    url = str(_config().get("html", {}).get("baseurl", "")).strip()
    if not url:
        raise UnresolvedMyST("_config.yml needs html.baseurl (the website's address) for chapter links")
    return url.rstrip("/") + "/"


def install_spec() -> str:
    """What the installer cell installs: the release tag ``v<version>`` of the repository."""
    return f"ntknotes @ git+{repository_url()}@v{package_version()}"


def installer_source() -> str:
    """The first code cell of every chapter: installs ntknotes where it is missing (Colab)."""
    return (
        "# Colab: install ntknotes (this page's release) when it is missing; does nothing where\n"
        "# it is installed. NTKNOTES_SPEC, if set, replaces what is installed (README: forks).\n"
        "import importlib.util, os, subprocess, sys\n"
        "\n"
        f'RELEASE = "{install_spec()}"\n'
        'if importlib.util.find_spec("ntknotes") is None:\n'
        '    spec = os.environ.get("NTKNOTES_SPEC", RELEASE)\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)'
    )


# --------------------------------------------------------------------------------------------
# What the references resolve to


@dataclass
class Chapter:
    """Numbers and titles Sphinx gives one chapter."""

    docname: str  # "book/01_gradient_flow"
    title: str
    figures: dict[str, str] = field(default_factory=dict)  # label -> "3.2" (or "2" unnumbered)
    equations: dict[str, str] = field(default_factory=dict)
    exercises: dict[str, str] = field(default_factory=dict)
    theorems: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> ("Theorem", "3.1")
    number: str | None = None  # the chapter's number in the table of contents


def _title(text: str, docname: str) -> str:
    m = re.search(r"^# (.+)$", text, re.M)
    if not m:
        raise UnresolvedMyST(f"{docname}: no '# Title' heading")
    return m.group(1).strip()


def _directive_blocks(text: str):
    """(name, argument, body lines) of every directive of ``text`` that starts a line, in order."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = DIRECTIVE_RE.match(line)
        if m:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == m.group(1)), len(lines))
            yield m.group(2), m.group(3).strip(), lines[i + 1:end]


def _theorem_kind(name: str) -> str:
    return name.removeprefix("prf:").capitalize()


def scan_chapter(md: Path) -> Chapter:
    """Title and the per-page counts (1, 2, ...) of figures, equations, exercises and theorem
    blocks of a page, in order of appearance; :func:`book_index` adds the chapter number."""
    docname = md.relative_to(ROOT).with_suffix("").as_posix()
    text = md.read_text()
    chapter = Chapter(docname, _title(text, docname))
    if md.match(CHAPTER_GLOB) or "kernelspec" in text.split("\n---", 1)[0]:
        nb = jupytext.read(md)
        cells = nb.cells
    else:
        cells = [nbformat.v4.new_markdown_cell(text)]
    for cell in cells:
        if cell.cell_type == "code":
            fig = cell.metadata.get("mystnb", {}).get("figure")
            if fig and fig.get("name"):
                chapter.figures[fig["name"]] = str(len(chapter.figures) + 1)
        elif cell.cell_type == "markdown":
            for m in LABELLED_MATH_RE.finditer(cell.source):
                chapter.equations[m["label"]] = str(len(chapter.equations) + 1)
            for name, _, body in _directive_blocks(cell.source):
                label = LABEL_OPTION_RE.search("\n".join(body))
                if name == "exercise":
                    if label is None:
                        raise UnresolvedMyST(f"{docname}: every exercise needs a :label: (its solution names it)")
                    chapter.exercises[label.group(1)] = str(len(chapter.exercises) + 1)
                elif name in THEOREMS:
                    kind = _theorem_kind(name)
                    count = sum(1 for k, _ in chapter.theorems.values() if k == kind) + 1
                    chapter.theorems[label.group(1) if label else f"_{kind}{count}"] = (kind, str(count))
    return chapter


def toc_order() -> list[tuple[str, bool]]:
    """(docname, numbered) for the pages of ``_toc.yml``, root (unnumbered) first, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    order = [(toc["root"], False)]

    def walk(entries, numbered):
        for entry in entries or []:
            if "file" in entry:
                order.append((str(entry["file"]).removesuffix(".md"), numbered))
            walk(entry.get("sections"), numbered)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), bool(part.get("numbered", False)))
    walk(toc.get("chapters"), bool(toc.get("defaults", {}).get("numbered", False)))
    return order


@lru_cache(maxsize=None)
def book_index() -> dict[str, Chapter]:
    """Every page under ``book/`` by docname, numbered as Sphinx numbers them here.

    The chapters of the numbered parts of ``_toc.yml`` are numbered 1, 2, ... in reading order
    (numbering continues across parts) and ``numfig_secnum_depth: 1`` prefixes every figure,
    equation, exercise and theorem block of chapter N with "N."; the root page (the
    introduction) and unnumbered pages count 1, 2, ... without a prefix.
    """
    pages = {c.docname: c for c in (scan_chapter(p) for p in sorted(BOOK.glob("*.md")))}
    chapter = 0
    for docname, numbered in toc_order():
        page = pages.get(docname)
        if page is None or not numbered:
            continue
        chapter += 1
        page.number = str(chapter)
        prefix = f"{chapter}."
        page.figures = {k: prefix + v for k, v in page.figures.items()}
        page.equations = {k: prefix + v for k, v in page.equations.items()}
        page.exercises = {k: prefix + v for k, v in page.exercises.items()}
        page.theorems = {k: (kind, prefix + v) for k, (kind, v) in page.theorems.items()}
    return pages


def _latex_to_text(s: str) -> str:
    s = codecs.decode(s, "ulatex")
    return s.replace("{", "").replace("}", "")


@lru_cache(maxsize=None)
def bibliography() -> dict[str, tuple[str, str]]:
    """Citation key -> (authors as cited, year), from ``book/references.bib``."""
    import latexcodec  # noqa: F401  (registers the "ulatex" codec)
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(BOOK / "references.bib")).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        if not last:
            raise UnresolvedMyST(f"references.bib: {key} has no author")
        names = last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."
        out[key] = (names, entry.fields.get("year", "n.d."))
    return out


def _explicit(content: str) -> tuple[str | None, str]:
    """``text <target>`` -> (text, target); ``target`` -> (None, target)."""
    m = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content.strip(), re.S)
    return (m.group(1).strip(), m.group(2).strip()) if m else (None, content.strip())


class Resolver:
    """Resolves the MyST of one chapter's markdown into plain Jupyter markdown."""

    def __init__(self, chapter: Chapter) -> None:
        self.chapter = chapter
        self.index = book_index()
        self._seen: dict[str, int] = {}  # theorem blocks met so far, by kind

    def _where(self) -> str:
        return self.chapter.docname + ".md"

    # roles ------------------------------------------------------------------------------
    def _figure(self, label: str, fmt: str | None) -> str:
        """A {numref}: a figure ("Fig. 3.2") or an exercise ("Exercise 3.2")."""
        for doc in [self.chapter, *self.index.values()]:
            for numbers, kind in ((doc.figures, "Fig."), (doc.exercises, "Exercise")):
                if label in numbers:
                    number = numbers[label]
                    return fmt.replace("%s", number).replace("{number}", number) if fmt else f"{kind} {number}"
        raise UnresolvedMyST(f"{self._where()}: no figure or exercise named {label!r}")

    def _theorem(self, content: str) -> str:
        text, label = _explicit(content)
        for doc in [self.chapter, *self.index.values()]:
            if label in doc.theorems:
                kind, number = doc.theorems[label]
                return text or f"{kind} {number}"
        raise UnresolvedMyST(f"{self._where()}: no theorem block labelled {label!r}")

    def _equation(self, label: str) -> str:
        for doc in [self.chapter, *self.index.values()]:
            if label in doc.equations:
                return f"Eq. ({doc.equations[label]})"
        raise UnresolvedMyST(f"{self._where()}: no equation labelled {label!r}")

    def _doc(self, content: str) -> str:
        text, target = _explicit(content)
        docname = target if target.startswith("/") else f"book/{target}"
        docname = docname.strip("/").removesuffix(".md")
        if docname not in self.index:
            raise UnresolvedMyST(f"{self._where()}: {{doc}} target {target!r} is not a page of the book")
        return f"[{text or self.index[docname].title}]({site_url()}{docname}.html)"

    def _cite(self, role: str, content: str) -> str:
        bib = bibliography()
        keys = [k.strip() for k in content.split(",") if k.strip()]
        unknown = [k for k in keys if k not in bib]
        if unknown:
            raise UnresolvedMyST(f"{self._where()}: citation keys not in references.bib: {unknown}")
        if role == "cite:t":
            return ", ".join(f"{bib[k][0]} ({bib[k][1]})" for k in keys)
        return "(" + "; ".join(f"{bib[k][0]}, {bib[k][1]}" for k in keys) + ")"

    def role(self, m: re.Match) -> str:
        name, content = m.group(1), m.group(2)
        if name == "numref":
            fmt, label = _explicit(content)
            return self._figure(label, fmt)
        if name == "eq":
            return self._equation(_explicit(content)[1])
        if name == "prf:ref":
            return self._theorem(content)
        if name == "doc":
            return self._doc(content)
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            return self._cite(name.rstrip("s") if name.endswith("s") and name != "cite" else name, content)
        if name in CODE_ROLES:
            text, target = _explicit(content)
            if text is None:
                target = target.lstrip(".")
                text = target.split(".")[-1] if target.startswith("~") else target
            return f"`{text.lstrip('~')}`"
        if name == "math":
            return f"${content}$"
        raise UnresolvedMyST(f"{self._where()}: the role {{{name}}} has no plain-markdown form ({m.group(0)!r})")

    # blocks -----------------------------------------------------------------------------
    def _math(self, m: re.Match) -> str:
        number = self.chapter.equations[m["label"]]
        return f"$$\n{m.group(1)}\n\\tag{{{number}}}\n$$"

    def _directives(self, text: str) -> str:
        out, lines, i = [], text.split("\n"), 0
        while i < len(lines):
            m = DIRECTIVE_RE.match(lines[i])
            if not m:
                out.append(lines[i])
                i += 1
                continue
            fence, name, arg = m.group(1), m.group(2), m.group(3).strip()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
            if end is None:
                raise UnresolvedMyST(f"{self._where()}: unclosed directive {{{name}}}")
            body = lines[i + 1:end]
            label = LABEL_OPTION_RE.search("\n".join(body))
            while body and re.match(r"^:[\w-]+:", body[0]):  # options
                body = body[1:]
            i = end + 1
            if name == "solution-end":  # the gated solution's cells end here: nothing to show
                continue
            if name == "solution-start":  # a heading line; the solution's cells follow
                out.append(f"**Solution to Exercise {self._exercise_number(arg)}.**")
                continue
            title = self._block_title(name, arg, label.group(1) if label else None)
            inner = self._directives("\n".join(body)).strip("\n").split("\n")
            if name == "prf:proof":
                inner[0] = f"*{title}.* {inner[0]}"
                inner[-1] += " ∎"
            else:
                out.append(f"> **{title}.**")
            out.extend(["> " + line if line else ">" for line in inner])
        return "\n".join(out)

    def _exercise_number(self, label: str) -> str:
        for doc in [self.chapter, *self.index.values()]:
            if label in doc.exercises:
                return doc.exercises[label]
        raise UnresolvedMyST(f"{self._where()}: a solution names {label!r}, which is no exercise")

    def _block_title(self, name: str, arg: str, label: str | None) -> str:
        """The bold title a directive's block quote starts with, numbered as the website numbers it."""
        if name in ADMONITIONS:
            return arg if name == "admonition" else (name.capitalize() + (f": {arg}" if arg else ""))
        if name == "exercise":
            return f"Exercise {self.chapter.exercises[label]}" + (f" ({arg})" if arg else "")
        if name == "solution":
            return f"Solution to Exercise {self._exercise_number(arg)}"
        if name == "prf:proof":
            return "Proof"
        if name in THEOREMS:
            kind = _theorem_kind(name)
            self._seen[kind] = self._seen.get(kind, 0) + 1
            prefix = f"{self.chapter.number}." if self.chapter.number else ""
            return f"{kind} {prefix}{self._seen[kind]}" + (f" ({arg})" if arg else "")
        raise UnresolvedMyST(f"{self._where()}: the directive {{{name}}} has no plain-markdown form")

    def markdown(self, text: str) -> str:
        text = MYST_COMMENT_RE.sub("", text)
        text = TARGET_RE.sub("", text)
        text = LABELLED_MATH_RE.sub(self._math, text)
        text = self._directives(text)
        text = ROLE_RE.sub(self.role, text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        left = unresolved_myst(text)
        if left:
            raise UnresolvedMyST(f"{self._where()}: unresolved MyST left: {left}")
        return text


def unresolved_myst(text: str) -> list[str]:
    """MyST roles, directives, targets and labelled-equation suffixes left in ``text``."""
    found = [m.group(0) for m in ROLE_RE.finditer(text)]
    found += [m.group(0).strip() for m in DIRECTIVE_RE.finditer(text)]
    found += [m.group(0) for m in TARGET_RE.finditer(text)]
    found += re.findall(r"^\$\$[ \t]*\([\w:.-]+\)[ \t]*$", text, re.M)
    return found


# --------------------------------------------------------------------------------------------
# The notebook


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def reader_notebook(md: Path) -> nbformat.NotebookNode:
    """The reader notebook of the chapter source ``md`` (no outputs)."""
    md = Path(md).resolve()
    chapter = book_index()[md.relative_to(ROOT).with_suffix("").as_posix()]
    resolver = Resolver(chapter)
    source = jupytext.read(md)
    cells, seen_code = [], False
    for cell in source.cells:
        tags = _tags(cell)
        if cell.cell_type == "code":
            first = not seen_code
            seen_code = True
            if first:
                if "remove-cell" not in tags:
                    raise UnresolvedMyST(f"{md.name}: the first code cell (the installer) must be tagged remove-cell")
                cells.append(nbformat.v4.new_code_cell(installer_source(), metadata={"tags": tags}))
                continue
            if "remove-cell" in tags:
                continue
            cells.append(nbformat.v4.new_code_cell(cell.source, metadata={"tags": tags} if tags else {}))
            fig = cell.metadata.get("mystnb", {}).get("figure")
            if fig:
                caption = resolver.markdown(" ".join(str(fig.get("caption", "")).split()))
                number = chapter.figures[fig["name"]]
                cells.append(nbformat.v4.new_markdown_cell(f"**Fig. {number}.** {caption}".rstrip()))
        elif cell.cell_type == "markdown":
            if "remove-cell" in tags:
                continue
            text = resolver.markdown(cell.source)
            if text:
                cells.append(nbformat.v4.new_markdown_cell(text))
        else:  # raw cells are for other output formats
            continue
    if not seen_code:
        raise UnresolvedMyST(f"{md.name}: no code cell (the installer is missing)")
    # a pointer to the website under the title
    head = cells[0] if cells and cells[0].cell_type == "markdown" else None
    link = (f"*Generated from the book's source; the chapter is also on the website: "
            f"[{chapter.title}]({site_url()}{chapter.docname}.html).*")
    if head is not None and head.source.startswith("# "):
        title, _, rest = head.source.partition("\n")
        head.source = f"{title}\n\n{link}" + (f"\n\n{rest.strip()}" if rest.strip() else "")
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The notebook as it is written to disk."""
    return nbformat.writes(nb, version=4) + "\n"


def chapters() -> list[Path]:
    return sorted(BOOK.glob(CHAPTER_GLOB))


def sync_installers() -> list[Path]:
    """Rewrite the installer cell of every chapter source to :func:`installer_source`."""
    changed = []
    for md in chapters():
        nb = jupytext.read(md)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if code and code[0].source != installer_source():
            code[0].source = installer_source()
            jupytext.write(nb, md, fmt="md:myst")
            changed.append(md)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    parser.add_argument("--sync-installers", action="store_true",
                        help="first rewrite the installer cell of every source from pyproject/_config")
    args = parser.parse_args(argv)
    if args.sync_installers:
        for md in sync_installers():
            print(f"installer updated: {md.relative_to(ROOT)}")
    stale = []
    for md in chapters():
        text = render(reader_notebook(md))
        twin = md.with_suffix(".ipynb")
        if not twin.exists() or twin.read_text() != text:
            stale.append(twin)
            if not args.check:
                twin.write_text(text)
    verb = "out of date" if args.check else "written"
    for twin in stale:
        print(f"{verb}: {twin.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


# --------------------------------------------------------------------------------------------
# Sphinx: the download button serves the reader notebook


def _serve_reader_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for md in chapters():
        twin = md.with_suffix(".ipynb")
        target = Path(app.outdir) / "_sources" / md.relative_to(ROOT).with_suffix(".ipynb")
        if twin.exists() and target.parent.exists():
            shutil.copyfile(twin, target)


def setup(app):
    """Replace the executed notebook that the theme's download button links to by the reader notebook."""
    app.connect("build-finished", _serve_reader_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main())
