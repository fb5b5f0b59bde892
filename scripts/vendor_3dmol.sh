#!/usr/bin/env bash
# Re-vendor the 3Dmol.js viewer used by multiflow.evaluation.viz (offline HTML pages).
#
#   bash scripts/vendor_3dmol.sh            # the pinned version below
#   bash scripts/vendor_3dmol.sh 2.5.5      # another version
#
# Fetches the npm package `3dmol` with `npm pack` (npm registry only), copies its
# build/3Dmol-min.js to multiflow/assets/3Dmol-min.js and its licence (BSD-3-Clause,
# plus the notices of the code it bundles) to multiflow/assets/3Dmol-LICENSE.txt,
# and records version and sha256 in multiflow/assets/3Dmol-VERSION.txt.
set -euo pipefail

VERSION="${1:-2.5.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="$ROOT/multiflow/assets"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

command -v npm >/dev/null || { echo "npm not found: apt-get install -y npm" >&2; exit 1; }
mkdir -p "$ASSETS"
(cd "$WORK" && npm pack --silent "3dmol@$VERSION" >/dev/null)
tar -xzf "$WORK/3dmol-$VERSION.tgz" -C "$WORK"
PKG="$WORK/package"

# The script is inlined into a <script> element: it must not contain a closing tag.
if grep -qi '</script' "$PKG/build/3Dmol-min.js"; then
    echo "3Dmol-min.js $VERSION contains '</script'; it cannot be inlined as is" >&2
    exit 1
fi

cp "$PKG/build/3Dmol-min.js" "$ASSETS/3Dmol-min.js"
DEPS="$(node -e 'const d=require(process.argv[1]).dependencies||{};console.log(Object.entries(d).map(([k,v])=>k+"@"+v).join(" "))' "$PKG/package.json")"
{
    echo "3Dmol.js $VERSION (npm package 3dmol, build/3Dmol-min.js), vendored by scripts/vendor_3dmol.sh."
    echo "Licence: BSD-3-Clause (3Dmol.js). The minified build also bundles its npm dependencies"
    echo "($DEPS); their notices follow the package licence."
    echo
    cat "$PKG/LICENSE"
    if [ -f "$PKG/build/3Dmol-min.js.LICENSE.txt" ]; then
        echo
        echo "--- build/3Dmol-min.js.LICENSE.txt ---"
        cat "$PKG/build/3Dmol-min.js.LICENSE.txt"
    fi
    # Notices of the runtime dependencies webpack bundled into the minified build.
    for spec in $DEPS; do
        dir="$WORK/dep-${spec%%@*}"
        mkdir -p "$dir"
        (cd "$dir" && npm pack --silent "$spec" >/dev/null && tar -xzf ./*.tgz)
        echo
        echo "--- bundled dependency $spec ($(node -p "require('$dir/package/package.json').version"), licence $(node -p "require('$dir/package/package.json').license")) ---"
        cat "$dir"/package/LICENSE* 2>/dev/null || echo "(no LICENSE file in the package)"
    done
} > "$ASSETS/3Dmol-LICENSE.txt"
{
    echo "package: 3dmol"
    echo "version: $VERSION"
    echo "file: build/3Dmol-min.js"
    echo "sha256: $(sha256sum "$ASSETS/3Dmol-min.js" | cut -d' ' -f1)"
    echo "bytes: $(wc -c < "$ASSETS/3Dmol-min.js")"
} > "$ASSETS/3Dmol-VERSION.txt"
echo "vendored 3dmol $VERSION into $ASSETS ($(wc -c < "$ASSETS/3Dmol-min.js") bytes)"
