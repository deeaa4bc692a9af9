"""Experiments of the chapter "Deep-limit classifiers and φ_opt".

* :func:`case_table`: A, A', B, α and the case of a list of activations, as rows and as markdown;
* :func:`relu_offdiagonal`: K_L(x, x')/(L+1) of ReLU at large depths;
* :func:`singular_exponent`: the deep NNGP against ‖x − x'‖ and the fitted exponent;
* :func:`kernel_ratios`: K_L(x, x_i)/K_L(x, x_1) against depth (collapse for an even activation);
* :func:`slow_road`: how far the NTK and the NNGP are from their common limit, against depth;
* :func:`classification`: deep kernel classifiers on Dirichlet mixtures on S^d_+ against depth,
  with the Bayes, 1-NN, Hilbert-kernel and majority-vote baselines;
* :func:`consistency`: the limiting rules of φ_opt(d), erf and h_2 (1-NN) against the training
  size, as excess error over the Bayes classifier.

The experiments follow the protocol of :mod:`ntknotes.experiments.common`,
``fn(config="ci", *, key=None)``, with a configuration dataclass each (:class:`RatioConfig`,
:class:`ExponentConfig`, :class:`SlowRoadConfig`, :class:`ClassificationConfig`,
:class:`ConsistencyConfig`); the first three are deterministic and ignore the key.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import numpy as np

from .. import deep_limit as dl
from ..activations import Activation, erf, hermite, phi_opt, relu
from ..data.sphere import two_class_dirichlet
from ..stats import loglog_slope
from .._checks import check_key
from .common import Result, progress_bar, resolve_config, resolve_key

__all__ = [
    "case_table",
    "cases_markdown",
    "html_table",
    "cases_html",
    "RatioConfig",
    "RATIO_PRESETS",
    "RatioResult",
    "relu_offdiagonal",
    "ExponentConfig",
    "EXPONENT_PRESETS",
    "ExponentResult",
    "singular_exponent",
    "kernel_ratios",
    "SlowRoadConfig",
    "SLOW_ROAD_PRESETS",
    "SlowRoadResult",
    "slow_road",
    "ClassificationConfig",
    "PRESETS",
    "ACTIVATION_NAMES",
    "ClassificationResult",
    "classification",
    "ConsistencyConfig",
    "CONSISTENCY_PRESETS",
    "ConsistencyResult",
    "consistency",
]


# ----------------------------------------------------------------------------
# the table of cases
# ----------------------------------------------------------------------------
def case_table(activations: Sequence["str | Activation"]) -> list[dl.LimitCase]:
    """:func:`ntknotes.deep_limit.limit_case` of every activation, in order."""
    return [dl.limit_case(a) for a in activations]


def cases_markdown(cases: Sequence[dl.LimitCase]) -> str:
    """A markdown table with one row per case: activation, A, A', B, α, case."""
    rows = ["| activation | A | A' | B | α | deep limit |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for c in cases:
        alpha = "–" if math.isnan(c.alpha) else f"{c.alpha:.3f}"
        rows.append(f"| {c.name} | {c.A:.3f} | {c.A_prime:.3f} | {c.B:.3f} | {alpha} | {c.case} |")
    return "\n".join(rows).replace("-0.000", "0.000")


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain HTML table (header cells, then rows of already formatted strings)."""
    import html

    pad = ' style="padding: 0.1em 0.8em"'
    head = "".join(f"<th{pad}>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{pad}>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cases_html(cases: Sequence[dl.LimitCase]) -> str:
    """The table of :func:`cases_markdown` as HTML."""
    rows = []
    for c in cases:
        alpha = "–" if math.isnan(c.alpha) else f"{c.alpha:.3f}"
        rows.append([c.name] + [f"{v:.3f}".replace("-0.000", "0.000") for v in (c.A, c.A_prime, c.B)] + [alpha, c.case])
    return html_table(["activation", "A", "A'", "B", "α", "deep limit"], rows)


# ----------------------------------------------------------------------------
# kernels against depth
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RatioConfig:
    """Sizes of :func:`relu_offdiagonal`: the depths L and the correlations ρ of the pairs
    (non-negative: the data of this chapter lie on S^d_+)."""

    depths: tuple = (1000, 10000, 100000)
    rho: tuple = (0.0, 0.5, 0.9)


RATIO_PRESETS = {"ci": RatioConfig()}


@dataclasses.dataclass
class RatioResult(Result):
    """ReLU NTK off the diagonal: ``ratio[i, j]`` = K_L(ρ_j)/(L_i + 1) at ``depths[i]``, ``rho[j]``."""

    depths: np.ndarray
    rho: np.ndarray
    ratio: np.ndarray


def relu_offdiagonal(config: "str | RatioConfig" = "ci", *, key: "jax.Array | None" = None) -> RatioResult:
    """K_L(x, x')/(L+1) of the normalized ReLU NTK for pairs with correlations ``config.rho``.

    Deterministic: ``key`` is accepted (the protocol of :mod:`ntknotes.experiments.common`) and
    not used.
    """
    cfg = _resolve(config, RATIO_PRESETS, RatioConfig, key)
    rho = np.asarray(cfg.rho, float)
    out = dl.deep_kernel_profile(rho, list(cfg.depths), relu())
    d = np.asarray(out.depths)
    return RatioResult(d, rho, np.exp(np.asarray(out.log_ntk) - np.log(d + 1.0)[:, None]))


def _resolve(config, presets, cls, key):
    """resolve_config for the deterministic experiments, whose key is checked but not used."""
    cfg = resolve_config(config, presets, cls)
    if key is not None:
        check_key(key)
    return cfg


@dataclasses.dataclass(frozen=True)
class ExponentConfig:
    """Sizes of :func:`singular_exponent`.

    Attributes:
      activation: a singular-kernel activation (a name or an :class:`~ntknotes.activations.Activation`).
      depth: the depth L.
      u_min, n_u: ``n_u`` distances u = ‖x − x'‖ spaced logarithmically from ``u_min`` to √2.
      fit_range: the range of u over which the slope is fitted.
    """

    activation: "str | Activation" = "erf"
    depth: int = 1000
    u_min: float = 1e-5
    n_u: int = 61
    fit_range: tuple = (1e-4, 1e-1)


EXPONENT_PRESETS = {"ci": ExponentConfig()}


@dataclasses.dataclass
class ExponentResult(Result):
    """The normalized deep NNGP Σ_L/A'^{2L} against distance u = ‖x − x'‖, and the fitted exponent.

    ``fit_slope`` is the least-squares slope of log(Σ_L/A'^{2L}) against log u over ``fit_range``;
    the theory says −α.
    """

    name: str
    depth: int
    alpha: float
    u: np.ndarray
    normalized_nngp: np.ndarray
    fit_range: tuple
    fit_slope: float


def singular_exponent(config: "str | ExponentConfig" = "ci", *, key: "jax.Array | None" = None) -> ExponentResult:
    """The deep NNGP of a singular-kernel activation against ‖x − x'‖ and its log-log slope.

    Deterministic: ``key`` is accepted and not used.
    """
    cfg = _resolve(config, EXPONENT_PRESETS, ExponentConfig, key)
    activation, depth, fit_range = cfg.activation, cfg.depth, cfg.fit_range
    case = dl.limit_case(activation)
    if case.case != "singular kernel":
        raise ValueError(f"{case.name} is a {case.case!r} case, not a singular kernel")
    u = np.logspace(math.log10(cfg.u_min), math.log10(math.sqrt(2.0)), cfg.n_u)
    rho = np.clip(1.0 - 0.5 * u**2, 0.0, 1.0)
    out = dl.deep_kernel_profile(rho, [depth], activation, kind="nngp")
    norm = np.exp(np.asarray(out.log_nngp[0]) - 2.0 * depth * math.log(abs(case.A_prime)))
    sel = (u >= fit_range[0]) & (u <= fit_range[1])
    fit = loglog_slope(u[sel], norm[sel])
    return ExponentResult(case.name, int(depth), case.alpha, u, norm, tuple(fit_range), fit.slope)


def kernel_ratios(activation: "str | Activation", rho: Sequence[float], depths: Sequence[int], kind: str = "nngp") -> np.ndarray:
    """log10 of K_L(x, x_i)/K_L(x, x_1) for correlations ρ_i with x (ρ_1 the largest): (D, len(rho))."""
    r = np.asarray(rho, float)
    out = dl.deep_kernel_profile(r, list(depths), activation, kind="nngp" if kind == "nngp" else "both")
    lk = np.asarray(out.log_nngp if kind == "nngp" else out.log_ntk)
    return (lk - lk[:, [int(np.argmax(r))]]) / math.log(10.0)


@dataclasses.dataclass(frozen=True)
class SlowRoadConfig:
    """Sizes of :func:`slow_road`.

    Attributes:
      activation: a singular-kernel activation (a name or an Activation).
      u: distances ‖x − x'‖ of the pairs.
      depths: the depths L (None: 31 depths spaced logarithmically from 1 to 10⁵).
      reference_depth: the depth at which the NNGP stands for its limit.
    """

    activation: "str | Activation" = "erf"
    u: tuple = (0.1, 0.02)
    depths: "tuple | None" = None
    reference_depth: int = 400000


SLOW_ROAD_PRESETS = {"ci": SlowRoadConfig()}


@dataclasses.dataclass
class SlowRoadResult(Result):
    """Relative distance of the normalized NTK and NNGP from their common limit c(ρ), against depth.

    ``ntk_dev[i, j]`` = K_L/((L+1)A'^{2L} c) − 1 and ``nngp_dev[i, j]`` = Σ_L/(A'^{2L} c) − 1 at
    ``depths[i]`` for the pair at distance ``u[j]``; ``predicted[i, j]`` is the first-order law
    (α/2)·B/(B − 1)·(2/u^2)/L.
    """

    name: str
    depths: np.ndarray
    u: np.ndarray
    ntk_dev: np.ndarray
    nngp_dev: np.ndarray
    predicted: np.ndarray


def slow_road(config: "str | SlowRoadConfig" = "ci", *, key: "jax.Array | None" = None) -> SlowRoadResult:
    """Distance of the deep NTK and NNGP from their limit for pairs at distances ``config.u``.

    The limit c(ρ) is the NNGP Σ_L/A'^{2L} at ``reference_depth`` (it converges geometrically).
    Deterministic: ``key`` is accepted and not used.
    """
    cfg = _resolve(config, SLOW_ROAD_PRESETS, SlowRoadConfig, key)
    activation, reference_depth = cfg.activation, cfg.reference_depth
    case = dl.limit_case(activation)
    if case.case != "singular kernel":
        raise ValueError(f"{case.name} is a {case.case!r} case, not a singular kernel")
    u = np.asarray(cfg.u, float)
    depths = cfg.depths
    depths = np.unique(np.round(np.logspace(0, 5, 31)).astype(int)) if depths is None else np.asarray(depths)
    all_depths = np.concatenate([depths, [reference_depth]])
    out = dl.deep_kernel_profile(1.0 - 0.5 * u**2, all_depths, activation)
    lap = 2.0 * math.log(abs(case.A_prime))
    ls = np.asarray(out.log_nngp) - all_depths[:, None] * lap
    lk = np.asarray(out.log_ntk) - all_depths[:, None] * lap - np.log(all_depths + 1.0)[:, None]
    lim = ls[-1]
    pred = 0.5 * case.alpha * case.B / (case.B - 1.0) * (2.0 / u[None, :] ** 2) / depths[:, None]
    return SlowRoadResult(case.name, depths, u, np.expm1(lk[:-1] - lim), np.expm1(ls[:-1] - lim), pred)


# ----------------------------------------------------------------------------
# classification on Dirichlet mixtures
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClassificationConfig:
    """Sizes of the classification experiment.

    Attributes:
      dims: sphere dimensions d (data on S^d_+ ⊂ R^{d+1}).
      n_train, n_test: points per split.
      depths: depths L of the NTK classifiers.
      nngp_depths: depths of the NNGP classifiers.
      even_max_depth: the even activation's kernels underflow even in logs near L ≈ 1000
        (log K ~ 2^L log ρ), so its depths stop here.
      n_grid: grid size of the tabulated kernels (:func:`ntknotes.deep_limit.kernel_table`).
      ridge: added to the unit-diagonal Gram matrix (shallow polynomial kernels are low rank).
      n_bayes: fresh points for the Monte Carlo Bayes accuracy.
    """

    dims: tuple = (2, 4)
    n_train: int = 400
    n_test: int = 1600
    depths: tuple = (1, 10, 100, 1000, 10000, 100000)
    nngp_depths: tuple = (1000,)
    even_max_depth: int = 300
    n_grid: int = 1024
    ridge: float = 1e-5
    n_bayes: int = 100000


PRESETS = {
    "ci": ClassificationConfig(),
    "paper": ClassificationConfig(
        dims=(1, 2, 4, 8), n_train=10000, n_test=10000, nngp_depths=(50, 100, 200, 1000), n_grid=4096, n_bayes=1000000
    ),
}

ACTIVATION_NAMES = ("relu", "h_2", "erf", "phi_opt(d)")


def _activations(d: int) -> list[Activation]:
    return [relu(), hermite(2), erf(), phi_opt(int(d))]


@dataclasses.dataclass
class ClassificationResult(Result):
    """Test accuracies and agreement with the limiting rules, per dimension, activation and depth.

    Attributes:
      dims: (n_d,) sphere dimensions.
      names: activation names (:data:`ACTIVATION_NAMES`; φ_opt is φ_opt(d) for each d).
      cases: the deep-limit case of each activation.
      depths, nngp_depths: (D,) and (D',) depths of the NTK and NNGP classifiers.
      accuracy_ntk, agree_ntk: (n_d, 4, D) test accuracy, and the fraction of test points on which
        the classifier agrees with the activation's limiting rule (NaN past ``even_max_depth``):
        majority vote, 1-NN, or for a singular kernel the vote weighted by the exact limit kernel
        c(ρ) = lim Σ_L/A'^{2L} = R(u)/u^α (the NNGP at the largest depth).
      agree_hilbert_ntk: (n_d, 4, D) agreement with the pure Hilbert rule, weights u^{−α}
        (singular-kernel activations only, NaN otherwise).
      accuracy_nngp, agree_nngp: (n_d, 4, D') the same for the NNGP.
      baselines: name → (n_d,) test accuracy of "Bayes", "1-NN", "Hilbert (α = d)", "majority vote".
      bayes_mc: (n_d,) Monte Carlo Bayes accuracy on fresh points.
      n_train, n_test: sizes.
    """

    dims: np.ndarray
    names: list
    cases: list
    depths: np.ndarray
    nngp_depths: np.ndarray
    accuracy_ntk: np.ndarray
    agree_ntk: np.ndarray
    agree_hilbert_ntk: np.ndarray
    accuracy_nngp: np.ndarray
    agree_nngp: np.ndarray
    baselines: dict
    bayes_mc: np.ndarray
    n_train: int
    n_test: int


def classification(config: "str | ClassificationConfig" = "ci", *, key: "jax.Array | None" = None,
                   progress: bool = False) -> ClassificationResult:
    """Deep NTK and NNGP classifiers of ReLU, h_2, erf and φ_opt(d) on two-class Dirichlet mixtures.

    Kernels come from :func:`ntknotes.deep_limit.kernel_table` (one table per activation, shared
    across d where the activation does not depend on d); predictions from
    :func:`ntknotes.deep_limit.kernel_predict`.

    Args:
      config: a preset name ("ci", "paper"; see :mod:`ntknotes.experiments.common`) or a
        :class:`ClassificationConfig`.
      key: PRNG key for the data; None: ``PRNGKey(0)``.
      progress: a progress bar over the sphere dimensions.
    """
    cfg = resolve_config(config, PRESETS, ClassificationConfig)
    key = resolve_key(key, 0)
    kinds = {"ntk": np.asarray(cfg.depths), "nngp": np.asarray(cfg.nngp_depths)}
    all_depths = np.union1d(kinds["ntk"], kinds["nngp"])
    n_d = len(cfg.dims)
    acc = {k: np.full((n_d, 4, v.size), np.nan) for k, v in kinds.items()}
    agree = {k: np.full((n_d, 4, v.size), np.nan) for k, v in kinds.items()}
    agree_hilbert = np.full((n_d, 4, kinds["ntk"].size), np.nan)
    base = {k: np.zeros(n_d) for k in ("Bayes", "1-NN", "Hilbert (α = d)", "majority vote")}
    bayes_mc = np.zeros(n_d)
    tables: dict = {}
    for i, d in enumerate(progress_bar(cfg.dims, progress, "dimensions d")):
        kd, kb = jax.random.split(jax.random.fold_in(key, int(d)))
        mix = two_class_dirichlet(int(d))
        xtr, ytr = mix.sample(cfg.n_train, jax.random.fold_in(kd, 0))
        xte, yte = mix.sample(cfg.n_test, jax.random.fold_in(kd, 1))
        base["Bayes"][i] = np.mean(mix.bayes(xte) == yte)
        base["1-NN"][i] = np.mean(dl.nearest_neighbor(xtr, ytr, xte) == yte)
        base["Hilbert (α = d)"][i] = np.mean(dl.hilbert_rule(xtr, ytr, xte, float(d)) == yte)
        base["majority vote"][i] = np.mean(dl.majority_vote(ytr, cfg.n_test) == yte)
        bayes_mc[i] = mix.bayes_accuracy(cfg.n_bayes, kb)
        rho_tr, rho_te = dl.sphere_correlations(xtr), dl.sphere_correlations(xte, xtr)
        for j, act in enumerate(_activations(int(d))):
            cap = cfg.even_max_depth if j == 1 else np.inf
            if act not in tables:
                tables[act] = dl.kernel_table(act, all_depths[all_depths <= cap], n_grid=cfg.n_grid)
            tab = tables[act]
            case = dl.limit_case(act)
            limit = dl.limit_rule(case, xtr, ytr, xte)
            hilbert = limit
            if case.case == "singular kernel":
                limit = dl.weighted_vote(tab(rho_te, "nngp")[-1], ytr)
            for kind, depths in kinds.items():
                ktr, kte = tab(rho_tr, kind), tab(rho_te, kind)
                for m, depth in enumerate(depths):
                    if depth > cap:
                        continue
                    row = int(np.searchsorted(tab.depths, depth))
                    pred = dl.kernel_predict(ktr[row], kte[row], ytr, ridge=cfg.ridge)
                    acc[kind][i, j, m] = np.mean(pred == yte)
                    agree[kind][i, j, m] = np.mean(pred == limit)
                    if kind == "ntk" and case.case == "singular kernel":
                        agree_hilbert[i, j, m] = np.mean(pred == hilbert)
    cases = [dl.limit_case(a).case for a in _activations(2)]
    return ClassificationResult(
        np.asarray(cfg.dims), list(ACTIVATION_NAMES), cases, kinds["ntk"], kinds["nngp"],
        acc["ntk"], agree["ntk"], agree_hilbert, acc["nngp"], agree["nngp"], base, bayes_mc, int(cfg.n_train), int(cfg.n_test),
    )


# ----------------------------------------------------------------------------
# consistency: the limiting rules against the training size
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ConsistencyConfig:
    """Sizes of :func:`consistency`.

    Attributes:
      dim: sphere dimension d (data on S^d_+).
      sizes: training sizes n, increasing.
      n_test: test points (one test set for every n).
      repeats: independent training samples of the largest size; the smaller training sets are
        their first n points (their excess errors are averaged over the repeats).
      depth: depth at which the NNGP stands in for the limit kernel R(u)/u^α of a singular case.
      n_grid: grid of the tabulated kernels (:func:`ntknotes.deep_limit.kernel_table`).
    """

    dim: int = 4
    sizes: tuple = (100, 400, 1600, 6400)
    n_test: int = 2000
    repeats: int = 3
    depth: int = 100000
    n_grid: int = 256

    def __post_init__(self) -> None:
        sizes = tuple(int(n) for n in self.sizes)
        if not sizes or list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
            raise ValueError(f"sizes must be strictly increasing positive integers, got {self.sizes}")
        object.__setattr__(self, "sizes", sizes)


CONSISTENCY_PRESETS = {
    "ci": ConsistencyConfig(),
    "paper": ConsistencyConfig(sizes=(100, 400, 1600, 6400, 25600), n_test=5000, repeats=5, n_grid=1024),
}

CONSISTENCY_RULES = ("phi_opt(d)", "erf", "1-NN")


@dataclasses.dataclass
class ConsistencyResult(Result):
    """Excess error of the deep-limit rules over the Bayes classifier, against the training size.

    The excess error of a classifier g is E[|2η(x) − 1| 1{g(x) ≠ g*(x)}], with η(x) = P(y = +1 | x)
    and g* the Bayes classifier; it is estimated on the test points from the exact posterior,
    without label noise.

    Attributes:
      dim: sphere dimension d; sizes: (S,) training sizes; n_test, repeats: as configured.
      rules: names of the rules (:data:`CONSISTENCY_RULES`): the vote weighted by the limit kernel
        of φ_opt(d) (α = d) and of erf (α ≈ 0.89), and 1-NN (the limit of h_2).
      alphas: (2,) α of φ_opt(d) and erf.
      excess: (3, S) mean excess error over the repeats; excess_sd: (3, S) their standard deviation.
      bayes_accuracy: E[max(η, 1 − η)] over the test points.
      cover_hart: the large-n excess error of 1-NN, E[2η(1 − η)] − E[min(η, 1 − η)] over the test
        points (Cover and Hart's asymptotic 1-NN risk minus the Bayes risk).
    """

    dim: int
    sizes: np.ndarray
    n_test: int
    repeats: int
    rules: list
    alphas: np.ndarray
    excess: np.ndarray
    excess_sd: np.ndarray
    bayes_accuracy: float
    cover_hart: float


def _limit_log_kernels(tables: Sequence[dl.KernelTable], rho: np.ndarray) -> list[np.ndarray]:
    """log NNGP of each table's deepest row at ``rho``, linearly interpolated in the logit of ρ on a
    uniform grid 16 times finer than the table's (a vote needs the weights, not the spline's last
    digit); outside the grid (ρ < 7e-13 or ρ > 1 − 1e-12) the table's own spline is used."""
    r = np.clip(rho, 1e-300, 1.0 - dl.SAME_POINT_TOL)
    tau_rho = np.log(r) - np.log1p(-r)
    out = []
    for table in tables:
        tau = np.linspace(table.tau[0], table.tau[-1], 16 * table.tau.size)
        values = table(1.0 / (1.0 + np.exp(-tau)), "nngp")[-1]
        pos = (tau_rho - tau[0]) / (tau[1] - tau[0])
        outside = (pos < 0) | (pos > tau.size - 1)
        pos = np.clip(pos, 0.0, tau.size - 1.0)
        i = np.minimum(pos.astype(np.int64), tau.size - 2)
        w = pos - i
        lk = (1.0 - w) * values[i] + w * values[i + 1]
        if np.any(outside):
            lk[outside] = table(np.asarray(rho)[outside], "nngp")[-1]
        out.append(lk)
    return out


def consistency(config: "str | ConsistencyConfig" = "ci", *, key: "jax.Array | None" = None) -> ConsistencyResult:
    """The limiting rules of deep φ_opt(d), erf and h_2 networks against the training size.

    Each rule costs O(n m) for n training and m test points: the vote sign(Σ_i y_i c(ρ_i)) with the
    limit kernel c of the activation (the NNGP at ``depth``, read off a kernel table), or 1-NN.

    Args:
      config: a preset name ("ci", "paper"; see :mod:`ntknotes.experiments.common`) or a
        :class:`ConsistencyConfig`.
      key: PRNG key for the data; None: ``PRNGKey(0)``.
    """
    cfg = resolve_config(config, CONSISTENCY_PRESETS, ConsistencyConfig)
    key = resolve_key(key, 0)
    mix = two_class_dirichlet(cfg.dim)
    acts = (phi_opt(cfg.dim), erf())
    tables = [dl.kernel_table(a, [cfg.depth], n_grid=cfg.n_grid) for a in acts]
    x_test, _ = mix.sample(cfg.n_test, jax.random.fold_in(key, 0))
    eta = mix.posterior_plus(x_test)
    bayes = np.where(eta >= 0.5, 1.0, -1.0)
    cost = np.abs(2.0 * eta - 1.0)  # what a disagreement with the Bayes classifier costs at x
    excess = np.zeros((3, len(cfg.sizes), cfg.repeats))
    for r in range(cfg.repeats):
        # nested training sets: the first n points of one sample of the largest size
        x_all, y_all = mix.sample(cfg.sizes[-1], jax.random.fold_in(key, r + 1))
        rho_all = dl.sphere_correlations(x_test, x_all)
        log_k_all = _limit_log_kernels(tables, rho_all)
        for s, n in enumerate(cfg.sizes):
            y = y_all[:n]
            preds = [dl.weighted_vote(lk[:, :n], y) for lk in log_k_all]
            preds.append(dl.nearest_neighbor(x_all[:n], y, x_test))
            excess[:, s, r] = [np.mean(cost * (p != bayes)) for p in preds]
    cover_hart = float(np.mean(2.0 * eta * (1.0 - eta)) - np.mean(np.minimum(eta, 1.0 - eta)))
    return ConsistencyResult(
        int(cfg.dim), np.asarray(cfg.sizes), int(cfg.n_test), int(cfg.repeats), list(CONSISTENCY_RULES),
        np.array([dl.limit_case(a).alpha for a in acts]), excess.mean(axis=2), excess.std(axis=2),
        float(np.mean(np.maximum(eta, 1.0 - eta))), cover_hart,
    )
