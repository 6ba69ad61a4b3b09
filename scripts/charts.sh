#!/usr/bin/env bash
# Regenerates every chart of results/reference/charts/ and every page of
# results/reference/reports/ (one self-contained HTML file per scenario) from the
# reference runs: the newest finished run of each scenario
# (results/reference/<scenario>/<timestamp>/).
# Works on a fresh machine: installs the chart font when missing, builds with cargo.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

REF=results/reference
OUT=$REF/charts
REPORTS=$REF/reports
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

if [ -z "${COMETBENCH_FONT:-}" ] && [ ! -f "$FONT" ]; then
    echo "charts.sh: $FONT missing, installing fonts-dejavu-core" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core
fi
if ! command -v cargo >/dev/null; then
    echo "charts.sh: cargo not found: install a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi

# The newest run of each scenario whose run.json is complete (a run being
# written has an empty finished_at).
runs=()
for scenario in "$REF"/*/; do
    scenario=${scenario%/}
    case "$(basename "$scenario")" in charts | reports) continue ;; esac
    newest=""
    for run in "$scenario"/*/; do
        run=${run%/}
        [ -f "$run/run.json" ] || continue
        grep -Eq '"finished_at": *""' "$run/run.json" && continue
        newest=$run # the glob sorts, and timestamps sort as text
    done
    if [ -n "$newest" ]; then
        runs+=("$newest")
    else
        echo "charts.sh: $scenario has no finished run, skipped" >&2
    fi
done
if [ ${#runs[@]} -eq 0 ]; then
    echo "charts.sh: no finished run under $REF/<scenario>/<timestamp>/" >&2
    exit 1
fi

cargo build --quiet --bin cometbench
mkdir -p "$OUT"
rm -f "$OUT"/*.svg "$OUT"/*.png
cargo run --quiet --bin cometbench -- chart "${runs[@]}" --out "$OUT"
mkdir -p "$REPORTS"
rm -f "$REPORTS"/*.html
cargo run --quiet --bin cometbench -- report "${runs[@]}" --out "$REPORTS"
