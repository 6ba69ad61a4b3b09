#!/usr/bin/env bash
# The test command of the README and of CI: installs what the tests need when
# it is missing (scripts/deps.sh: Debian packages, rustup components), then
# format, lints, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
