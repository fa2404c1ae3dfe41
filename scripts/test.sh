#!/usr/bin/env bash
# npm test: install what is missing (npm packages, Debian chromium), then run
# svelte-check, the Node Vitest project, the browser Vitest project (real Chromium) and the
# end-to-end project (the built app on the preview server, driven by Playwright in Chromium;
# screenshots under test-results/e2e/).
# Every step runs even if an earlier one fails; the exit status says whether all passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

ensure_node_modules
ensure_chromium

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()

step() {
  local name="$1"
  shift
  echo
  echo "==> $name: $*"
  if "$@" 2>&1 | tee "$logs/$name.log"; then
    echo "==> $name: passed"
  else
    echo "==> $name: FAILED"
    failed+=("$name")
  fi
}

step check npx svelte-check --tsconfig ./tsconfig.json --fail-on-warnings
step node npx vitest run --project node
step browser npx vitest run --project browser
step e2e npx vitest run --project e2e

# Recap: svelte-check's verdict and Vitest's own summary lines, colours stripped.
echo
echo "==> summary"
for name in check node browser e2e; do
  echo "[$name]"
  sed -e 's/\x1b\[[0-9;]*m//g' "$logs/$name.log" |
    grep -E '^svelte-check found|^ *(Test Files|Tests|Errors|Duration) ' || echo "  (no summary line; see the output above)"
done

if [[ -d test-results/e2e ]]; then
  echo "[e2e screenshots]"
  find test-results/e2e -name '*.png' | sort | sed 's/^/  /'
fi

# What failed, by name, with the first lines of its error, last (CI shows only the tail of this output).
for name in node browser e2e; do
  sed -e 's/\x1b\[[0-9;]*m//g' "$logs/$name.log" | grep -E -A2 '^ *FAIL ' | grep -vE '^--$' | cut -c1-400 | head -n 30 | sed "s/^/[$name] /" || true
done

# One closing line over all Vitest projects, in the plain form CI reads: "N passed, N failed".
passed=0
fails=0
for name in node browser e2e; do
  line=$(sed -e 's/\x1b\[[0-9;]*m//g' "$logs/$name.log" | grep -E '^ *Tests ' | tail -n 1 || true)
  p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
  f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
  passed=$((passed + ${p:-0}))
  fails=$((fails + ${f:-0}))
  [ -n "$line" ] || fails=$((fails + 1)) # a project that printed no summary did not pass
done
echo "${passed} passed, ${fails} failed"

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passed"
