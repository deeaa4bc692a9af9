"""Two-class Dirichlet mixtures moved onto the non-negative unit sphere, with their Bayes classifier.

A point of class c is drawn as p ~ Dirichlet(β_c) on the simplex Δ^d = {p ∈ R^{d+1}: p ≥ 0,
Σ p_i = 1} and moved to the sphere by x = p/‖p‖, a bijection Δ^d → S^d_+ with inverse
p = x/(1ᵀx).

Density on the sphere. Write a point y of the positive orthant both as y = s·p (s = 1ᵀy,
p ∈ Δ^d) and as y = r·x (r = ‖y‖, x ∈ S^d_+). Lebesgue measure is dy = s^d ds dp (dp the
Lebesgue measure of the first d coordinates of p) and also dy = r^d dr dσ(x) (σ the surface
measure). The cone over a small patch of the sphere, cut at s ≤ 1, i.e. at r ≤ 1/(1ᵀx), has
volume |dp|/(d+1) in the first description and (1ᵀx)^{−(d+1)} |dσ|/(d+1) in the second, so
dp = (1ᵀx)^{−(d+1)} dσ(x) and the density of x with respect to σ is

    f_c(x) = Dir(x/(1ᵀx); β_c) · (1ᵀx)^{−(d+1)}.

Bayes rule. The Jacobian factor (1ᵀx)^{−(d+1)} is the same for both classes, so the Bayes
classifier picks the class with the larger π_c Dir(x/(1ᵀx); β_c); :meth:`DirichletMixture.bayes`
evaluates exactly that, in logs.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from .._checks import check_key, check_matrix, check_positive_int
from .core import Dataset

__all__ = ["DirichletMixture", "two_class_dirichlet", "load_sphere_mixture"]


@dataclasses.dataclass(frozen=True)
class DirichletMixture:
    """Two classes on S^d_+, class c ∈ {0, 1} (labels −1, +1) from Dirichlet(β_c) with prior π_c.

    Attributes:
      concentrations: (2, d+1) positive Dirichlet parameters β_0 (label −1) and β_1 (label +1).
      prior_plus: π_1, the probability of label +1.
    """

    concentrations: np.ndarray
    prior_plus: float = 0.5

    def __post_init__(self):
        b = np.asarray(self.concentrations, dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != 2 or b.shape[1] < 2:
            raise ValueError(f"concentrations must have shape (2, d+1) with d >= 1, got {b.shape}")
        if not np.all(np.isfinite(b)) or np.any(b <= 0):
            raise ValueError(f"Dirichlet concentrations must be finite and > 0, got {b.tolist()}")
        if not 0.0 < float(self.prior_plus) < 1.0:
            raise ValueError(f"prior_plus must lie in (0, 1), got {self.prior_plus}")
        object.__setattr__(self, "concentrations", b)
        object.__setattr__(self, "prior_plus", float(self.prior_plus))

    @property
    def d(self) -> int:
        """The dimension of the sphere S^d_+ (points have d + 1 coordinates)."""
        return int(self.concentrations.shape[1] - 1)

    def sample(self, n: int, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """n points x (n, d+1) on S^d_+ and their labels y (n,) in {−1, +1}."""
        n = check_positive_int(n, "n")
        check_key(key)
        k1, k2 = jax.random.split(key)
        plus = np.asarray(jax.random.bernoulli(k1, self.prior_plus, (n,)))
        beta = self.concentrations[plus.astype(int)]
        p = np.asarray(jax.random.dirichlet(k2, jnp.asarray(beta)), dtype=np.float64)
        p = np.maximum(p, np.finfo(np.float64).tiny)
        x = p / np.linalg.norm(p, axis=1, keepdims=True)
        return x, np.where(plus, 1.0, -1.0)

    def _check_points(self, x) -> np.ndarray:
        check_matrix(x, "x", features=self.d + 1)
        x = np.asarray(x, dtype=np.float64)
        if np.any(x < 0) or np.any(np.abs(np.linalg.norm(x, axis=1) - 1.0) > 1e-8):
            raise ValueError("x must hold unit-norm rows with non-negative entries (points of S^d_+)")
        return x

    def class_log_densities(self, x) -> np.ndarray:
        """log f_c(x) for c = 0, 1 w.r.t. the surface measure of S^d_+: shape (n, 2)."""
        x = self._check_points(x)
        s = np.sum(x, axis=1)
        logp = np.log(x) - np.log(s)[:, None]
        b = jnp.asarray(self.concentrations)
        log_norm = np.asarray(gammaln(jnp.sum(b, axis=1)) - jnp.sum(gammaln(b), axis=1))  # (2,)
        log_dir = log_norm[None, :] + logp @ (self.concentrations - 1.0).T
        return log_dir - (self.d + 1) * np.log(s)[:, None]

    def log_density(self, x) -> np.ndarray:
        """log of the mixture density π_0 f_0 + π_1 f_1 on S^d_+: shape (n,)."""
        lf = self.class_log_densities(x) + np.log([1.0 - self.prior_plus, self.prior_plus])
        return np.logaddexp(lf[:, 0], lf[:, 1])

    def posterior_plus(self, x) -> np.ndarray:
        """P(y = +1 | x): shape (n,)."""
        lf = self.class_log_densities(x) + np.log([1.0 - self.prior_plus, self.prior_plus])
        return 1.0 / (1.0 + np.exp(lf[:, 0] - lf[:, 1]))

    def bayes(self, x) -> np.ndarray:
        """The Bayes classifier: +1 where π_1 f_1(x) ≥ π_0 f_0(x), else −1; shape (n,)."""
        lf = self.class_log_densities(x) + np.log([1.0 - self.prior_plus, self.prior_plus])
        return np.where(lf[:, 1] >= lf[:, 0], 1.0, -1.0)

    def bayes_accuracy(self, n: int, key: jax.Array) -> float:
        """Monte Carlo estimate of the Bayes accuracy E[max(P(+|x), P(−|x))] from n fresh points."""
        x, _ = self.sample(n, key)
        p = self.posterior_plus(x)
        return float(np.mean(np.maximum(p, 1.0 - p)))


def two_class_dirichlet(d: int, *, low: float = 1.5, high: float = 4.0, prior_plus: float = 0.6) -> DirichletMixture:
    """β_0 = linspace(low, high, d+1) for label −1 and its reverse for label +1, on S^d_+.

    The defaults give overlapping classes (the Bayes accuracy is below 1) and unequal priors,
    so that majority vote is not a coin toss.
    """
    d = check_positive_int(d, "d")
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    beta = np.linspace(low, high, d + 1)
    return DirichletMixture(np.stack([beta, beta[::-1]]), prior_plus)


def load_sphere_mixture(
    mixture: DirichletMixture, n_train: int, n_test: int, *, key: jax.Array
) -> Dataset:
    """Train and test samples of ``mixture`` as a :class:`~ntknotes.data.Dataset` with ±1 targets (N, 1)."""
    if not isinstance(mixture, DirichletMixture):
        raise TypeError(f"mixture must be a DirichletMixture, got {type(mixture).__name__}")
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    check_key(key)
    k1, k2 = jax.random.split(key)
    xtr, ytr = mixture.sample(n_train, k1)
    xte, yte = mixture.sample(n_test, k2)
    return Dataset(
        xtr, ytr[:, None], xte, yte[:, None],
        labels_train=(ytr > 0).astype(np.int64), labels_test=(yte > 0).astype(np.int64),
        name=f"Dirichlet mixture on S^{mixture.d}_+",
    )
