#!/usr/bin/env bash
# npm start: install what is missing, build, and serve the built app with `vite preview`
# (COOP/COEP headers, ../shared/models mirrored at /models/) on a fixed port.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-4173}"

ensure_node_modules
echo "==> building"
node_modules/.bin/vite build
echo "==> serving lopper at http://${HOST}:${PORT}/"
exec node_modules/.bin/vite preview --host "$HOST" --port "$PORT" --strictPort
