"""Every experiment of ntknotes.experiments follows one protocol: fn(config="ci", *, key=None, ...).

An experiment is a public function of an ``ntknotes.experiments`` module that returns a
:class:`~ntknotes.experiments.common.Result` dataclass. Its first parameter is ``config`` with
the default ``"ci"``; every other parameter is keyword-only, among them ``key`` with the default
None; an unknown preset name raises ValueError naming the valid ones, and a config object of
another experiment raises TypeError, both before anything is computed.
"""
import importlib
import inspect
import pkgutil
import typing

import pytest

import ntknotes.experiments as pkg
from ntknotes.experiments.common import Result


def _experiments():
    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name == "common":
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for name, fn in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != mod.__name__:
                continue
            ret = typing.get_type_hints(fn).get("return")
            if isinstance(ret, type) and issubclass(ret, Result):
                found.append(pytest.param(fn, id=f"{info.name}.{name}"))
    return found


EXPERIMENTS = _experiments()


def test_the_experiments_are_found():
    names = {p.id for p in EXPERIMENTS}
    assert len(names) >= 25
    for expected in ("introduction.teaser", "in_practice.cnn_table", "ntk_recursion.depth_experiment",
                     "finite_width.run_grid", "deep_limit.classification", "linearization.ensemble"):
        assert expected in names


@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_signature_follows_the_protocol(fn):
    params = list(inspect.signature(fn).parameters.values())
    first, rest = params[0], params[1:]
    assert first.name == "config" and first.default == "ci"
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), [p.name for p in rest]
    key = [p for p in rest if p.name == "key"]
    assert key and key[0].default is None
    for p in rest:
        assert p.default is not inspect.Parameter.empty, f"{p.name} has no default"
    progress = [p for p in rest if p.name == "progress"]
    assert not progress or progress[0].default is False


@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_unknown_preset_and_foreign_config_are_refused(fn):
    with pytest.raises(ValueError, match=r"unknown scale preset 'huge' for config; valid names: \['default', 'ci', 'book', 'paper'\]"):
        fn("huge")

    class Other:
        pass

    with pytest.raises(TypeError, match="config must be a preset name .* or a .*Config, got Other"):
        fn(Other())


def test_progress_bar_writes_to_stderr_only_when_asked(capsys):
    from ntknotes.experiments.common import progress_bar

    items = [1, 2, 3]
    assert progress_bar(items, False, "sweep") is items
    assert capsys.readouterr().err == ""
    assert list(progress_bar(items, True, "sweep")) == items
    err = capsys.readouterr().err
    assert "sweep" in err and "3/3" in err
    with pytest.raises(TypeError, match="progress must be True or False, got int 1"):
        progress_bar(items, 1, "sweep")


def test_key_none_is_the_documented_fixed_key():
    import jax
    import numpy as np

    from ntknotes.experiments.common import resolve_key

    np.testing.assert_array_equal(resolve_key(None, 4), jax.random.PRNGKey(4))
    k = jax.random.key(7)
    assert resolve_key(k, 0) is k
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        resolve_key(3, 0)
