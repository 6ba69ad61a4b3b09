#!/usr/bin/env bash
# What the tests need besides a Rust toolchain, listed once: scripts/test.sh
# (the README's test command, and CI's through .ci/run) runs this first.
# It installs only what is missing, so once everything is there it changes
# nothing and prints nothing.
#
#   scripts/deps.sh            install what is missing
#   scripts/deps.sh --check    name what is missing and exit 1; install nothing
#   scripts/deps.sh --dry-run  print the commands an install would run
#   scripts/deps.sh --list     print the Debian packages, one a line
#
# Debian packages are installed with apt-get as root (or `sudo -n` where that
# works without a password); otherwise it says what to install and exits 1.
set -euo pipefail

# The Debian packages, and who needs them:
#   nginx libnginx-mod-nchan  nginx + nchan, a peer (tests/peers.rs, scripts/peers/nchan.sh)
#   pushpin python3           Pushpin and the GRIP backend that stands for its
#                             application (tests/peers.rs, scripts/peers/pushpin.sh)
#   fonts-dejavu-core         the font the charts are drawn with (tests/chart.rs)
#   chromium                  the browser that runs the iframe transport (tests/browser.rs)
#                             and the chat page on every transport (tests/chat.rs)
#   redis-server              the broker of horizontal scaling (dispatchers/tests/broker.rs,
#                             dispatchers/tests/cluster.rs, tests/scale.rs,
#                             scripts/broker/redis.sh)
#   python3-websockets        an independent WebSocket client (dispatchers/tests/websockets.rs)
#   haproxy                   the balancer in front of several nodes (tests/scale.rs,
#                             scripts/balancer/haproxy.sh)
#   iproute2                  `ip` and `tc`: the network namespaces that stand for hosts
#                             (tests/hosts.rs, [hosts] namespaces = N; they also need root)
PACKAGES=(nginx libnginx-mod-nchan pushpin python3 fonts-dejavu-core chromium redis-server
    python3-websockets haproxy iproute2)
# The rustup components the test command runs: `cargo fmt`, `cargo clippy`.
COMPONENTS=(rustfmt clippy)

me=scripts/deps.sh
mode=install
case "${1:-}" in
    '') ;;
    --check) mode=check ;;
    --dry-run) mode=dry-run ;;
    --list)
        printf '%s\n' "${PACKAGES[@]}"
        exit 0
        ;;
    *)
        echo "usage: $me [--check | --dry-run | --list]" >&2
        exit 2
        ;;
esac

# Installed means dpkg's "install ok installed": a package removed with its
# configuration kept is still known to dpkg, and `dpkg -s` succeeds on it.
is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qx 'install ok installed'
}

# The component `rustfmt` is `cargo fmt`, `clippy` is `cargo clippy`.
has_component() {
    case "$1" in
        rustfmt) cargo fmt --version >/dev/null 2>&1 ;;
        clippy) cargo clippy --version >/dev/null 2>&1 ;;
    esac
}

missing=()
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$me: this is not a Debian-like system (no dpkg-query): install the equivalents of" \
        "${PACKAGES[*]} yourself, or the peer, chart and browser tests fail" >&2
    exit 1
fi
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
missing_components=()
for c in "${COMPONENTS[@]}"; do
    has_component "$c" || missing_components+=("$c")
done

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_components[@]} -eq 0 ]; then
    [ "$mode" = install ] || echo "$me: nothing missing" >&2
    exit 0
fi

if [ "$mode" = check ]; then
    [ ${#missing[@]} -gt 0 ] && echo "$me: Debian packages missing: ${missing[*]}" >&2
    [ ${#missing_components[@]} -gt 0 ] && echo "$me: rustup components missing: ${missing_components[*]}" >&2
    exit 1
fi

# apt-get as root, or through sudo when it needs no password (a script must
# not stop at a prompt).
sudo=()
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    elif [ "$mode" = install ]; then
        echo "$me: the tests need these Debian packages, not installed: ${missing[*]}" >&2
        echo "$me: install them as root, then run the tests again:" >&2
        echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    else
        sudo=(sudo)
    fi
fi

run() {
    if [ "$mode" = dry-run ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

if [ ${#missing_components[@]} -gt 0 ]; then
    if ! command -v rustup >/dev/null 2>&1; then
        echo "$me: cargo lacks ${missing_components[*]} and there is no rustup to add them:" \
            "install them with your Rust toolchain" >&2
        exit 1
    fi
    [ "$mode" = install ] && echo "$me: adding rustup components ${missing_components[*]}" >&2
    run rustup component add "${missing_components[@]}"
fi

if [ ${#missing[@]} -gt 0 ]; then
    [ "$mode" = install ] && echo "$me: installing ${missing[*]}" >&2
    # The package lists of a fresh machine are empty or old: update first.
    run "${sudo[@]}" apt-get update -qq
    # No service may start on installation (a stock nginx would listen on
    # 0.0.0.0:80): Debian's invoke-rc.d honours policy-rc.d, present in
    # container images, and RUNLEVEL=1 keeps the sysv scripts quiet elsewhere.
    run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
