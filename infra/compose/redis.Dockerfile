# Redis from Debian's redis-server package, for a machine that cannot pull
# redis:7 (docker-compose.yml runs either; see README.md):
#   docker build -t omega-redis:local - <infra/compose/redis.Dockerfile
# and OMEGA_REDIS_IMAGE=omega-redis:local in .env. BASE: any Debian bookworm image.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
USER root
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 700 /data
WORKDIR /data
USER redis
CMD ["redis-server", "--bind", "127.0.0.1", "--dir", "/data"]
