"""The experiment protocol: presets, keys, progress bars, and saving/loading of results.

Every experiment of ``ntknotes.experiments`` is called the same way::

    result = fn(config="ci", *, key=None, **options)

* ``config`` is a preset name or an instance of that experiment's configuration dataclass
  (built directly, or as ``dataclasses.replace(PRESETS["ci"], n_train=...)``) to change a size.
  The presets change sizes, never code paths: ``"ci"`` (the default; each chapter runs in a few
  minutes at most on 2 CPU cores), ``"book"`` (what the website shows; the same as ``"ci"``
  unless an experiment defines it) and ``"paper"`` (the papers' sizes, for a GPU).  The name
  ``"default"`` stands for the preset named by the environment variable ``NTKNOTES_SCALE``,
  else ``"ci"``.  An unknown name raises ValueError listing the valid ones.
* ``key`` is a JAX PRNG key; ``None`` means the experiment's fixed key (documented on each), so
  a call without a key is reproducible.  A deterministic experiment accepts and ignores it.
* further options are keyword-only, e.g. ``progress=True`` (a tqdm bar on stderr over the
  sweep of the experiments that run longer than a few seconds) or ``cache``/``path``.

Results are dataclasses of arrays and scalars, saved as one ``.npz`` file.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Type, TypeVar

import numpy as np

__all__ = ["SCALES", "resolve_scale", "resolve_config", "check_config", "resolve_key", "progress_bar", "Result",
           "save_result", "load_result", "cached"]

SCALES = ("ci", "book", "paper")
T = TypeVar("T")


def resolve_scale(scale: str, presets: Mapping[str, T], name: str = "scale") -> T:
    """Look up a preset by name; ``"book"`` falls back to ``"ci"`` when a chapter defines none.

    The environment variable ``NTKNOTES_SCALE`` overrides the default ``"ci"`` only when
    ``scale`` is ``"default"``.
    """
    if not isinstance(scale, str):
        raise TypeError(f"{name} must be a preset name (one of {['default', *SCALES]}), got {type(scale).__name__} {scale!r}")
    if scale == "default":
        scale = os.environ.get("NTKNOTES_SCALE", "ci")
    if scale not in SCALES:
        raise ValueError(f"unknown scale preset {scale!r} for {name}; valid names: {['default', *SCALES]}")
    if scale == "book" and "book" not in presets:
        scale = "ci"
    if scale not in presets:
        raise ValueError(f"{name}: this experiment has no {scale!r} preset; available: {sorted(presets)}")
    return presets[scale]


def resolve_config(config: Any, presets: Mapping[str, T], cls: type, name: str = "config") -> T:
    """The configuration an experiment runs with: a preset by name, or a ``cls`` instance checked.

    Args:
      config: a preset name (see :func:`resolve_scale`) or an instance of the dataclass ``cls``.
      presets: the experiment's presets by name.
      cls: the experiment's configuration dataclass.
      name: the argument's name, for messages.
    Returns:
      The configuration (``cls`` instance), its fields checked by :func:`check_config`.
    Raises:
      ValueError for an unknown preset name (the message lists the valid ones) or a field that
      is empty, negative or NaN where a size, a count or a scale is expected; TypeError when
      ``config`` is neither a string nor a ``cls``.
    """
    if isinstance(config, str):
        return check_config(resolve_scale(config, presets, name), name)
    if not isinstance(config, cls):
        raise TypeError(
            f"{name} must be a preset name (one of {['default', *SCALES]}) or a {cls.__name__}, "
            f"got {type(config).__name__}"
        )
    return check_config(config, name)


def resolve_key(key: Any, seed: int, name: str = "key") -> Any:
    """The PRNG key an experiment runs with: ``key`` checked, or ``jax.random.PRNGKey(seed)`` for None.

    Raises:
      TypeError / ValueError (from ``ntknotes._checks.check_key``) for anything that is not
      one JAX PRNG key.
    """
    import jax  # kept local: importing this module needs NumPy only

    from .._checks import check_key

    return jax.random.PRNGKey(seed) if key is None else check_key(key, name)


def progress_bar(iterable: Any, enabled: bool, desc: str, total: "int | None" = None) -> Any:
    """``iterable`` wrapped in a tqdm bar (on stderr, or a widget in Jupyter) when ``enabled``.

    Disabled (the experiments' default) it returns ``iterable`` itself and imports nothing, so
    nothing is written to stderr: the book is built with stderr output turned into an error.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"progress must be True or False, got {type(enabled).__name__} {enabled!r}")
    if not enabled:
        return iterable
    import warnings

    with warnings.catch_warnings():
        # tqdm.auto warns, then falls back to the text bar, in a Jupyter kernel without ipywidgets
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr)


