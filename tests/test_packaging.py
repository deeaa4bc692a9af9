"""The package, its two dependency lists and the README's two commands stay consistent."""
from __future__ import annotations

import re
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = yaml.safe_load((ROOT / "environment.yml").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    """name -> specifier of [project] dependencies plus the [book] and [test] extras."""
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in ("book", "test"):
        reqs += project["optional-dependencies"][extra]
    out: dict[str, SpecifierSet] = {}
    for line in reqs:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in out and out[name] != req.specifier:
            raise AssertionError(f"{name} appears in pyproject.toml with two specifiers: {out[name]} and {req.specifier}")
        out[name] = req.specifier
    return out


def _conda_spec(entry: str) -> tuple[str, SpecifierSet]:
    """Split a conda match spec such as ``jupyter-book>=1.0.4,<2`` into name and specifier."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", entry)
    if m is None:
        raise AssertionError(f"cannot parse the environment.yml entry {entry!r}")
    name, spec = m.groups()
    if spec.startswith("=") and not spec.startswith("=="):
        spec = "==" + spec[1:] + ".*"  # conda's "python=3.11" means 3.11.*
    return canonicalize_name(name), SpecifierSet(spec)


def _environment_requirements() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    """(conda entries, pip entries) of environment.yml, editable installs left out."""
    conda, pip = {}, {}
    for dep in ENV["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected mapping in environment.yml dependencies: {dep}"
            for line in dep["pip"]:
                if line.startswith("-e") or line.strip() == ".":
                    continue
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = req.specifier
        else:
            name, spec = _conda_spec(dep)
            conda[name] = spec
    return conda, pip


def _drift(wanted: dict[str, SpecifierSet], conda: dict, pip: dict) -> list[str]:
    """Every disagreement between pyproject's requirements and environment.yml's entries."""
    problems = [f"{n} is listed both as a conda and a pip package" for n in sorted(set(conda) & set(pip))]
    listed = {k: v for k, v in {**conda, **pip}.items() if k not in ("python", "pip")}
    problems += [f"{n} is in pyproject.toml but not in environment.yml" for n in sorted(set(wanted) - set(listed))]
    problems += [f"{n} is in environment.yml but not in pyproject.toml" for n in sorted(set(listed) - set(wanted))]
    problems += [
        f"{n}: pyproject.toml has {wanted[n]!s}, environment.yml {listed[n]!s}"
        for n in sorted(set(wanted) & set(listed))
        if wanted[n] != listed[n]
    ]
    return problems


def test_environment_yml_lists_the_same_packages_as_pyproject():
    problems = _drift(_pyproject_requirements(), *_environment_requirements())
    assert not problems, "environment.yml and pyproject.toml drifted apart:\n" + "\n".join(problems)


def test_drift_is_detected():
    wanted = _pyproject_requirements()
    conda, pip = _environment_requirements()
    assert "jupyter-book" in conda and "sphinx-mathjax-offline" in pip
    dropped = {k: v for k, v in conda.items() if k != "scipy"}
    assert _drift(wanted, dropped, pip) == ["scipy is in pyproject.toml but not in environment.yml"]
    assert _drift(wanted, {**conda, "torch": SpecifierSet()}, pip) == ["torch is in environment.yml but not in pyproject.toml"]
    bumped = {**conda, "jupyter-book": SpecifierSet(">=2")}
    assert _drift(wanted, bumped, pip) == ["jupyter-book: pyproject.toml has <2,>=1.0.4, environment.yml >=2"]
    assert _drift(wanted, conda, {**pip, "numpy": conda["numpy"]}) == ["numpy is listed both as a conda and a pip package"]
    assert _conda_spec("jupyter-book>=1.0.4,<2") == ("jupyter-book", SpecifierSet("<2,>=1.0.4"))
    assert _conda_spec("python=3.11") == ("python", SpecifierSet("==3.11.*"))


def test_environment_python_satisfies_requires_python():
    conda, _ = _environment_requirements()
    assert "python" in conda, "environment.yml should pin python"
    version = str(conda["python"]).removeprefix("==").removesuffix(".*")
    assert Version(version) in SpecifierSet(PYPROJECT["project"]["requires-python"])
    pip_lines = next(d["pip"] for d in ENV["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_lines, "environment.yml should install ntknotes itself (pip: -e .)"


def test_extras_and_pins():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) >= {"book", "test", "gpu"}
    gpu = [Requirement(r) for r in extras["gpu"]]
    assert any(r.name == "jax" and "cuda12" in r.extras for r in gpu), "[gpu] should install CUDA JAX"
    book = {canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in extras["book"]}
    assert "1.0.4" in book["jupyter-book"] and "2.0" not in book["jupyter-book"], "Jupyter Book must be 1.x"
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = req.specifier
    for name, spec in _pyproject_requirements().items():
        assert name in pins, f"{name} is not pinned in constraints.txt"
        pinned = next(iter(pins[name])).version
        assert spec.contains(pinned, prereleases=True), f"constraints.txt pins {name}=={pinned}, outside {spec}"


def test_package_version_matches_pyproject():
    import ntknotes

    assert ntknotes.__version__ == PYPROJECT["project"]["version"]


def test_ci_runs_make_test():
    run = ROOT / ".ci" / "run"
    text = run.read_text()
    assert run.stat().st_mode & 0o111, ".ci/run must be executable"
    commands = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert "make test" in commands, f".ci/run should call `make test`, has {commands}"
    assert "set -euo pipefail" in text


def test_readme_documents_the_two_commands():
    for phrase in ("make book", "make test", "_build/html", "pip install -e .", ".[gpu]", "Colab", "enable_x64"):
        assert phrase in README, f"README.md should mention {phrase!r}"


def _recipe(target: str) -> str:
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)*)", MAKEFILE, flags=re.M)
    assert m, f"the Makefile has no target {target!r}"
    return m.group(1)


def test_make_test_runs_every_stage():
    assert re.search(r"^test: \$\(STAMP\) chromium$", MAKEFILE, flags=re.M)
    recipe = _recipe("test")
    assert re.findall(r"\$\(MAKE\) (\S+)", recipe) == ["checks", "book-strict", "colab-one"]
    assert "tests/test_site.py" in recipe, "the page test runs after the strict build"
    assert "-W -n --keep-going" in _recipe("book-strict")
    assert "--nbval-lax" in _recipe("nbval")
    # checks = pytest and nbval in one session: every chapter and every test file but the page test
    checks = _recipe("checks")
    assert "--nbval-lax" in checks and "$(CHECK_CHAPTERS) $(CHECK_TESTS)" in checks
    assert "$(wildcard tests/test_*.py)" in MAKEFILE and "filter-out $(BIG_TESTS) tests/test_site.py" in MAKEFILE
    venv = _recipe("$(STAMP)")
    assert "-m venv" in venv and "-c constraints.txt" in venv and ".[book,test]" in venv
    assert "apt-get install" in _recipe("chromium")


def test_make_book_builds_into_build_html():
    recipe = _recipe("book")
    assert "jupyter-book build ." in recipe and "--path-output ." in recipe
    assert re.search(r"^book: \$\(STAMP\)", MAKEFILE, flags=re.M)


def test_stamp_is_rebuilt_when_dependencies_change():
    m = re.search(r"^\$\(STAMP\):(.*)$", MAKEFILE, flags=re.M)
    assert m and {"pyproject.toml", "constraints.txt"} <= set(m.group(1).split())


def test_python_is_supported():
    assert Version(".".join(map(str, sys.version_info[:3]))) in SpecifierSet(PYPROJECT["project"]["requires-python"])
