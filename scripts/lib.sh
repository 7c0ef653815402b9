# Shared set-up for the scripts in this folder; source it, don't run it.
# Provides `require_python313` (finds Python 3.13 on PATH or under pyenv and puts it first on PATH, so
# that hatch uses it instead of downloading its own), `require_python312` (for the tests),
# `require_demo_python` (3.13 or 3.12, both supported), `ensure_ddev`, and `ensure_demo_venv` (the
# environment `scripts/demo` and `scripts/dry-run` run in).
# Python is looked for only when something must be installed: an existing environment is used as is.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DDEV_VERSION="${DDEV_VERSION:-20.1.0}"
DDEV_VENV="${DDEV_VENV:-$ROOT/.venv-ddev}"
# The datadog-checks-base release the tests run against: the oldest one the wheel accepts.
export DDEV_TEST_BASE_PACKAGE_VERSION="${DDEV_TEST_BASE_PACKAGE_VERSION:-37.33.0}"

# Print the path of a `pythonX.Y` interpreter, or fail.
find_python() {
    local version="$1" candidate pyenv_root
    candidate="$(command -v "python$version" 2>/dev/null || true)"
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        echo "$candidate"
        return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_root="$(pyenv root)"
    else
        pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    fi
    for candidate in $(ls -d "$pyenv_root"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python $version not found on PATH nor under $pyenv_root/versions" >&2
    return 1
}

# Find Python 3.13 and put it on PATH, or fail: it runs ddev, the demo's environment and the tests.
require_python313() {
    if [ -z "${PYTHON313:-}" ]; then
        PYTHON313="$(find_python 3.13)"
        export PATH="$(dirname "$PYTHON313"):$PATH"
    fi
}

# Find Python 3.12 and put it on PATH, or fail: the test suite runs on both versions.
require_python312() {
    PYTHON312="$(find_python 3.12)"
    export PATH="$(dirname "$PYTHON312"):$PATH"
}

# Find a Python the integration supports for the demo's environment, 3.13 first, then 3.12; set
# DEMO_BASE_PYTHON to it, or fail naming both.
require_demo_python() {
    local version
    for version in 3.13 3.12; do
        if DEMO_BASE_PYTHON="$(find_python "$version" 2>/dev/null)"; then
            return 0
        fi
    done
    echo "error: neither Python 3.13 nor 3.12 found on PATH nor under pyenv; install one of them" >&2
    return 1
}

# Create (once) a virtual environment holding ddev, and put it first on PATH. Python 3.13 goes on
# PATH too: the environments ddev creates with hatch (tests, lint) are built with it.
ensure_ddev() {
    require_python313
    if ! "$DDEV_VENV/bin/ddev" --version 2>/dev/null | grep -q "version $DDEV_VERSION\$"; then
        echo "Installing ddev $DDEV_VERSION into $DDEV_VENV" >&2
        rm -rf "$DDEV_VENV"
        "$PYTHON313" -m venv "$DDEV_VENV"
        "$DDEV_VENV/bin/python" -m pip install -qq --disable-pip-version-check "ddev==$DDEV_VERSION"
    fi
    export PATH="$DDEV_VENV/bin:$PATH"
}

# Create (once) the environment the demo and the dry run run in: the integration, editable (so it
# runs the code of this working tree), and the datadog-checks-base release the tests pin, with its
# `deps` extra. Sets DEMO_PYTHON to its interpreter.
ensure_demo_venv() {
    local venv="$ROOT/.venv-demo"
    DEMO_PYTHON="$venv/bin/python"
    if [ -x "$DEMO_PYTHON" ] && "$DEMO_PYTHON" -c 'import datadog_checks.pagerduty_dora' >/dev/null 2>&1; then
        return 0
    fi
    require_demo_python
    echo "Setting up $venv with $DEMO_BASE_PYTHON" >&2
    rm -rf "$venv"
    "$DEMO_BASE_PYTHON" -m venv "$venv"
    "$DEMO_PYTHON" -m pip install -qq --disable-pip-version-check \
        "datadog-checks-base[deps]==$DDEV_TEST_BASE_PACKAGE_VERSION"
    "$DEMO_PYTHON" -m pip install -qq --disable-pip-version-check --no-deps -e "$ROOT/pagerduty_dora"
}
