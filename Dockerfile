# msgen in a container: mount the folder that holds the blueprint at /work.
#   docker build -t msgen .
#   docker run --rm -v "$PWD:/work" msgen render blueprint.yaml -o out
# The tag pins the Python minor release; the base image's patch updates come with a rebuild.
FROM python:3.12-slim

LABEL org.opencontainers.image.title="msgen" \
      org.opencontainers.image.description="A microservice platform's infrastructure as code from one typed blueprint" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/msgen-dev/msgen"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# msgen runs as this unprivileged user, not root (the numeric id in USER below resolves on any
# host); run with --user "$(id -u):$(id -g)" to own the files it writes into the mounted folder
RUN useradd --no-log-init --create-home --uid 10001 msgen

# only what the package is built from: tests/test_container.py copies these same paths and
# runs the same pip command in a fresh virtualenv
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY msgen ./msgen
COPY templates ./templates
COPY blueprints ./blueprints
RUN pip install --no-cache-dir .

USER 10001
WORKDIR /work
ENTRYPOINT ["msgen"]
CMD ["--help"]
