"""MLflow plugins of model-advisor (installed as advisor_plugins; entry points in pyproject.toml).

MLflow imports these modules while its registries load, so they import nothing heavy at module
level and never raise there: each exposes its MLflow subclass lazily through a module
__getattr__, built on first access (by which time MLflow has been imported anyway).
"""
