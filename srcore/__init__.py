"""srcore: the science of SRNet search as a plain library (no HTTP, no Celery).

`srcore.jobspec` holds everything that must import without torch (the job spec, the task
registry, callbacks, the result types, the registered names); the API and persistence import
nothing else from srcore.
"""

__version__ = "0.1.0"