def check_config(config: T, name: str = "config") -> T:
    """Check the fields of a configuration dataclass; returns it unchanged.

    The rules, by the type of each field's value (``None`` is skipped): an int is a size or a count
    and must be >= 1 (>= 0 for a field named ``*seed*``); a float must not be NaN or negative
    (infinity is allowed: e.g. the time t = ∞); a string must not be empty; a tuple or list must
    not be empty and its entries follow the same rules, except that integer entries may be 0
    (labels such as class 0, recorded step 0).

    Raises:
      ValueError / TypeError naming the field, e.g. ``config.widths is empty``.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{name} must be a configuration dataclass, got {type(config).__name__}")
    for field in dataclasses.fields(config):
        _check_field(getattr(config, field.name), f"{name}.{field.name}", "seed" in field.name, False)
    return config


def _check_field(value: Any, label: str, seed: bool, entry: bool) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, numbers.Integral):
        low = 0 if seed or entry else 1
        if value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value}")
    elif isinstance(value, numbers.Real):
        if math.isnan(value) or value < 0:
            raise ValueError(f"{label} must be a number >= 0, got {value}")
    elif isinstance(value, str):
        if not value:
            raise ValueError(f"{label} is an empty string")
    elif isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{label} is empty; it needs at least one entry")
        for i, v in enumerate(value):
            _check_field(v, f"{label}[{i}]", seed, True)


class Result:
    """Mixin for experiment-result dataclasses: ``save(path)`` and ``Cls.load(path)``."""

    def save(self, path: "str | os.PathLike") -> Path:
        return save_result(self, path)

    @classmethod
    def load(cls: Type[T], path: "str | os.PathLike") -> T:
        return load_result(cls, path)


def save_result(result: Any, path: "str | os.PathLike") -> Path:
    """Save a dataclass of arrays, numbers, strings and nested dicts/lists of those as ``.npz``."""
    if not dataclasses.is_dataclass(result):
        raise TypeError(f"save_result needs a dataclass instance, got {type(result).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, meta = {}, {}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if isinstance(value, (np.ndarray,)) or hasattr(value, "__array__") and not isinstance(value, (int, float)):
            arrays[field.name] = np.asarray(value)
        else:
            meta[field.name] = value
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, __meta__=np.array(json.dumps(meta, default=_json_default)), **arrays)
    os.replace(tmp, path)
    return path


def load_result(cls: Type[T], path: "str | os.PathLike") -> T:
    """Load what :func:`save_result` wrote into the dataclass ``cls``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved result at {path}")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    names = {f.name for f in dataclasses.fields(cls)}
    values = {**meta, **arrays}
    missing = names - set(values)
    if missing:
        raise ValueError(f"{path} lacks fields {sorted(missing)} of {cls.__name__}")
    return cls(**{k: v for k, v in values.items() if k in names})


def cached(path: "str | os.PathLike | None", cls: Type[T], compute: Callable[[], T]) -> T:
    """Load ``cls`` from ``path`` if present, else ``compute()`` it and save it there.

    ``path=None`` always computes (and saves nothing).
    """
    if path is not None and Path(path).exists():
        return load_result(cls, path)
    result = compute()
    if path is not None:
        save_result(result, path)
    return result


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a result's metadata")
