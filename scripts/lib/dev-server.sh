# Sourced by the scripts that test a running `eventhive dev` (fuzz-api.sh, browser-tests.sh):
# the built binary, a scratch folder, and a server that is stopped however the script ends.
# Set SCRIPT (the caller's name, for messages) first; afterwards BINARY, WORK, SERVER (the
# caller sets it to the server's pid) and stop_server are there.
BINARY="${CARGO_TARGET_DIR:-target}/debug/eventhive"
[ -x "$BINARY" ] || { echo "$SCRIPT: build eventhive first (cargo build --bin eventhive)" >&2; exit 2; }
WORK="$(mktemp -d)"
SERVER=""
stop_server() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=""
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT
