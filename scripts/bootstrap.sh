#!/usr/bin/env bash
# Create the project's virtualenv and install sockinspect with its test tools.
# On a Debian machine whose python3 lacks venv/ensurepip, install python3-venv
# first (as root, non-interactively); everything else comes from PyPI.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing python3-venv with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "bootstrap: $python has no venv module; install python3-venv" >&2
        exit 2
    fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'
# Compile the analysis engine once, now, into numba's cache: no analysis ever waits for it.
# Without it (no writable cache) large captures are analyzed as Python: slower, same answers.
"$venv/bin/python" -m sockinspect.analysis || echo "bootstrap: the engine is not compiled; large captures will be slower" >&2
