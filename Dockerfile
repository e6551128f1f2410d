# ecs-alb-operator image: `docker build -t ecs-alb-operator:0.1.0 .`
# Two stages so the image carries the installed virtualenv and nothing of the build (sources, pip's build env).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# README.md* : setuptools reads it for the package metadata (pyproject `readme`); the glob keeps the build
# working while the file does not exist yet.
COPY pyproject.toml README.md* ./
COPY controller ./controller
# Runtime dependencies only: the `demo`/`dev` extras (moto, kmock, pytest) stay out of the image.
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
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
