# leadstream image: the `leadstream` command, run as an unprivileged user.
#
#   docker build -t leadstream .
#   docker run --rm leadstream --help
#
# docker-compose.yml builds it for the worker (`leadstream worker`); the same image
# runs any other subcommand (serve, scheduler, report, ...).

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A virtualenv is one folder to copy into the runtime stage, without pip's caches
# or the source tree.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the package needs, named one by one: a plain `COPY . .` would also
# copy a local `.env` (secrets), `.venv/` and `var/` into the image.
# A new top-level package must be added here and in pyproject.toml.
COPY pyproject.toml README.md ./
COPY streaming/ streaming/
COPY agents/ agents/
COPY online_models/ online_models/
COPY sinks/ sinks/
COPY reporting/ reporting/
COPY config/ config/
COPY cli/ cli/
COPY api/ api/
RUN pip install .


FROM python:3.11-slim-bookworm

# WeasyPrint (PDF reports) needs Pango and fonts at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 leadstream \
    && useradd --system --uid 10001 --gid leadstream --no-log-init \
        --home-dir /var/lib/leadstream --create-home --shell /usr/sbin/nologin leadstream

COPY --from=build /opt/venv /opt/venv

# Relative paths in the settings (Faust's data dir, var/...) land here, the one
# folder the user can write to.
WORKDIR /var/lib/leadstream
USER leadstream:leadstream

# The worker's Prometheus /metrics (LEADSTREAM_METRICS__PORT), the dashboard and API.
EXPOSE 9464 8600

ENTRYPOINT ["leadstream"]
CMD ["worker"]
