"""Sidewatch collectors: capture beside the model, ship to the monitor.

Light by design: nothing here imports pandas, scipy, shap, evidently or the monitor.
"""

from collectors.contract import (
    SCHEMA_VERSION,
    FeatureSpec,
    LabelBatch,
    LabelEvent,
    ModelDescription,
    Outputs,
    PredictionBatch,
    PredictionEvent,
)
from collectors.errors import ConfigError, MissingDependencyError, SidewatchError
from collectors.sdk import Client, ClientStats
from collectors.settings import ClientSettings

__all__ = [
    "SCHEMA_VERSION",
    "Client",
    "ClientSettings",
    "ClientStats",
    "ConfigError",
    "FeatureSpec",
    "LabelBatch",
    "LabelEvent",
    "MissingDependencyError",
    "ModelDescription",
    "Outputs",
    "PredictionBatch",
    "PredictionEvent",
    "SidewatchError",
]
