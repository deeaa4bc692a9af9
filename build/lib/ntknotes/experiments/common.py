"""Scale presets and saving/loading of experiment results.

A preset changes sizes, never code paths: ``ci`` (the default; each chapter runs in about a
minute on 2 CPU cores), ``book`` (what the website shows, if larger) and ``paper`` (the
papers' sizes, for a GPU).  Results are dataclasses of arrays and scalars, saved as one
``.npz`` file.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Type, TypeVar

import numpy as np

__all__ = ["SCALES", "resolve_scale", "Result", "save_result", "load_result", "cached"]

SCALES = ("ci", "book", "paper")
T = TypeVar("T")


def resolve_scale(scale: str, presets: Mapping[str, T]) -> T:
    """Look up a preset by name; ``"book"`` falls back to ``"ci"`` when a chapter defines none.

    The environment variable ``NTKNOTES_SCALE`` overrides the default ``"ci"`` only when
    ``scale`` is ``"default"``.
    """
    if scale == "default":
        scale = os.environ.get("NTKNOTES_SCALE", "ci")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    if scale == "book" and "book" not in presets:
        scale = "ci"
    if scale not in presets:
        raise ValueError(f"this experiment has no {scale!r} preset; available: {sorted(presets)}")
    return presets[scale]


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
