"""Library warnings a CLI user cannot act on stay out of the output (they broke the progress bar).

Deprecations and library-internal UserWarnings from torch, transformers, MLflow and friends are about
their APIs, which the user does not call; the advisor's own warnings (cache, catalog consistency) stay.
ADVISOR_DEBUG=1 shows everything.
"""

from __future__ import annotations

import os
import warnings

LIBRARIES = (r"(torch|transformers|huggingface_hub|accelerate|safetensors|mlflow|matplotlib|"
             r"pydantic|sqlalchemy|alembic)(\.|$)")


def quiet_libraries() -> None:
    if os.environ.get("ADVISOR_DEBUG"):
        return
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=LIBRARIES)
    # transformers logs its advice through its own logger, read from these at import time
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
