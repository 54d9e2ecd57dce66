# redblue's own services (producer, processor, trader, scorer) for docker-compose.yml.
# One image for all of them: the command picks the service, e.g. `process --run live`.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The locked environment first, so editing code does not reinstall it (it is large: Ludwig
# pulls in PyTorch). Every locked package ships wheels, so no compiler is needed.
COPY requirements.lock .
RUN python -m pip install uv \
    && uv pip install --system --no-cache -r requirements.lock

COPY . .
ENV PYTHONPATH=/app \
    REDBLUE_HOME=/var/lib/redblue

ENTRYPOINT ["python", "-m", "redblue"]
CMD ["--help"]
