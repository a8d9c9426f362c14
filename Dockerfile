# vihub: one image for the API, the workers and the migrate step.
#
#   docker build -t vihub .                                  # CPU torch (default)
#   docker build -t vihub:gpu --build-arg TORCH_VARIANT=cu124 .   # CUDA torch for worker-gpu
#
# The CPU build installs torch from the PyTorch CPU index so no multi-GB CUDA wheel is
# pulled; the GPU build takes the CUDA wheel of the same version from the matching index.
# Every install is pinned through constraints.txt (torch==2.13.0).
FROM python:3.11-slim AS base

ARG TORCH_VARIANT=cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIHUB_HOME=/var/lib/vihub

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 vihub \
 && mkdir -p /var/lib/vihub && chown vihub /var/lib/vihub

WORKDIR /app

# torch first, in its own cached layer, from the variant's index (pinned by constraints).
COPY constraints.txt ./
RUN pip install -c constraints.txt --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" torch

COPY pyproject.toml README.md ./
COPY inference ./inference
COPY common ./common
COPY store ./store
COPY api ./api
COPY worker ./worker
COPY vihub ./vihub
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install -c constraints.txt --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" .

USER vihub
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
# The API by default; compose overrides the command for migrate and the workers.
CMD ["vihub", "api", "--host", "0.0.0.0", "--port", "8000"]
