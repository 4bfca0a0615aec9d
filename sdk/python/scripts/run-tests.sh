#!/usr/bin/env bash
# `npm run test:python`: the Python SDK's tests (pytest) in the repository's .venv, which .ci/run creates.
# Needs the built server (dist/): `npm test` builds it first. On a developer machine without the venv this
# says how to create it and skips; under CI=true a missing venv is a failure.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
if [ ! -x "$PY" ] || ! "$PY" -c 'import trainwatch, pytest' 2>/dev/null; then
  how="python3 -m venv .venv && .venv/bin/pip install -e ./sdk/python -r sdk/python/requirements-test.txt"
  if [ "${CI:-}" = "true" ]; then
    echo "test:python: .venv with the trainwatch SDK and pytest is missing (.ci/run creates it: $how)" >&2
    exit 1
  fi
  echo "test:python: SKIPPED — no .venv with the Python SDK. Create it (about 2 minutes, ~5 GB with torch) with:"
  echo "  $how"
  exit 0
fi
exec "$PY" -m pytest sdk/python/tests -q -p no:cacheprovider "$@"
