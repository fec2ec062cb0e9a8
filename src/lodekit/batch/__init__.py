"""Datasets of many structures: input files, chunked feature stores, featurisation, fit/predict."""

from .dataset import StructureSource
from .featurize import featurize
from .store import FeatureStore, StoreError, load_features

__all__ = ["FeatureStore", "StoreError", "StructureSource", "featurize", "load_features"]
