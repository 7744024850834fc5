# syntax=docker/dockerfile:1
# Portico's container image.
#
#   docker build -t portico .
#   docker run --rm -p 8080:8080 -v "$PWD/portico.yaml:/etc/portico/portico.yaml:ro" portico
#   docker kill -s HUP CONTAINER     # reload the config (a bad file is refused, the old one keeps serving)
#   docker stop -t 30 CONTAINER      # graceful stop: give it longer than timeouts.shutdown
#   docker run --rm -v "$PWD/portico.yaml:/etc/portico/portico.yaml:ro" portico check -c /etc/portico/portico.yaml
#
# The config lives at /etc/portico/portico.yaml (the image ships deploy/container/portico.yaml
# there; mount yours over it, read-only). deploy/compose.yaml and deploy/kubernetes/ mount
# theirs at the same path. Node 22 LTS (Node 20 is past its end of life); node:24-bookworm-slim
# works the same. Pin the base by digest (node:22-bookworm-slim@sha256:...) for reproducible builds.

# --- build: every dependency, then tsc -> dist/ -------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# --- deps: the runtime dependencies alone (package.json "dependencies"), no install scripts --
FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORTICO_CONFIG=/etc/portico/portico.yaml
# A user of its own (uid 10001, not the image's `node` 1000), numeric so that Kubernetes'
# runAsNonRoot can verify it. /run/portico (pid file) and /var/lib/portico (state_dir) are
# the only places it writes; the config stays root's, read-only to Portico.
RUN groupadd --system --gid 10001 portico \
    && useradd --system --uid 10001 --gid portico --home-dir /var/lib/portico --shell /usr/sbin/nologin portico \
    && mkdir -p /etc/portico /run/portico /var/lib/portico \
    && chown portico:portico /run/portico /var/lib/portico
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# dist/ is ESM because package.json says "type": "module"; Portico reads its version from it.
COPY package.json ./
COPY deploy/container/admin.mjs ./deploy/container/admin.mjs
COPY deploy/container/portico.yaml /etc/portico/portico.yaml
USER 10001:10001

# 8080: HTTP in the default config; 8443: where a TLS listener usually goes; 9901: the admin
# listener (the default config keeps it on loopback).
EXPOSE 8080 8443 9901

# SIGTERM, not nginx's SIGQUIT: for Portico SIGTERM, SIGINT and SIGQUIT are all the graceful
# stop (every generation drains, then exit 0; a second signal stops at once), whereas in nginx
# SIGTERM is the fast stop. SIGTERM is what `docker stop` and the kubelet send by default, so
# the image, Compose and Kubernetes all mean the same signal. Node runs as PID 1 and handles
# its signals itself (HUP reload, USR2 reopen logs, TERM/INT/QUIT stop); it reaps its workers.
STOPSIGNAL SIGTERM

# On the admin listener's /healthz, by node itself (the slim image has no curl): admin.mjs
# reads the admin address and token from the config file, so a mounted config needs an
# `admin` section. Exit 0 healthy, 1 not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["node", "/app/deploy/container/admin.mjs", "healthz", "-c", "/etc/portico/portico.yaml"]

ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["start", "-c", "/etc/portico/portico.yaml"]
