# A Datadog Agent image with pagerduty_dora installed, built from this clone:
#
#   docker build --build-arg AGENT_VERSION=<7.x.y> -t <registry>/agent-pagerduty-dora:<7.x.y> .
#
# AGENT_VERSION is the Agent 7 release to build on: one whose embedded datadog-checks-base is 38.5.0
# or later, which the wheel requires (the Agent's installer refuses the wheel on an older one, and
# the build fails there). See pagerduty_dora/docs/containers.md for running the image.
ARG AGENT_VERSION=set-AGENT_VERSION-to-an-Agent-7-release

# Build the wheel from the clone, as pagerduty_dora/README.md does by hand.
FROM python:3.13-slim AS wheel
COPY pagerduty_dora/ /src/pagerduty_dora/
RUN python -m pip wheel --no-deps --disable-pip-version-check --wheel-dir /dist /src/pagerduty_dora

# Install it the Agent's way: into the embedded Python, without dependencies, as root (`-r`).
FROM gcr.io/datadoghq/agent:${AGENT_VERSION}
COPY --from=wheel /dist/datadog_pagerduty_dora-1.0.0-py3-none-any.whl /tmp/
RUN agent integration install -r -w /tmp/datadog_pagerduty_dora-1.0.0-py3-none-any.whl \
    && rm /tmp/datadog_pagerduty_dora-1.0.0-py3-none-any.whl
