"""Datasets that ship offline (scikit-learn digits, toy 1-D regression) and file loaders.

Every loader returns a :class:`Dataset` of float arrays with points in rows.
"""
from .core import Dataset, encode_targets, normalize_inputs, train_test_split
from .digits import load_digits
from .toy import augment_with_one, toy_1d

__all__ = [
    "Dataset",
    "encode_targets",
    "normalize_inputs",
    "train_test_split",
    "load_digits",
    "toy_1d",
    "augment_with_one",
]
