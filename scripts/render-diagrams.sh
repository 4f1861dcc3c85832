#!/usr/bin/env bash
# Renders every ```mermaid block of docs/architecture.md to docs/diagrams/architecture-<n>.svg
# (n counts the blocks from the top), with a pinned Mermaid CLI from npm driving the
# distribution's Chromium: no browser is downloaded.
#
# Run it by hand after changing a diagram, and commit the SVGs. CI does not run it: it starts a
# headless browser per diagram and takes a while.
#
# Needs node/npm and Chromium at $CHROMIUM (default /usr/bin/chromium; on Debian:
# `apt-get install chromium`). The CLI is installed once under ~/.cache/eventhive.
set -euo pipefail
cd "$(dirname "$0")/.."

MERMAID_CLI_VERSION=12.2.0
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
TOOLS="${EVENTHIVE_DIAGRAM_TOOLS:-$HOME/.cache/eventhive/mermaid-cli-$MERMAID_CLI_VERSION}"
SOURCE=docs/architecture.md
OUT=docs/diagrams

if [ ! -x "$CHROMIUM" ]; then
    echo "render-diagrams: no Chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)" >&2
    exit 1
fi
if [ ! -x "$TOOLS/node_modules/.bin/mmdc" ]; then
    echo "== installing @mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION into $TOOLS (without a browser)"
    mkdir -p "$TOOLS"
    PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error \
        "@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Root in a container or CI sandbox: Chromium's own sandbox cannot start there.
cat > "$work/puppeteer.json" <<JSON
{ "executablePath": "$CHROMIUM", "args": ["--no-sandbox", "--disable-gpu"] }
JSON

# One file per block, in document order.
awk -v dir="$work" '
    /^```mermaid[[:space:]]*$/ { n++; file = sprintf("%s/architecture-%d.mmd", dir, n); inside = 1; next }
    inside && /^```[[:space:]]*$/ { inside = 0; close(file); next }
    inside { print > file }
' "$SOURCE"

mkdir -p "$OUT"
rm -f "$OUT"/architecture-*.svg
for source in "$work"/architecture-*.mmd; do
    target="$OUT/$(basename "${source%.mmd}").svg"
    echo "== $target"
    "$TOOLS/node_modules/.bin/mmdc" --quiet --puppeteerConfigFile "$work/puppeteer.json" \
        --input "$source" --output "$target" --backgroundColor white
done
echo "rendered $(ls "$OUT"/architecture-*.svg | wc -l) diagrams into $OUT; commit them"
