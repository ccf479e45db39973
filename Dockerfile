# syntax=docker/dockerfile:1
#
# One image for every role of the service; the command picks it (docker-compose.yml):
#   API         uvicorn --factory api.main:create_app --host 0.0.0.0 --port 8000   (default)
#   worker      srnet worker --queues gpu          (one container per GPU)
#   reconciler  srnet reconcile
#   migrations  srnet migrate
#
# CPU image (default):  docker build -t srnet .
# CUDA image:           docker build --build-arg TORCH_VARIANT=cu128 -t srnet:cuda .
# TORCH_VARIANT names a PyTorch wheel index (cpu, cu126, cu128, ...). The CUDA wheels carry
# their own CUDA runtime: the host needs only the NVIDIA driver and the container toolkit.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG TORCH_VARIANT=cpu
# Must equal the pin in pyproject.toml (tests/worker/test_deployment_files.py checks it).
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SRNET_HOME=/var/lib/srnet \
    HF_HOME=/var/lib/srnet/hf \
    SRNET_WORK_DIR=/var/lib/srnet/work \
    SRNET_ARTIFACT_STORE=file:///var/lib/srnet/artifacts

# tini: signals reach the Celery worker and uvicorn (warm shutdown), zombies are reaped.
# curl: the API's health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 srnet \
    && useradd --system --uid 10001 --gid srnet --home-dir /home/srnet --create-home srnet \
    && mkdir -p /var/lib/srnet/artifacts /var/lib/srnet/work /var/lib/srnet/hf \
    && chown -R srnet:srnet /var/lib/srnet

WORKDIR /app

# torch first, from the PyTorch index of the variant: the project's `torch==` pin is then
# already satisfied, and pip never fetches PyPI's default (CUDA) build for a CPU image.
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch==${TORCH_VERSION}"

# The other dependencies in their own layer: source changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(d['dependencies'] + d['optional-dependencies']['s3']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__" \
    && rm /tmp/requirements.txt

COPY alembic.ini ./
COPY srcore ./srcore
COPY persistence ./persistence
COPY migrations ./migrations
COPY api ./api
COPY worker ./worker
COPY srnet ./srnet
RUN pip install --no-deps . \
    && python -c "import api.main, worker.tasks, srcore.pipeline"

USER srnet
VOLUME ["/var/lib/srnet"]
EXPOSE 8000

# The API's check (database and broker); worker and reconciler containers set their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

ENTRYPOINT ["tini", "--"]
# Behind a reverse proxy, set FORWARDED_ALLOW_IPS to its address (download links use the
# forwarded host and scheme).
CMD ["uvicorn", "--factory", "api.main:create_app", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers"]
