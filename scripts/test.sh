#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: unit, integration
# (real Postgres, Redis and Celery worker) and end-to-end tests.
#
# Needs Postgres on 127.0.0.1:5432 (trust auth, user postgres) and Redis on
# 127.0.0.1:6379; the tests create and drop their own databases. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch is pinned by constraints.txt: an unpinned torch pulls a multi-GB CUDA build.
python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]" -e "./client[numpy,arviz,pandas]"

# The dashboard tests drive Debian's headless Chromium (installed only if missing).
bash tests/dashboard/install_browser.sh

set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
