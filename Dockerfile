# upload-gate container image. Configuration is by environment only (GATE_* variables, see
# gate/settings.py); mount the policy and banks, or bake your own on top of this image.
#
#   docker build -t upload-gate .
#   docker run -e GATE_UPSTREAM=http://pds:3000 -p 3100:3100 \
#     -v gate-keys:/etc/upload-gate/keys -v gate-data:/var/lib/upload-gate upload-gate
#
# Two volumes to keep: /etc/upload-gate/keys holds the evidence keyring, created on the first start
# (back it up, apart from the data); /var/lib/upload-gate the embedded Postgres (unless DATABASE_URL
# is set) and the outage spool. Without them both live and die with the container.
#
# Every path and command here is also used by the tests (tests/deploy/test_dockerfile.py, and
# tests/e2e/test_deployments.py, which runs the CMD with this ENV as uid 10001).

# ---- build: compile the wheels that have no binary release (pdqhash) in a throwaway stage -----------
FROM python:3.11-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gate ./gate
RUN python -m venv /opt/upload-gate \
    && /opt/upload-gate/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/upload-gate/bin/pip install --no-cache-dir .

# ---- runtime: the virtualenv, the reference policy and its banks (mount your own), no compilers ------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 gate \
    && useradd --system --uid 10001 --gid gate --home-dir /var/lib/upload-gate --create-home gate \
    && install -d -m 0700 -o 10001 -g 10001 /etc/upload-gate/keys
COPY --from=build /opt/upload-gate /opt/upload-gate
COPY config/policy.toml /etc/upload-gate/policy.toml
COPY config/banks /etc/upload-gate/banks
ENV PATH=/opt/upload-gate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATE_LISTEN=0.0.0.0:3100 \
    GATE_METRICS_LISTEN=0.0.0.0:9464 \
    GATE_UPSTREAM=http://pds:3000 \
    GATE_DATA_DIR=/var/lib/upload-gate \
    GATE_POLICY=/etc/upload-gate/policy.toml \
    GATE_BANKS_DIR=/etc/upload-gate/banks \
    GATE_EVIDENCE_KEYS_FILE=/etc/upload-gate/keys/evidence-keys.json
USER 10001:10001
WORKDIR /var/lib/upload-gate
EXPOSE 3100 9464
# Liveness from the metrics listener's /healthz, on whatever port GATE_METRICS_LISTEN names.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ['GATE_METRICS_LISTEN'].rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
# The bundled policy can quarantine, which needs an evidence key: the first start creates the keyring
# (an existing one is only checked, never replaced), then the gate replaces the shell.
CMD ["sh", "-c", "upload-gate keys init --if-missing && exec upload-gate serve"]
