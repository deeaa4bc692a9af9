"""Look at the built website as a reader would: every chapter page rendered in headless Chromium.

Runs after the book build (``make test`` orders it so). For every chapter page listed in
``_toc.yml`` the rendered DOM must show an h1 heading, at least one figure (for chapters with
code beyond the Colab installer), typeset math, working citation links, and a Colab launch
link to the chapter's ``.ipynb`` twin. MathJax must be served locally, and no internal link
of the site may be broken.

Environment: ``NTKNOTES_HTML`` (default ``_build/html``) and ``NTKNOTES_TOC`` (default
``_toc.yml``) point the test at another build, e.g. one made with ``--path-output``.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from conftest import CHAPTER_RE, ROOT, toc_files

HTML = Path(os.environ.get("NTKNOTES_HTML", ROOT / "_build" / "html"))
TOC = Path(os.environ.get("NTKNOTES_TOC", ROOT / "_toc.yml"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM = _chromium()
CHAPTERS = [f for f in toc_files(TOC) if f.startswith("book/") and CHAPTER_RE.match(f.split("/", 1)[1])]

if CHROMIUM is None:
    pytestmark = pytest.mark.skip(reason="Chromium not found (/usr/bin/chromium or `chromium` on PATH); "
                                  "`make test` installs it with apt when run as root")
elif not (HTML / "index.html").exists():
    pytestmark = pytest.mark.skip(reason=f"no built site at {HTML}: run `make book` or `make book-strict` first")


class _Collector(HTMLParser):
    """Tags with their attributes, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: (v or "") for k, v in attrs}))


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Collector()
    parser.feed(html)
    return parser.tags


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    return frozenset(a[k] for _, a in _tags(path.read_text(errors="replace")) for k in ("id", "name") if a.get(k))


@functools.lru_cache(maxsize=None)
def rendered_dom(page: str) -> str:
    """The DOM of ``HTML/page`` after Chromium ran its scripts (MathJax included)."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--dump-dom", (HTML / page).as_uri()],
            capture_output=True, text=True, timeout=180,
        )
    assert out.returncode == 0 and "<html" in out.stdout, f"Chromium failed on {page}: {out.stderr[-2000:]}"
    return out.stdout


def _source(chapter: str) -> str:
    return (ROOT / f"{chapter}.md").read_text()


def _is_placeholder(chapter: str) -> bool:
    """A chapter whose only code cell is the Colab installer."""
    return len(re.findall(r"^```\{code-cell\}", _source(chapter), flags=re.M)) <= 1


def _repo() -> str:
    url = CONFIG["repository"]["url"].rstrip("/")
    m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(\.git)?", url)
    assert m, f"repository.url in _config.yml should be a GitHub URL, got {url}"
    return m.group(1)


def test_there_are_chapter_pages():
    assert CHAPTERS, f"no chapters book/NN_name in {TOC}"
    missing = [c for c in CHAPTERS if not (HTML / f"{c}.html").exists()]
    assert not missing, f"chapters listed in {TOC.name} but not built: {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_heading(chapter):
    dom = rendered_dom(f"{chapter}.html")
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
    assert h1 and re.sub(r"<[^>]+>", "", h1.group(1)).strip(), f"{chapter}: no h1 heading"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_figures(chapter):
    if _is_placeholder(chapter):
        pytest.skip(f"{chapter} is a placeholder (no code beyond the installer)")
    dom = rendered_dom(f"{chapter}.html")
    page = HTML / f"{chapter}.html"
    images = [a.get("src", "") for t, a in _tags(dom) if t == "img"]
    figures = [s for s in images if "_images/" in s or s.startswith("data:image")]
    assert figures, f"{chapter}: no figure image in the rendered page (images: {images})"
    for src in figures:
        if not src.startswith("data:"):
            target = (page.parent / unquote(urlsplit(src).path)).resolve()
            assert target.is_file() and target.stat().st_size > 1000, f"{chapter}: figure {src} is missing or empty"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_math_is_typeset(chapter):
    if "$" not in _source(chapter):
        pytest.skip(f"{chapter} has no math")
    dom = rendered_dom(f"{chapter}.html")
    n = dom.count("<mjx-container")
    assert n > 0, f"{chapter}: MathJax produced no output (no mjx-container elements)"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_citations_link_to_the_bibliography(chapter):
    if "{cite" not in _source(chapter):
        pytest.skip(f"{chapter} cites nothing")
    page = HTML / f"{chapter}.html"
    links = [a["href"] for t, a in _tags(rendered_dom(f"{chapter}.html"))
             if t == "a" and "bibliography.html#" in a.get("href", "")]
    assert links, f"{chapter}: citations do not link to the bibliography"
    for href in links:
        target = page.parent / unquote(urlsplit(href).path)
        assert urlsplit(href).fragment in _ids(target.resolve()), f"{chapter}: citation {href} has no target"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_launch_link(chapter):
    want = f"https://colab.research.google.com/github/{_repo()}/blob/{CONFIG['repository'].get('branch', 'main')}/{chapter}.ipynb"
    hrefs = [a.get("href", "") for t, a in _tags(rendered_dom(f"{chapter}.html")) if t == "a"]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    assert want in colab, f"{chapter}: no Colab launch link to {want}; found {colab}"
    assert (ROOT / f"{chapter}.ipynb").exists(), f"the Colab twin {chapter}.ipynb is missing"


def test_mathjax_is_served_locally():
    pages = [p for p in HTML.rglob("*.html") if "_static" not in p.parts]
    for page in pages:
        scripts = [a["src"] for t, a in _tags(page.read_text(errors="replace"))
                   if t == "script" and "mathjax" in a.get("src", "").lower()]
        chapter = page.relative_to(HTML).with_suffix("").as_posix()
        if chapter in CHAPTERS and "$" in _source(chapter):
            assert scripts, f"{chapter} has math but loads no MathJax"
        for src in scripts:
            assert not urlsplit(src).scheme and not src.startswith("//"), f"{chapter}: MathJax from the network: {src}"
            target = (page.parent / unquote(urlsplit(src).path)).resolve()
            assert target.is_file() and HTML.resolve() in target.parents, f"{chapter}: {src} is not a local file"


def _internal_links(page: Path):
    for tag, attrs in _tags(page.read_text(errors="replace")):
        ref = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("img", "script") else None
        if not ref or ref.startswith(("#", "mailto:", "javascript:", "data:")):
            continue
        parts = urlsplit(ref)
        if parts.scheme or ref.startswith("//"):
            continue
        yield ref, parts


def test_no_broken_internal_links():
    broken = []
    pages = [p for p in HTML.rglob("*.html") if "_static" not in p.parts]
    assert len(pages) >= len(CHAPTERS)
    for page in pages:
        for ref, parts in _internal_links(page):
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(HTML)} -> {ref}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
                broken.append(f"{page.relative_to(HTML)} -> {ref} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:40])
