"""Where the advisor keeps files: probe cache and saved reports (platformdirs, overridable)."""

from __future__ import annotations

import os
from pathlib import Path

APP = "model-advisor"


def cache_dir() -> Path:
    """Probe results cache. ADVISOR_CACHE_DIR overrides the platform's user cache dir."""
    env = os.environ.get("ADVISOR_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP))


def reports_dir() -> Path:
    """Reports written before anything is sent to MLflow. ADVISOR_REPORTS_DIR overrides."""
    env = os.environ.get("ADVISOR_REPORTS_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP)) / "reports"
