"""One module per chapter experiment: a function of (config, scale preset, key) returning a
result dataclass that can be saved and reloaded.  Import the chapter modules directly, e.g.
``from ntknotes.experiments import gradient_flow``."""
from .common import SCALES, Result, load_result, resolve_scale, save_result

__all__ = ["SCALES", "Result", "resolve_scale", "save_result", "load_result"]
