# numcfg (the ARI app and HTTP API), installed from its wheel, run as its own user.
#   docker build -f docker/numcfg.Dockerfile -t numcfg .
FROM python:3.11-slim AS wheel
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN pip wheel --no-cache-dir --no-deps -w /dist /src

FROM python:3.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/numcfg --shell /usr/sbin/nologin numcfg \
 && mkdir -p /var/lib/numcfg/hold-music /var/lib/asterisk/numcfg \
 && chown numcfg:numcfg /var/lib/numcfg /var/lib/numcfg/hold-music /var/lib/asterisk/numcfg
COPY --from=wheel /dist/ /dist/
RUN pip install --no-cache-dir /dist/numcfg-*.whl && rm -rf /dist
COPY docker/numcfg-entrypoint.sh /usr/local/bin/numcfg-entrypoint
USER numcfg
WORKDIR /var/lib/numcfg
ENV NUMCFG_CONFIG=/etc/numcfg/numcfg.yaml
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/health', timeout=2)"
ENTRYPOINT ["/usr/local/bin/numcfg-entrypoint"]
CMD ["numcfg", "run"]
