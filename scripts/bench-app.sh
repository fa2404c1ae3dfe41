#!/usr/bin/env bash
# npm run bench:app: every catalog model's exact shape (seeded random bf16 weights) through the
# built app in Chromium on WASM — download into IndexedDB, calibrate and prune (BI, one layer,
# one window of 128), perplexities, generation; Llama-3.2-1B also exported and checked against
# the CLI — and the table of download-to-ready time, calibration, perplexity and decode tokens/s,
# Chromium's peak resident memory and the worker's WebAssembly memory (test/e2e/full-size.test.ts).
# LOPPER_APP_SHAPES picks models by catalog id (comma-separated); default: all. About 30 minutes here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
ensure_node_modules
ensure_chromium
LOPPER_APP_SHAPES="${LOPPER_APP_SHAPES:-all}" npx vitest run --project e2e test/e2e/full-size.test.ts
