# syntax=docker/dockerfile:1
# The gateway for production: a real MongoDB (MONGODB_URI), no embedded database,
# no test tools. Build: docker build -t bot-gateway .
#
# Python 3.11, the version requirements/image.txt is compiled for, pinned by digest in
# both stages so that a rebuild gets the same base; Dependabot's docker updater
# proposes each new digest. (The digest was read from public Dockerfiles that use it;
# the machine this was written on reaches no registry, so CI's image job is the first
# to pull it.)

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS build
# Dependencies first, from the lock with hashes: this layer is rebuilt only when the
# lock changes, not on every edit of the sources.
COPY requirements/image.txt /tmp/image.txt
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/image.txt
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY common common
COPY gateway gateway
COPY handlers handlers
COPY channels channels
COPY storage storage
# The gateway itself, with the locked setuptools; nothing else may be fetched.
RUN /venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
RUN useradd --system --uid 10001 --create-home --home-dir /app gateway
WORKDIR /app
# Only the virtualenv crosses over: no wheels, no build tools, no sources.
COPY --from=build /venv /venv
RUN mkdir -p /app/data && chown gateway:gateway /app/data
# The defaults ship inside the package; mount a file and set GATEWAY_CONFIG to add one.
ENV PATH=/venv/bin:$PATH \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATA_DIR=/app/data \
    PYTHONUNBUFFERED=1
USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["bot-gateway"]
CMD ["serve"]
