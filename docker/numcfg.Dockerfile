# numcfg itself (the ARI app and HTTP API).
#   docker build -f docker/numcfg.Dockerfile -t numcfg .
FROM python:3.11-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/numcfg
COPY pyproject.toml README.md ./
COPY asterisk_bridge ./asterisk_bridge
RUN pip install --no-cache-dir .
ENTRYPOINT ["numcfg"]
CMD ["run", "-c", "/etc/numcfg/numcfg.yaml"]
