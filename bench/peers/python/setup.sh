#!/usr/bin/env bash
# Creates the python-socketio peer's virtualenv (bench/peers/python/.venv-peer) from PyPI.
# Idempotent: an existing venv is reused and only brought up to requirements.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-peer"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c 'import socketio, engineio, aiohttp; print("peer venv ready: python-socketio", socketio.__version__ if hasattr(socketio, "__version__") else "?")'
