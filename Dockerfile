# edigate: one image for every process (api, worker, beat, sftp, migrate); the command picks the role.

# The wheel is built apart, with a C compiler, so the X12 engine's hot modules are compiled
# (EDIGATE_COMPILE=1, see setup.py); the image itself carries no compiler.
FROM python:3.11-slim AS wheel
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY translators translators
COPY partner_profiles partner_profiles
COPY gateway gateway
COPY workers workers
COPY migrations migrations
RUN EDIGATE_COMPILE=1 pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EDIGATE_DATA_DIR=/var/lib/edigate EDIGATE_HOST=0.0.0.0

RUN groupadd --system edigate && useradd --system --gid edigate --home /var/lib/edigate edigate \
    && mkdir -p /var/lib/edigate && chown edigate:edigate /var/lib/edigate

WORKDIR /app
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

USER edigate
VOLUME ["/var/lib/edigate"]
EXPOSE 8080 2222
CMD ["edigate", "serve", "--host", "0.0.0.0"]
