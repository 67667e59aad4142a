# TunedIn: one image for web (gunicorn), worker and beat (Celery); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp: OpenMP for torch and faiss.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# The service runs as this unprivileged user (a fixed uid, for volume permissions).
RUN useradd --create-home --uid 1000 --user-group tunedin

WORKDIR /app
# The runtime requirements only: no test runners, browser driver or linters in the image.
COPY requirements/base.txt requirements/base.txt
# torch==2.13.0 resolves to the CPU-only build (2.13.0+cpu) from PyTorch's index. An image for
# GPU training workers (the `training` queue) takes torch from a CUDA index instead:
# `docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/<cuda tag> .`
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --extra-index-url ${TORCH_INDEX_URL} -r requirements/base.txt

COPY . .
# Settings need a database and Redis URL and a secret key to import; collectstatic uses none.
RUN DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    DJANGO_SECRET_KEY=collectstatic-at-build-time-only \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var/artifacts /app/var/artifact-cache /app/var/artifact-store \
    && chown -R tunedin:tunedin /app/var
# Numeric, so that a runtime can check it is not root (e.g. Kubernetes' runAsNonRoot).
USER 1000:1000

EXPOSE 8000 9808
CMD ["gunicorn", "-c", "tunedin/gunicorn.conf.py"]
