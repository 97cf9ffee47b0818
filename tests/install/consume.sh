#!/usr/bin/env bash
# Installs perplexity-async into a scratch prefix and builds tests/install/consumer.cpp against it the
# three ways users do: with pkg-config, with CMake's find_package, and as a meson subproject; each way
# also builds tests/install/sqlite_consumer.cpp through the SQLite ledger's own module (pkg-config
# perplexity-async-sqlite, CMake perplexity::async_sqlite, meson perplexity-async-sqlite) and
# tests/install/postgres_consumer.cpp through the PostgreSQL ledger's (pkg-config
# perplexity-async-postgres, CMake perplexity::async_postgres, meson perplexity-async-postgres; it needs
# no database: it checks that opening one at an unreachable address fails as documented), and builds
# consumer.cpp once more with separate compilation (pkg-config perplexity-async-separate and CMake
# perplexity::async_separate with tests/install/separate_src.cpp as the user's src.hpp unit, meson
# perplexity-async-separate with the subproject's own). Each build
# must find this package (not another installed copy), compile warning-free and run successfully, and
# the prefix must hold exactly the headers and the package descriptions.
#   consume.sh SOURCE_DIR VERSION     (compiler: $CXX, as meson, CMake and the plain build take it)
set -euo pipefail
source_dir=$(cd "$1" && pwd)
version=$2
export CXX=${CXX:-c++}
here=$source_dir/tests/install
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix

quietly() {  # runs a command with its output shown only when it fails
    local log=$scratch/step.log
    "$@" >"$log" 2>&1 || { local status=$?; cat "$log"; echo "failed ($status): $*" >&2; return "$status"; }
}
run_consumer() {  # run_consumer PROGRAM: it must succeed and report this version
    local output line
    output=$("$1") || { echo "$output"; echo "$1 failed" >&2; return 1; }
    while IFS= read -r line; do echo "    $line"; done <<<"$output"
    grep -qx "perplexity-async $version" <<<"$output" || { echo "$1 reports another version" >&2; return 1; }
    grep -qx ok <<<"$output" || { echo "$1 did not finish" >&2; return 1; }
}
started=$SECONDS
lap() { echo "   (${1}: $((SECONDS - started)) s)"; started=$SECONDS; }

echo "== meson install --prefix $prefix"
quietly meson setup "$scratch/build" "$source_dir" --prefix "$prefix"
quietly meson install -C "$scratch/build" --no-rebuild
expected=$( (cd "$source_dir" && find include/perplexity -type f) |
    cat - <(printf '%s\n' share/pkgconfig/perplexity-async.pc share/pkgconfig/perplexity-async-sqlite.pc \
        share/pkgconfig/perplexity-async-postgres.pc \
        share/pkgconfig/perplexity-async-separate.pc \
        share/cmake/perplexity-async/perplexity-async-config.cmake \
        share/cmake/perplexity-async/perplexity-async-config-version.cmake) | sort)
installed=$(cd "$prefix" && find . ! -type d | sed 's|^\./||' | sort)
if [ "$installed" != "$expected" ]; then
    echo "the prefix does not hold exactly the headers and package files:" >&2
    diff <(echo "$expected") <(echo "$installed") >&2 || true
    exit 1
fi
lap install

echo "== pkg-config"
export PKG_CONFIG_PATH=$prefix/share/pkgconfig
[ "$(pkg-config --variable=prefix perplexity-async)" = "$prefix" ] || {
    echo "pkg-config found another perplexity-async: $(pkg-config --path perplexity-async)" >&2
    exit 1
}
mkdir "$scratch/pkg-config"
# Builds and runs scratch/pkg-config/OUTPUT from the compiler arguments given, with PACKAGE's flags, once
# PACKAGE's .pc file says this version.
pkg_config_consumer() {
    local package=$1 output=$2
    shift 2
    [ "$(pkg-config --modversion "$package")" = "$version" ] || {
        echo "$package.pc has another version" >&2
        exit 1
    }
    # shellcheck disable=SC2046,SC2086 # the compiler command and the flags are meant to split into words
    quietly $CXX -std=c++20 -Wall -Wextra -Wpedantic -Werror "$@" -o "$scratch/pkg-config/$output" \
        $(pkg-config --cflags --libs "$package")
    run_consumer "$scratch/pkg-config/$output"
}
pkg_config_consumer perplexity-async consumer "$here/consumer.cpp"
pkg_config_consumer perplexity-async-sqlite sqlite_consumer "$here/sqlite_consumer.cpp"
pkg_config_consumer perplexity-async-postgres postgres_consumer "$here/postgres_consumer.cpp"
pkg_config_consumer perplexity-async-separate separate_consumer -DEXPECT_SEPARATE_COMPILATION \
    "$here/consumer.cpp" "$here/separate_src.cpp"
unset PKG_CONFIG_PATH
lap pkg-config

echo "== CMake find_package"
cp -r "$here/cmake" "$scratch/cmake"
cp "$here/consumer.cpp" "$here/sqlite_consumer.cpp" "$here/postgres_consumer.cpp" "$here/separate_src.cpp" \
    "$scratch/cmake/"
quietly cmake -S "$scratch/cmake" -B "$scratch/cmake/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
    -DEXPECTED_VERSION="$version"
found=$(sed -n 's/^perplexity-async_DIR:PATH=//p' "$scratch/cmake/build/CMakeCache.txt")
[ "$found" = "$prefix/share/cmake/perplexity-async" ] || { echo "CMake found another package: $found" >&2; exit 1; }
quietly cmake --build "$scratch/cmake/build" -j 1
run_consumer "$scratch/cmake/build/consumer"
run_consumer "$scratch/cmake/build/sqlite_consumer"
run_consumer "$scratch/cmake/build/postgres_consumer"
run_consumer "$scratch/cmake/build/separate_consumer"
lap CMake

echo "== meson subproject"
mkdir -p "$scratch/subproject/subprojects"
cp "$here/meson-subproject/meson.build" "$here/consumer.cpp" "$here/sqlite_consumer.cpp" \
    "$here/postgres_consumer.cpp" "$scratch/subproject/"
ln -s "$source_dir" "$scratch/subproject/subprojects/perplexity-async"
quietly meson setup "$scratch/subproject/build" "$scratch/subproject" --force-fallback-for=perplexity-async
quietly meson compile -C "$scratch/subproject/build" -j 1
run_consumer "$scratch/subproject/build/consumer"
run_consumer "$scratch/subproject/build/sqlite_consumer"
run_consumer "$scratch/subproject/build/postgres_consumer"
run_consumer "$scratch/subproject/build/separate_consumer"
lap subproject
