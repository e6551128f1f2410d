# ecs-alb-operator image: `make image` (docker build -t ecs-alb-operator:<version> .).
# Two stages so the image carries the installed virtualenv and nothing of the build (sources, pip's build env).
# The runtime dependencies come from requirements.lock, pinned with their hashes (`make lock` regenerates it), so
# two builds of one commit install the same packages. Pin the base image by digest for the same reason:
# `make image PYTHON_IMAGE=python:3.11-slim@sha256:...`.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# README.md* : setuptools reads it for the package metadata (pyproject `readme`); the glob keeps the build
# working while the file does not exist yet.
# Runtime dependencies only: the `demo`/`dev` extras (moto, kmock, pytest) stay out of the image. The lock
# first, in a layer of its own: it changes less often than the code.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md* ./
COPY controller ./controller
# --no-deps: everything it needs is installed from the lock above; nothing is resolved anew.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
COPY --from=build /opt/venv /opt/venv
# A numeric user so `runAsNonRoot` can be verified by the kubelet without an /etc/passwd entry.
USER 65532:65532
# 8080: kopf liveness (/healthz); 8081: readiness (/readyz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 8081 9090
ENTRYPOINT ["python", "-m", "controller"]
CMD ["run"]
