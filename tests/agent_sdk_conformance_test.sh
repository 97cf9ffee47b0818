#!/usr/bin/env bash
# Runs tests/conformance/agent_sdk.mjs, the official TypeScript SDK's responses.create / retrieve / cancel,
# against a real perplexity-sim process over verified HTTPS.
#   agent_sdk_conformance_test.sh SIM_BINARY CONFORMANCE_DIR CACHE_DIR
# The SDK is installed with `npm ci` from CONFORMANCE_DIR's package-lock.json into CACHE_DIR (inside the
# build directory), once per lock file. Exits 77 (skipped) only when node is not installed; a missing npm
# or a failing install is a failure, not a skip.
set -uo pipefail
sim=$1
conformance_dir=$2
cache_dir=$3
source "$(dirname "$0")/example_lib.sh"

if ! command -v node >/dev/null; then
    echo "SKIPPED: node is not installed (.ci/install-deps installs nodejs and npm)"
    exit 77
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "warning: the SDK supports node 20 and later, this is $(node --version); trying anyway" >&2
fi

mkdir -p "$cache_dir"
if ! cmp -s "$conformance_dir/package-lock.json" "$cache_dir/package-lock.json" ||
    [ ! -d "$cache_dir/node_modules/@perplexity-ai/perplexity_ai" ]; then
    if ! command -v npm >/dev/null; then
        echo "FAILED: npm is not installed, so the SDK cannot be installed (.ci/install-deps installs it)"
        exit 1
    fi
    cp "$conformance_dir/package.json" "$conformance_dir/package-lock.json" "$cache_dir/"
    echo "installing the TypeScript SDK with npm ci into $cache_dir"
    if ! (cd "$cache_dir" && npm ci --no-audit --no-fund); then
        rm -f "$cache_dir/package-lock.json"  # so the next run tries again
        echo "FAILED: npm ci could not install the SDK (is the npm registry reachable?)"
        exit 1
    fi
fi
# Next to its node_modules, so that its import of the SDK resolves.
cp "$conformance_dir/agent_sdk.mjs" "$cache_dir/agent_sdk.mjs"

start_simulator url "$workdir/sim" || exit 1
NODE_EXTRA_CA_CERTS="$workdir/sim/ca.pem" node "$cache_dir/agent_sdk.mjs" --base-url "$url" --api-key test-key \
    >"$workdir/out" 2>"$workdir/err"
code=$?
cat "$workdir/out"
check "the SDK conformance checks pass (exit $code: $(cat "$workdir/err"))" [ "$code" -eq 0 ]
stop_simulator "$workdir/sim"
check "the simulator counted the SDK's responses" grep -q " responses, .* response creates received" \
    "$workdir/sim/sim.log"
finish
