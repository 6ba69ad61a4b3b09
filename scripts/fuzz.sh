#!/usr/bin/env bash
# Fuzzes the request parser and connection state machine (target `request`),
# the client decoders (target `client`), the WebSocket frame decoders and
# handshake (target `ws`) and a connection speaking WebSocket (target
# `conn_ws`) for a fixed time each.
# Not part of CI: run by hand, e.g. `scripts/fuzz.sh 300` (seconds per target),
# or `scripts/fuzz.sh 180 ws conn_ws` for only the targets named.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-120}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request client ws conn_ws)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz needs nightly flags (sanitizers); the machine has only stable.
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    mkdir -p "artifacts/$target" "corpus-run/$target"
    # New inputs go to corpus-run/ (ignored); the committed seeds stay as they are.
    cargo fuzz run "$target" "corpus-run/$target" "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -n 25
done
