#!/usr/bin/env bash
# Fails when a public header is missing from the list in tests/headers/meson.build (and so untested).
#   check_list.sh INCLUDE_DIR LISTED_NAME...
set -euo pipefail
dir=$1
shift
missing=()
for path in "$dir"/*.hpp; do
    name=$(basename "$path" .hpp)
    [[ " $* " == *" $name "* ]] || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "public headers not in public_headers (tests/headers/meson.build): ${missing[*]}" >&2
    exit 1
fi
echo "all $# public headers listed"
