# syntax=docker/dockerfile:1
# The gateway for production: a real MongoDB (MONGODB_URI), no embedded database,
# no test tools. Build: docker build -t bot-gateway .

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway gateway
COPY handlers handlers
COPY channels channels
COPY storage storage
# Wheels for the gateway and its dependencies (with the Redis client for a shared cache).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[redis]"

FROM python:3.12-slim
RUN useradd --system --uid 10001 --create-home --home-dir /app gateway
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The defaults ship inside the package; mount a file and set GATEWAY_CONFIG to add one.
RUN mkdir -p /app/data && chown gateway:gateway /app/data
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATA_DIR=/app/data \
    PYTHONUNBUFFERED=1
USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["bot-gateway"]
CMD ["serve"]
