# The AuroraSOC image: one image for every process of the platform (the gateway, each
# specialist agent, the MCP tool server, the one-shot migration); the command says which.
#
#   docker build -t aurorasoc:local .
#   docker run --rm aurorasoc:local --help
#
# Two stages: the builder makes a virtual environment with AuroraSOC and its `postgres`
# extra installed from a wheel built here; the runtime stage copies that environment onto a
# clean slim image, so no build tool, source tree or pip cache ships. Nothing secret is baked
# in: settings come from AURORA_* variables and from files under /run/secrets at start
# (deploy/entrypoint.sh). Built with BuildKit, Docker's default builder (COPY --chmod). For
# reproducible builds, pin the base image by digest (python:3.13-slim@sha256:...).

FROM python:3.13-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C compiler for the build alone (setup.py compiles the log parser's hot modules; without one
# they run as Python). Whatever release the base image has: it never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN python -m venv /opt/aurora \
    && /opt/aurora/bin/pip install --no-cache-dir ".[postgres]"


FROM python:3.13-slim AS runtime

# xmlsec1 checks the signatures of SAML responses (single sign-on, gateway/sso/saml.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends "xmlsec1=1.2.*" \
    && rm -rf /var/lib/apt/lists/*

# The data directory and the mount points of the named volumes compose.yaml shares
# (evidence, ledger keys, the threat_intel agent's store) exist in the image, owned by the
# runtime user, so that a fresh volume takes that owner and mode.
RUN groupadd --system --gid 10001 aurora \
    && useradd --system --uid 10001 --gid aurora --home-dir /var/lib/aurora \
        --shell /usr/sbin/nologin aurora \
    && install -d -o aurora -g aurora -m 0700 /var/lib/aurora /var/lib/aurora/evidence \
        /var/lib/aurora/ledger-keys /var/lib/aurora/intel

COPY --from=builder /opt/aurora /opt/aurora
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/aurora-entrypoint

# Inside a container every process listens on all of its addresses; compose.yaml sets
# where each one reaches the others.
ENV PATH=/opt/aurora/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AURORA_DATA_DIR=/var/lib/aurora \
    AURORA_HOST=0.0.0.0 \
    AURORA_AGENT_HOST=0.0.0.0 \
    AURORA_MCP_HOST=0.0.0.0

USER 10001:10001
WORKDIR /var/lib/aurora
EXPOSE 8080

# The gateway's public probe: 200 without a credential once the gateway serves. Other
# commands (agents, the MCP server, migrations) set their own check in compose.yaml.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AURORA_PORT', '8080') + '/api/v1/auth/providers', timeout=4)"]

# aurora-entrypoint exports AURORA_* settings from /run/secrets/aurora_* files, then runs
# `aurora` with the arguments: `docker run IMAGE up` is `aurora up`.
ENTRYPOINT ["aurora-entrypoint"]
CMD ["gateway"]
