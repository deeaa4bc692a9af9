"""Shared paths and helpers for the test-suite (package tests, twins, packaging, site)."""
from __future__ import annotations

import re
from pathlib import Path

import jax
import pytest
import yaml

# The package follows JAX's precision mode and never sets it; the tests compare with theory to
# 1e-10 and so run in float64, switched on here before any test module creates an array.
jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTER_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every ``file:`` entry of a Jupyter Book table of contents, root first, in order."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapter_sources() -> list[Path]:
    """The chapter sources book/NN_name.md, sorted."""
    return sorted(p for p in BOOK.glob("[0-9][0-9]_*.md") if CHAPTER_RE.match(p.stem))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
