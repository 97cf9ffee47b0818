#!/usr/bin/env bash
# With PERPLEXITY_ASYNC_SEPARATE_COMPILATION, each public header but src.hpp (and the umbrella async.hpp
# with them) must reach no header of Beast, OpenSSL or Asio's SSL layer: the compiler lists every file a
# unit includes (-M), and none may be one of those.
#   check_separate_includes.sh INCLUDE_DIR COMPILER... -- HEADER_NAME...
set -euo pipefail
include_dir=$1
shift
compiler=()
while [ "$1" != "--" ]; do
    compiler+=("$1")
    shift
done
shift
failed=0
for name in "$@"; do
    [ "$name" != src ] || continue
    if ! included=$("${compiler[@]}" -std=c++20 -DPERPLEXITY_ASYNC_SEPARATE_COMPILATION -I"$include_dir" -M -x c++ - \
        <<<"#include <perplexity/$name.hpp>"); then
        echo "<perplexity/$name.hpp> does not preprocess with separate compilation" >&2
        failed=1
        continue
    fi
    heavy=$(tr ' \\' '\n\n' <<<"$included" | grep -E '/boost/beast/|/openssl/|/boost/asio/ssl' | sort -u || true)
    if [ -n "$heavy" ]; then
        echo "<perplexity/$name.hpp> includes, with separate compilation:" >&2
        sed 's/^/    /' <<<"$heavy" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] && echo "no public header reaches Beast, OpenSSL or asio/ssl with separate compilation"
exit "$failed"
