#!/usr/bin/env bash
# The test command of the README and of CI: installs what the tests need when
# it is missing (scripts/deps.sh: Debian packages, rustup components), then
# format, lints, and every test (`cargo test --workspace`'s, in lanes).
#
# The test binaries run in LANES side by side, each lane one binary after
# another: the scenario suites spend most of their time waiting (holds,
# publishing at a few messages a second, deadlines), so the lanes finish in
# about the time of the longest. The last lane runs every test binary no
# lane names, the unit tests and the doc tests, so a new suite is never left
# out. Each lane's output is printed whole when every lane is done.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-run

# Each entry a lane of test binaries (the file names of the tests/ folders).
LANES=(
    "faults scale"
    "chat cli hosts"
)

# Every test binary of the workspace.
all_tests() {
    cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "test" in t["kind"]:
            print(t["name"])'
}

named=" ${LANES[*]} "
rest=()
for t in $(all_tests); do
    [[ $named == *" $t "* ]] || rest+=("$t")
done

logs=target/test-lanes
mkdir -p "$logs"

# Lane NAME: `cargo test --workspace` with ARGS, its output in NAME.log.
lane() {
    local name=$1 start=$SECONDS status=ok
    shift
    # --no-fail-fast: a failing binary does not keep the lane's later ones from running.
    cargo test --workspace --no-fail-fast "$@" >"$logs/$name.log" 2>&1 || status=FAILED
    echo "$status in $((SECONDS - start)) s" >"$logs/$name.status"
    echo "scripts/test.sh: lane $name: $status in $((SECONDS - start)) s" >&2
}

names=()
for i in "${!LANES[@]}"; do
    args=()
    for t in ${LANES[$i]}; do args+=(--test "$t"); done
    names+=("lane$((i + 1))")
    lane "lane$((i + 1))" "${args[@]}" &
done
rest_args=(--lib --bins)
for t in "${rest[@]}"; do rest_args+=(--test "$t"); done
names+=(rest)
{ lane rest "${rest_args[@]}" && lane doc --doc; } &
names+=(doc)
wait

failed=0
for n in "${names[@]}"; do
    echo "==== lane $n: $(cat "$logs/$n.status")"
    cat "$logs/$n.log"
done
for n in "${names[@]}"; do
    echo "scripts/test.sh: lane $n: $(cat "$logs/$n.status")"
    grep -q '^ok' "$logs/$n.status" || failed=1
done
exit $failed
