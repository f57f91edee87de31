# edigate: one image for every process (api, worker, beat, sftp, migrate); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EDIGATE_DATA_DIR=/var/lib/edigate EDIGATE_HOST=0.0.0.0

RUN groupadd --system edigate && useradd --system --gid edigate --home /var/lib/edigate edigate \
    && mkdir -p /var/lib/edigate && chown edigate:edigate /var/lib/edigate

WORKDIR /app
COPY pyproject.toml README.md ./
COPY translators translators
COPY partner_profiles partner_profiles
COPY gateway gateway
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir .

USER edigate
VOLUME ["/var/lib/edigate"]
EXPOSE 8080 2222
CMD ["edigate", "serve", "--host", "0.0.0.0"]
