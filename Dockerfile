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

WORKDIR /app
COPY requirements.txt .
# torch==2.13.0 resolves to the CPU-only build (2.13.0+cpu) from PyTorch's index.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY . .
# Settings need a database and Redis URL to import; collectstatic touches neither.
RUN DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --create-home --uid 1000 tunedin \
    && mkdir -p /app/var/artifacts \
    && chown -R tunedin:tunedin /app/var
USER tunedin

EXPOSE 8000 9808
CMD ["gunicorn", "-c", "tunedin/gunicorn.conf.py"]
