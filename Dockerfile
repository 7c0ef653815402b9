# A Datadog Agent image with pagerduty_dora installed, built from this clone:
#
#   docker build --build-arg AGENT_VERSION=<7.x.y> -t <registry>/agent-pagerduty-dora:<7.x.y> .
#
# AGENT_VERSION is the Agent release to build on, Agent 7.78 or later: the wheel requires an embedded
# datadog-checks-base 37.33.0 or later, and the Agent's installer refuses the wheel on an older one
# (the build fails there). The default is the first release known to embed such a base; name the one
# you run. See pagerduty_dora/docs/containers.md for running the image.
ARG AGENT_VERSION=7.78.0

# Build the wheel from the clone, as pagerduty_dora/README.md does by hand.
FROM python:3.13-slim AS wheel
COPY pagerduty_dora/ /src/pagerduty_dora/
RUN python -m pip wheel --no-deps --disable-pip-version-check --wheel-dir /dist /src/pagerduty_dora

# Install it the Agent's way: into the embedded Python, without dependencies, as root (`-r`).
FROM gcr.io/datadoghq/agent:${AGENT_VERSION}
COPY --from=wheel /dist/datadog_pagerduty_dora-1.0.0-py3-none-any.whl /tmp/
RUN agent integration install -r -w /tmp/datadog_pagerduty_dora-1.0.0-py3-none-any.whl \
    && rm /tmp/datadog_pagerduty_dora-1.0.0-py3-none-any.whl
