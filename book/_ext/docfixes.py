"""Small Sphinx fixes so that the strict book build (-W -n) judges the docstrings' content.

1. Docstrings are written for readers of the source, so they use ``|x|`` for absolute values.
   In reStructuredText ``|x|`` is a substitution reference, an error when undefined. Outside
   literals, roles, literal blocks and tables, a ``|`` in a docstring is escaped to mean the
   character itself.
2. sphinx.ext.viewcode (Sphinx 7.4) marks modules without readable source (``builtins``,
   reached through an alias such as ``Params = list``) as ``False`` and writes no page for
   them, yet still lists them in ``_modules/index.html``, a broken link. Those entries are
   dropped just before viewcode collects its pages.
3. The theme's colour mode defaults to "" when Jupyter Book sets no ``default_mode``, which its
   script reports as an error in the console; it is set to "auto" (follow the reader's system).
4. sphinx-thebe and sphinx-togglebutton add their inline configuration scripts while the
   documents are read, after the HTML builder copied the registry; Sphinx 7.4 then lists each
   one twice on every page (``const THEBE_JS_URL`` declared twice is a console error). A page
   keeps the first of identical scripts.
"""
from __future__ import annotations

import re
from typing import Any

# ``literal``, :role:`text` and `interpreted text` stay as they are
_PROTECTED = re.compile(r"(``.+?``|(?::[\w:+-]+:)?`[^`]+`_{0,2})")


def escape_pipes(line: str) -> str:
    """``line`` with every ``|`` outside literals and roles escaped (tables and line blocks untouched)."""
    if "|" not in line or line.lstrip().startswith(("|", "+")):
        return line
    parts = _PROTECTED.split(line)
    return "".join(p if i % 2 else re.sub(r"(?<!\\)\|", r"\\|", p) for i, p in enumerate(parts))


def escape_docstring(lines: list[str]) -> list[str]:
    """Apply :func:`escape_pipes` to every line outside literal blocks (``::``) and doctests."""
    out, literal_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and line.strip() and indent <= literal_indent:
            literal_indent = None
        if literal_indent is not None or line.lstrip().startswith(">>>") or ".. code" in line:
            out.append(line)
        else:
            out.append(escape_pipes(line))
        if literal_indent is None and line.rstrip().endswith("::"):
            literal_indent = indent
    return out


def _process_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list) -> None:
    lines[:] = escape_docstring(lines)


def _drop_sourceless(app: Any) -> list:
    modules = getattr(app.builder.env, "_viewcode_modules", None)
    if modules:
        for name in [name for name, entry in modules.items() if entry is False]:
            del modules[name]
    return []


def _default_mode(app: Any, config: Any) -> None:
    # pydata-sphinx-theme (under sphinx-book-theme) reads it from html_context
    if not config.html_context.get("default_mode"):
        config.html_context["default_mode"] = "auto"


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # the builder's copy has filename "" where the registry's has None
    return (getattr(script, "filename", str(script)) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _unique_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Any) -> dict:
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _process_docstring, priority=600)  # after napoleon (500)
    app.connect("html-collect-pages", _drop_sourceless, priority=400)  # before viewcode (500)
    app.connect("config-inited", _default_mode)
    # early: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
