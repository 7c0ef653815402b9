# Shared set-up for the scripts in this folder; source it, don't run it.
# Finds the Python 3.13 interpreter (on PATH or installed by pyenv) and puts it on PATH so that hatch
# uses it instead of downloading its own; provides `require_python312` (for the tests) and `ensure_ddev`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DDEV_VERSION="${DDEV_VERSION:-20.1.0}"
DDEV_VENV="${DDEV_VENV:-$ROOT/.venv-ddev}"
# The datadog-checks-base release the tests run against: the one the Agent ships.
export DDEV_TEST_BASE_PACKAGE_VERSION="${DDEV_TEST_BASE_PACKAGE_VERSION:-38.5.0}"

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

# Python 3.13 runs the demo and ddev; 3.12 only the tests, so only `require_python312` asks for it.
PYTHON313="$(find_python 3.13)"
export PATH="$(dirname "$PYTHON313"):$PATH"

# Find Python 3.12 and put it on PATH, or fail: the test suite runs on both versions.
require_python312() {
    PYTHON312="$(find_python 3.12)"
    export PATH="$(dirname "$PYTHON312"):$PATH"
}

# Create (once) a virtual environment holding ddev, and put it first on PATH.
ensure_ddev() {
    if ! "$DDEV_VENV/bin/ddev" --version 2>/dev/null | grep -q "version $DDEV_VERSION\$"; then
        echo "Installing ddev $DDEV_VERSION into $DDEV_VENV" >&2
        rm -rf "$DDEV_VENV"
        "$PYTHON313" -m venv "$DDEV_VENV"
        "$DDEV_VENV/bin/python" -m pip install -qq --disable-pip-version-check "ddev==$DDEV_VERSION"
    fi
    export PATH="$DDEV_VENV/bin:$PATH"
}
