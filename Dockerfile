# One image for every role of the product (panel, workers, connectors, migrations): compose.yaml and
# docs/deploy.md run it with `python -m workbench up --only <role>` against one PostgreSQL and one Redis.
FROM python:3.11-slim

# libmagic: media types are read from the files' bytes (python-magic); curl: the panel's health check
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 curl \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 workbench
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=workbench:workbench . .

USER workbench
# Media, WhatsApp sessions, claims and the analytics copy live here (a volume shared as docs/deploy.md says).
ENV WORKBENCH_DATA_DIR=/data \
    WORKBENCH_PANEL_ADDRESS=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8501
ENTRYPOINT ["python", "-m", "workbench"]
CMD ["up"]
