# Shared by start.sh and test.sh (sourced, not run): install what is missing.

# onnxruntime-node's postinstall downloads CUDA files (fails offline; its CPU binary is in
# the package); Playwright must never download a browser (we use Debian's chromium).
export ONNXRUNTIME_NODE_INSTALL=skip
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# node_modules is missing or does not match package.json / package-lock.json → install.
ensure_node_modules() {
  if [[ -d node_modules ]] && npm ls --depth=0 >/dev/null 2>&1; then
    return 0
  fi
  echo "==> installing npm dependencies"
  if [[ -f package-lock.json ]]; then
    # npm ci refuses a lock that lacks an optional dependency the registry does not have
    # (here: vite's Windows-only napi-windows-process-start-time); npm install copes.
    local log
    log="$(mktemp)"
    if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
      echo "npm ci failed ($(grep -m1 'Missing:' "$log" || grep -m1 'npm error' "$log" || echo 'see npm log')); falling back to npm install"
      npm install --no-audit --no-fund
    else
      cat "$log"
    fi
    rm -f "$log"
  else
    npm install --no-audit --no-fund
  fi
}

# Debian's chromium for the browser tests (never a downloaded one). LOPPER_CHROMIUM overrides.
ensure_chromium() {
  local exe="${LOPPER_CHROMIUM:-/usr/bin/chromium}"
  if [[ -x "$exe" ]]; then
    return 0
  fi
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing Debian chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium
  else
    echo "error: $exe not found; install Debian's chromium (apt-get install chromium) or set LOPPER_CHROMIUM" >&2
    return 1
  fi
}
