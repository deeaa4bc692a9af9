"""Look at the built website as a reader would: every chapter page rendered in headless Chromium.

Runs after the book build (``make test`` orders it so). For every chapter page listed in
``_toc.yml`` the rendered DOM must show an h1 heading; exactly one image per figure the source
defines (``mystnb: figure:`` cells), each in a ``<figure>`` numbered as the reader notebook
numbers it (equation numbers too); typeset math, no equation wider than the text column or
overlapping its number, no code block that scrolls sideways, no error in the browser console;
working citation links, a Colab launch link to the chapter's ``.ipynb`` reader notebook, and
a download button serving that same notebook. MathJax must be served locally, and no internal
link of the site may be broken.

Counting: images are the ``<img>`` elements inside the page's ``<article>`` after Chromium
ran the page's scripts; overflow and console errors are measured by scripts added to a copy of
the page (:func:`page_probe`) at a 1280 × 1000 window.

Environment: ``NTKNOTES_HTML`` (default ``_build/html``) and ``NTKNOTES_TOC`` (default
``_toc.yml``) point the test at another build, e.g. one made with ``--path-output``.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jupytext
import pytest
import yaml

from conftest import BOOK, CHAPTER_RE, ROOT, toc_files

sys.path.insert(0, str(BOOK / "_ext"))
import reader_notebooks as rn  # noqa: E402

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


# Injected into a copy of a chapter page: the first script records script errors, failed loads
# and console.error calls; the second, once the page (MathJax included) has settled, measures
# what overflows and writes everything as JSON into <pre id="ntk-probe">.
_RECORD_ERRORS = """<script>
window.__ntkErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__ntkErrors.push(t && t !== window && (t.src || t.href)
    ? "failed to load " + (t.src || t.href) : String(e.message));
}, true);
(function () {
  var original = console.error;
  console.error = function () {
    window.__ntkErrors.push(Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
})();
</script>"""
_MEASURE = """<script>
function __ntkMeasure() {
  var out = {errors: window.__ntkErrors, equations: [], code: [], images: 0};
  var article = document.querySelector("article") || document.body;
  out.images = article.querySelectorAll("img").length;
  article.querySelectorAll("div.math").forEach(function (div) {
    var math = div.querySelector("mjx-container mjx-math") || div.querySelector("mjx-container");
    if (!math) { return; }
    var box = div.getBoundingClientRect(), m = math.getBoundingClientRect();
    var eqno = div.querySelector(".eqno"), n = eqno ? eqno.getBoundingClientRect() : null;
    var id = div.id || (div.querySelector("[id]") || {}).id || div.textContent.slice(0, 40);
    if (m.right > box.right + 1 || m.left < box.left - 1 || div.scrollWidth > div.clientWidth + 1) {
      out.equations.push(id + ": the equation is wider than the text column");
    } else if (n && n.width > 0 && n.left < m.right - 1 && n.bottom > m.top && n.top < m.bottom) {
      out.equations.push(id + ": the equation overlaps its number");
    }
  });
  article.querySelectorAll("div.cell_input pre").forEach(function (pre) {
    if (pre.scrollWidth > pre.clientWidth + 1) {
      var lines = pre.textContent.split("\\n").sort(function (a, b) { return b.length - a.length; });
      out.code.push(lines[0]);
    }
  });
  var probe = document.createElement("pre");
  probe.id = "ntk-probe";
  probe.textContent = JSON.stringify(out);
  document.body.appendChild(probe);
}
window.addEventListener("load", function () {
  var ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
  ready.then(function () { setTimeout(__ntkMeasure, 500); });
});
</script>"""


@functools.lru_cache(maxsize=None)
def page_probe(page: str) -> dict:
    """Script errors, overflowing equations and code blocks, and image count of ``HTML/page``.

    The page is copied next to itself (so relative links resolve) with two scripts added, and
    rendered by Chromium at a laptop's window size.
    """
    original = HTML / page
    html = original.read_text(errors="replace")
    head = re.search(r"<head[^>]*>", html)
    assert head and "</body>" in html, f"{page}: no <head> or </body>"
    html = html[:head.end()] + _RECORD_ERRORS + html[head.end():]
    html = html.replace("</body>", _MEASURE + "</body>", 1)
    copy = original.with_name(f".probe-{original.name}")
    copy.write_text(html)
    try:
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1280,1000", "--virtual-time-budget=20000", "--dump-dom", copy.as_uri()],
                capture_output=True, text=True, timeout=240,
            )
    finally:
        copy.unlink()
    m = re.search(r'<pre id="ntk-probe">(.*?)</pre>', out.stdout, flags=re.S)
    assert m, f"{page}: the measuring script did not finish (Chromium: {out.stderr[-1500:]})"
    return json.loads(unescape(m.group(1)))


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


def _figure_names(chapter: str) -> list[str]:
    """The figures the chapter source defines (code cells with ``mystnb: figure:`` metadata)."""
    return [c.metadata["mystnb"]["figure"]["name"] for c in jupytext.read(ROOT / f"{chapter}.md").cells
            if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_figure_shown_once(chapter):
    """One image per figure of the source, each inside its numbered, captioned <figure>."""
    if _is_placeholder(chapter):
        pytest.skip(f"{chapter} is a placeholder (no code beyond the installer)")
    names = _figure_names(chapter)
    assert names, f"{chapter}: the source defines no figure"
    dom = rendered_dom(f"{chapter}.html")
    article = re.search(r"<article.*?</article>", dom, flags=re.S)
    assert article, f"{chapter}: no <article> in the page"
    tags = _tags(article.group(0))
    images = [a.get("src", "") for t, a in tags if t == "img"]
    assert len(images) == len(names), (
        f"{chapter}: {len(images)} images on the page for {len(names)} figures in the source "
        f"(a figure shown twice, or one missing): {images}")
    page = HTML / f"{chapter}.html"
    for src in images:
        if not src.startswith("data:"):
            target = (page.parent / unquote(urlsplit(src).path)).resolve()
            assert target.is_file() and target.stat().st_size > 1000, f"{chapter}: figure {src} is missing or empty"
    # every figure is a <figure id=name> with its image and "Fig. N" caption, N as the notebooks say
    numbers = rn.book_index()[chapter].figures
    for name in names:
        m = re.search(rf'<figure[^>]*\bid="{re.escape(name)}"[^>]*>(.*?)</figure>', article.group(0), flags=re.S)
        assert m, f"{chapter}: no <figure id={name!r}>"
        assert "<img" in m.group(1), f"{chapter}: figure {name} holds no image"
        caption = re.search(r'class="caption-number">\s*Fig\.\s*([\d.]+?)\.?\s*<', m.group(1))
        assert caption, f"{chapter}: figure {name} has no numbered caption"
        assert caption.group(1) == numbers[name], (
            f"{chapter}: {name} is Fig. {caption.group(1)} on the page but Fig. {numbers[name]} in the notebook")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_equation_numbers_match_the_notebooks(chapter):
    html = (HTML / f"{chapter}.html").read_text(errors="replace")
    for label, number in rn.book_index()[chapter].equations.items():
        m = re.search(rf'id="equation-{re.escape(label)}".*?class="eqno">\(([\d.]+)\)', html, flags=re.S)
        assert m, f"{chapter}: equation {label} has no number on the page"
        assert m.group(1) == number, (
            f"{chapter}: {label} is ({m.group(1)}) on the page but Eq. ({number}) in the notebook")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_console_errors(chapter):
    errors = page_probe(f"{chapter}.html")["errors"]
    assert not errors, f"{chapter}: {len(errors)} script errors in the console: {errors[:5]}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_equations_fit_the_text_column(chapter):
    bad = page_probe(f"{chapter}.html")["equations"]
    assert not bad, f"{chapter}: {bad}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_code_fits_the_code_column(chapter):
    wide = page_probe(f"{chapter}.html")["code"]
    assert not wide, f"{chapter}: {len(wide)} code blocks scroll sideways, e.g. {wide[0]!r}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_download_serves_the_reader_notebook(chapter):
    served = HTML / "_sources" / f"{chapter}.ipynb"
    assert served.exists(), f"{chapter}: the download button's {served.relative_to(HTML)} is missing"
    assert served.read_bytes() == (ROOT / f"{chapter}.ipynb").read_bytes(), (
        f"{chapter}: the download button serves another notebook than {chapter}.ipynb")


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
