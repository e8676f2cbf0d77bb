"""The demo's data: scikit-learn's breast-cancer set, which ships inside the package."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MODEL_NAME = "breast-cancer"
MODEL_VERSION = "1"
SEED = 20261126

FEATURES = (
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
)
"""The ten "mean" measurements of a tumour image, as the model's inputs."""

DRIFTED = ("mean_texture", "mean_smoothness", "mean_symmetry")
"""The features the demo shifts midway (by 1.5 of their training standard deviations)."""


@dataclass(frozen=True)
class DemoData:
    """The training split (the model's data and the monitor's reference) and all rows."""

    train: pd.DataFrame
    population: pd.DataFrame
    """Every row: traffic samples from it; the column ``target`` is the truth (1: benign)."""


def load() -> DemoData:
    """Load and split the data the same way in every process."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True)
    frame = raw.data.rename(columns=lambda c: c.replace(" ", "_"))[list(FEATURES)]
    frame["target"] = raw.target
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(frame))
    cut = int(0.7 * len(frame))
    return DemoData(frame.iloc[order[:cut]].reset_index(drop=True), frame)


def model_description() -> dict[str, object]:
    """The demo model's registration body."""
    return {
        "name": MODEL_NAME,
        "task": "binary",
        "positive_class": 1,
        "features": [{"name": f, "type": "numeric"} for f in FEATURES],
        "description": "Logistic regression on ten tumour-image measurements (1: benign).",
    }
