"""srcore: the science of SRNet search as a plain library (no HTTP, no Celery).

Importing `srcore` or `srcore.spec` / `srcore.tasks` does not import torch; the API relies on it.
"""

__version__ = "0.1.0"
