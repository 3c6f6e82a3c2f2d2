#!/bin/sh
# update-doc.sh - prints every tests/vectors/*.txt file, unchanged, into docs/PROTOCOL.md
# between the "vectors:begin" and "vectors:end" markers (test_frame checks they match).
# Run from anywhere; rewrites docs/PROTOCOL.md in place.
set -eu
cd "$(dirname "$0")/../.."
doc=docs/PROTOCOL.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk '/^<!-- vectors:begin/ { print; exit } { print }' "$doc" >"$tmp"
for f in tests/vectors/*.txt; do
    printf '\n### %s\n\n```text\n' "$(basename "$f")" >>"$tmp"
    cat "$f" >>"$tmp"
    printf '```\n' >>"$tmp"
done
printf '\n' >>"$tmp"
awk 'found { print } /^<!-- vectors:end/ { found = 1; print }' "$doc" >>"$tmp"
cp "$tmp" "$doc"
