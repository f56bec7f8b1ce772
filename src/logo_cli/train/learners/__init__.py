"""The train-policy learners, one module each; `train/registry.py` names them by (algo, action kind,
agent kind)."""
