"""Datasets that ship offline (scikit-learn digits, toy 1-D regression) and file loaders.

Every loader returns a :class:`Dataset` of float arrays with points in rows.
"""
from .core import Dataset, encode_targets, normalize_inputs, train_test_split
from .digits import load_digits
from .files import load_cifar10, load_mnist, read_cifar10_batch, read_idx, write_idx
from .mnist1d import make_mnist1d, mnist1d_templates
from .sphere import DirichletMixture, load_sphere_mixture, two_class_dirichlet
from .toy import augment_with_one, toy_1d

__all__ = [
    "Dataset",
    "encode_targets",
    "normalize_inputs",
    "train_test_split",
    "load_digits",
    "load_mnist",
    "load_cifar10",
    "read_idx",
    "write_idx",
    "read_cifar10_batch",
    "make_mnist1d",
    "mnist1d_templates",
    "toy_1d",
    "augment_with_one",
    "DirichletMixture",
    "two_class_dirichlet",
    "load_sphere_mixture",
]
