"""Train the test model and lay it out for MLServer and for MLflow's scoring server.

Runs in the model servers' own environment (.venv-servers). Usage:
``train.py OUTDIR HTTP_PORT GRPC_PORT METRICS_PORT``. Writes OUTDIR/mlserver (a
settings.json and one model, ``bc``, version ``v1``) and OUTDIR/mlflow (an MLflow
sklearn model), both the same logistic regression on five breast-cancer features.
"""

import json
import sys
import warnings
from pathlib import Path

import joblib
import mlflow.sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

FEATURES = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness"]

out, http_port, grpc_port, metrics_port = Path(sys.argv[1]), *map(int, sys.argv[2:5])
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X = X.iloc[:, :5].astype(float)
X.columns = FEATURES
model = LogisticRegression(max_iter=5000).fit(X.to_numpy(), y)

serving = out / "mlserver"
(serving / "bc").mkdir(parents=True, exist_ok=True)
joblib.dump(model, serving / "bc" / "model.joblib")
(serving / "bc" / "model-settings.json").write_text(
    json.dumps(
        {
            "name": "bc",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }
    )
)
(serving / "settings.json").write_text(
    json.dumps(
        {
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
            "parallel_workers": 0,
            "host": "127.0.0.1",
        }
    )
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    named = LogisticRegression(max_iter=5000).fit(X, y)
    mlflow.sklearn.save_model(named, str(out / "mlflow"))
print("trained", flush=True)
