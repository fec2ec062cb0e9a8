"""The paper's experiments: configuration -> data -> features -> models -> report."""

from .runner import EXPERIMENTS, reproduce

__all__ = ["EXPERIMENTS", "reproduce"]
