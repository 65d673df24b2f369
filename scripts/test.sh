#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, then runs every check CI runs:
# formatting, clippy with warnings as errors, and the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Rust toolchain comes with the machine; make sure its components are there.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
# SQLite is bundled into the binary by sqlx; the build needs only a C compiler.
if ! command -v cc >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq build-essential
fi

# The MCP tests drive Airlock with the official MCP Python SDK, as client and as upstream.
if ! python3 -c "import mcp.server.mcpserver" >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-pip
  fi
  python3 -m pip install --quiet --root-user-action=ignore -r crates/airlock-server/tests/mcp/requirements.txt -r examples/mcp/requirements.txt \
    || python3 -m pip install --quiet --break-system-packages -r crates/airlock-server/tests/mcp/requirements.txt -r examples/mcp/requirements.txt
fi

# The aws provider's tests run against moto_server (PyPI `moto[server]`, with boto3 for the
# example's setup script), which each test starts on a loopback port of its own.
if ! python3 -c "import moto.server, boto3" >/dev/null 2>&1; then
  python3 -m pip install --quiet --root-user-action=ignore -r crates/airlock-provider-aws/tests/requirements.txt \
    || python3 -m pip install --quiet --break-system-packages -r crates/airlock-provider-aws/tests/requirements.txt
fi

# The watch and alert tests start a real Prometheus and Alertmanager (Debian's packages) on
# loopback ports of their own. The packages' system services are not started.
if { ! command -v prometheus >/dev/null 2>&1 && [ -z "${AIRLOCK_PROMETHEUS:-}" ]; } \
  || { ! command -v prometheus-alertmanager >/dev/null 2>&1 && [ -z "${AIRLOCK_ALERTMANAGER:-}" ]; }; then
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager || echo "warning: apt-get reported an error installing Prometheus"
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  command -v prometheus >/dev/null 2>&1 || { echo "error: prometheus did not install" >&2; exit 1; }
  command -v prometheus-alertmanager >/dev/null 2>&1 || { echo "error: prometheus-alertmanager did not install" >&2; exit 1; }
fi

# The PostgreSQL tests (the shared journal of several replicas) use a throwaway cluster
# started here from Debian's binaries on a loopback port, in a temp dir, as user `postgres`,
# and stopped when the tests end. The system cluster is never started.
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    || echo "warning: apt-get reported an error installing PostgreSQL"
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if [ -z "${AIRLOCK_TEST_POSTGRES:-}" ]; then
  pg_dir=$(mktemp -d /tmp/airlock-pg.XXXXXX)
  chmod 755 "$pg_dir"
  trap 'bash scripts/pg.sh stop "$pg_dir/cluster"; rm -rf "$pg_dir"' EXIT
  AIRLOCK_TEST_POSTGRES=$(bash scripts/pg.sh start "$pg_dir/cluster")
  export AIRLOCK_TEST_POSTGRES
  echo "== PostgreSQL for the tests at $AIRLOCK_TEST_POSTGRES"
fi

# The dashboard's browser test drives Debian's chromium, headless, with Playwright (npm
# `playwright-core`, pinned by tests/dashboard/package-lock.json).
# Only what is missing: a machine's own Node.js (not Debian's) conflicts with Debian's npm,
# and asking for both would fail the whole install, chromium included.
browser_pkgs=()
command -v chromium >/dev/null 2>&1 || browser_pkgs+=(chromium)
command -v node >/dev/null 2>&1 || browser_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || browser_pkgs+=(npm)
if [ "${#browser_pkgs[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${browser_pkgs[@]}" \
    || echo "warning: apt-get reported an error installing ${browser_pkgs[*]}"
fi
if [ ! -d crates/airlock-cli/tests/dashboard/node_modules/playwright-core ]; then
  npm ci --prefix crates/airlock-cli/tests/dashboard --no-audit --no-fund --loglevel=error
fi

# A CI run builds a clean checkout once, so rustc's incremental caches would only be written,
# never reused: they were 3 GB of a 10 GB target directory, on machines whose free disk
# varies. Elsewhere they stay on, for quick rebuilds.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
echo "== disk free for $target_dir (the build takes about 7 GB)"
df -h "$target_dir" | tail -n 1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee /tmp/airlock-test.log
