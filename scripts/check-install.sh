#!/usr/bin/env bash
# Check that libconvvae installs and can be used the way a user would use it:
#  - builds the shared and static libraries and the tool (RelWithDebInfo, so
#    the ABI check sees types), installs them into a temporary prefix and then
#    moves that prefix (everything must be relocatable);
#  - SONAME, exported symbols (exactly the functions convvae.h declares),
#    the tool, pkg-config and the CMake package (version rules);
#  - builds and runs the consumers against the INSTALLED files only:
#    examples/consumer-cmake (shared and ConvVAE::convvae_static, with
#    examples/cluster_images.cpp; also fully static, -static with every
#    dependency an archive) and examples/consumer-pkgconfig (shared,
#    `pkg-config --static`, and that with `cc -static`);
#  - the header tests (convvae.h alone as C99 and C++17, -Werror);
#  - the ABI check: abidiff --no-added-syms against abi/libconvvae.so.<major>.abi.
# Prints one line per check and exits non-zero if any failed; logs of failed
# checks are printed and kept. docs/abi.md explains the ABI policy.
#
# Usage: scripts/check-install.sh [--update-abi] [build-dir]
#   build-dir     default build-check-install (reused between runs)
#   --update-abi  rewrite abi/libconvvae.so.<major>.abi from this build (only on
#                 purpose: see docs/abi.md), then run every check
# The check_* functions are called indirectly, through run_check.
# shellcheck disable=SC2317
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

update_abi=0
if [ "${1:-}" = "--update-abi" ]; then
    update_abi=1
    shift
fi
build=${1:-build-check-install}
case $build in /*) ;; *) build="$here/$build" ;; esac
start=$(date +%s)

if ! command -v abidw >/dev/null || ! command -v abidiff >/dev/null; then
    scripts/install-deps.sh abigail-tools
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/convvae-check-install.XXXXXX")
prefix="$work/prefix"
passed=0
failed=0

# run_check NAME FUNCTION: runs FUNCTION in a subshell with errexit (so any
# failing command fails the check), logging to $work/NAME.log, and sets
# check_rc. The check's last "=> " line is its summary. run_check must not be
# called where bash ignores errexit (after if, ||, &&): that would silently
# switch it off inside the check too.
check_rc=0
run_check() {
    local name=$1 fn=$2 detail
    set +e
    (set -e; "$fn") >"$work/$name.log" 2>&1
    check_rc=$?
    set -e
    detail=$(grep '^=> ' "$work/$name.log" | tail -1 | cut -c4-) || true
    if [ $check_rc -eq 0 ]; then
        printf 'check-install: %-30s OK    %s\n' "$name" "$detail"
        passed=$((passed + 1))
    else
        printf 'check-install: %-30s FAIL  %s\n' "$name" "$detail"
        sed 's/^/    | /' "$work/$name.log" | tail -40
        failed=$((failed + 1))
    fi
}

finish() {
    local secs=$(($(date +%s) - start))
    echo "check-install: $passed passed, $failed failed (${secs}s)"
    if [ $failed -eq 0 ]; then
        rm -rf "$work"
        exit 0
    fi
    echo "check-install: logs kept in $work"
    exit 1
}

# ---------------------------------------------------------------- build ----
libdir=lib # until the build's cache says otherwise (GNUInstallDirs)
check_build() {
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVAE_WERROR=ON \
        -DBUILD_SHARED_LIBS=ON -DCVAE_BUILD_STATIC=ON -DCVAE_INSTALL=ON \
        -DCVAE_BUILD_TOOL=ON -DCVAE_BUILD_BENCH=OFF -DBUILD_TESTING=ON
    cmake --build "$build" -j2 --target convvae convvae_static convvae_cli
    echo "=> RelWithDebInfo build of convvae, convvae_static, convvae_cli in ${build#"$here"/}"
}

check_install() {
    rm -rf "$work/stage" "$prefix"
    cmake --install "$build" --prefix "$work/stage"
    # Everything must work from wherever the tree ends up.
    mv "$work/stage" "$prefix"
    local f missing=0
    for f in include/convvae.h bin/convvae \
        "$libdir/libconvvae.so.$version" "$libdir/$soname" "$libdir/libconvvae.so" \
        "$libdir/libconvvae.a" "$libdir/pkgconfig/convvae.pc" \
        "$libdir/cmake/ConvVAE/ConvVAEConfig.cmake" \
        "$libdir/cmake/ConvVAE/ConvVAEConfigVersion.cmake" \
        "$libdir/cmake/ConvVAE/ConvVAETargets.cmake" "$libdir/cmake/ConvVAE/FindBLIS.cmake"; do
        [ -e "$prefix/$f" ] || { echo "missing: $f"; missing=1; }
    done
    [ "$missing" -eq 0 ]
    # No path of the build or source tree may leak into the installed files.
    if grep -rlF -e "$here" -e "$work/stage" "$prefix/include" "$prefix/$libdir/cmake" \
        "$prefix/$libdir/pkgconfig"; then
        echo "installed files name the build tree or the staging prefix"
        return 1
    fi
    echo "=> $(find "$prefix" -type f -o -type l | wc -l) files, installed then moved to a new prefix"
}

# run_prog PROGRAM [ARGS]: runs it, logs its output and keeps its stdout in
# prog_out; a non-zero exit fails the check with the program's last line.
prog_out=""
run_prog() {
    prog_out=$("$@") || {
        local rc=$?
        echo "$prog_out"
        echo "=> ${1##*/} exited $rc: $(echo "$prog_out" | tail -1)"
        return 1
    }
    echo "$prog_out"
}

# -------------------------------------------------------- the library ----
# loads_installed BINARY: the loader resolves libconvvae for BINARY (with the
# caller's environment) to the installed file, not to a build tree.
loads_installed() {
    local got
    got=$(ldd "$1" | awk -v so="$soname" '$1 == so {print $3}')
    echo "$1: $soname => ${got:-not found}"
    [ -n "$got" ] && [ "$(realpath "$got")" = "$(realpath "$prefix/$libdir/$soname")" ]
}

check_soname() {
    local line
    line=$(readelf -d "$prefix/$libdir/libconvvae.so.$version" | grep SONAME)
    echo "$line"
    [[ $line == *"[$soname]"* ]]
    [ "$(readlink "$prefix/$libdir/$soname")" = "libconvvae.so.$version" ]
    echo "=> readelf -d: $(echo "$line" | tr -s " " | sed "s/^ //")"
}

check_exports() {
    local declared exported extra
    declared=$(grep -oE '^CVAE_API [^(]*[^a-z0-9_]cvae_[a-z0-9_]+\(' "$prefix/include/convvae.h" |
        grep -oE 'cvae_[a-z0-9_]+\($' | tr -d '(' | sort -u)
    exported=$(nm -D --defined-only "$prefix/$libdir/libconvvae.so" | awk '{print $3}' | sort -u)
    if [ "$declared" != "$exported" ]; then
        echo "declared in convvae.h (<) vs exported by libconvvae.so (>):"
        diff <(echo "$declared") <(echo "$exported") || true
        echo "=> exports differ from the header's declarations"
        return 1
    fi
    # The archive must define the same public functions (its cvae__ helpers
    # are global there by nature: that is what the prefix is for).
    extra=$(nm --defined-only "$prefix/$libdir/libconvvae.a" 2>/dev/null |
        awk '$2 == "T" {print $3}' | grep -E '^cvae_[^_]' | sort -u)
    [ "$extra" = "$declared" ] || { echo "libconvvae.a public functions differ"; return 1; }
    echo "=> nm -D --defined-only: $(echo "$exported" | wc -l) symbols, all cvae_*, exactly those declared in convvae.h"
}

check_tool() {
    # No LD_LIBRARY_PATH: the tool must find the library through its RUNPATH.
    # (Checks run in subshells, so this unset stays here.)
    unset LD_LIBRARY_PATH
    run_prog "$prefix/bin/convvae" --version
    loads_installed "$prefix/bin/convvae"
    echo "=> bin/convvae --version: $prog_out"
}

check_headers() {
    local out
    out=$(ctest --test-dir "$build" -R '^header_' --output-on-failure 2>&1) || {
        echo "$out"
        return 1
    }
    echo "$out"
    echo "=> $(echo "$out" | grep -c 'Passed') ctest header tests passed (convvae.h alone: C99 and C++17, -pedantic -Werror)"
}

# ------------------------------------------------------------ pkg-config ----
check_pkgconfig() {
    local pcversion cflags libs slibs inc
    pkg-config --validate convvae
    pcversion=$(pkg-config --modversion convvae)
    cflags=$(pkg-config --cflags convvae)
    libs=$(pkg-config --libs convvae)
    slibs=$(pkg-config --static --libs convvae)
    printf 'modversion: %s\ncflags: %s\nlibs: %s\nstatic libs: %s\n' \
        "$pcversion" "$cflags" "$libs" "$slibs"
    [ "$pcversion" = "$version" ]
    inc=$(pkg-config --variable=includedir convvae)
    [ "$(cd "$inc" && pwd -P)" = "$(cd "$prefix/include" && pwd -P)" ]
    [ -f "$(pkg-config --variable=libdir convvae)/libconvvae.so" ]
    local need=(-lconvvae -lblis -larpack -lm -lz -lpthread)
    # An OpenMP libblis.a (Debian's) calls libgomp, which a static link must name.
    if blis_archive_needs_gomp; then need+=(-lgomp); fi
    for l in "${need[@]}"; do
        [[ " $slibs " == *" $l "* ]] || { echo "static libs lack $l"; return 1; }
    done
    echo "=> $pcversion; --static --libs: $(echo "$slibs" | sed -e "s|$prefix|<prefix>|g" -e 's/ *$//')"
}

check_consumer_pkgconfig() {
    local dir="$work/consumer-pkgconfig"
    cp -r examples/consumer-pkgconfig "$dir"
    make -C "$dir" all CFLAGS="-O2 -Wall -Wextra -Wpedantic -Werror"
    LD_LIBRARY_PATH="$prefix/$libdir" loads_installed "$dir/consumer_pkgconfig"
    LD_LIBRARY_PATH="$prefix/$libdir" run_prog "$dir/consumer_pkgconfig"
    echo "=> $(echo "$prog_out" | tail -1)"
}

check_consumer_pkgconfig_static() {
    local dir="$work/consumer-pkgconfig"
    make -C "$dir" static CFLAGS="-O2 -Wall -Wextra -Wpedantic -Werror"
    if readelf -d "$dir/consumer_pkgconfig_static" | grep NEEDED | grep -F libconvvae; then
        echo "=> the static consumer needs libconvvae.so"
        return 1
    fi
    unset LD_LIBRARY_PATH
    run_prog "$dir/consumer_pkgconfig_static"
    echo "=> $(echo "$prog_out" | tail -1) [static]"
}

# blis_archive_needs_gomp: the libblis.a a static link would take calls
# GOMP_* (checked here independently of the build's own detection).
blis_archive_needs_gomp() {
    local a
    a=$(cc -print-file-name=libblis.a)
    [ -f "$a" ] && nm -u "$a" 2>/dev/null | grep 'GOMP_' >/dev/null
}

# fully_static BINARY: no dynamic section at all (cc -static).
fully_static() {
    if readelf -d "$1" | grep -q 'NEEDED'; then
        readelf -d "$1" | grep NEEDED
        echo "=> ${1##*/} needs shared libraries"
        return 1
    fi
}

check_consumer_pkgconfig_fullstatic() {
    local dir="$work/consumer-pkgconfig"
    make -C "$dir" fullstatic CFLAGS="-O2 -Wall -Wextra -Wpedantic -Werror"
    fully_static "$dir/consumer_pkgconfig_fullstatic"
    unset LD_LIBRARY_PATH
    run_prog "$dir/consumer_pkgconfig_fullstatic"
    echo "=> $(echo "$prog_out" | tail -1) [cc -static]"
}

# ---------------------------------------------------------- CMake package ----
check_package_version() {
    local dir="$work/version-probe"
    mkdir -p "$dir"
    cat >"$dir/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(probe C)
find_package(ConvVAE ${WANT} QUIET)
message(STATUS "probe: want ${WANT} found=${ConvVAE_FOUND} version=${ConvVAE_VERSION}")
if(ConvVAE_FOUND AND NOT (TARGET ConvVAE::convvae AND TARGET ConvVAE::convvae_static))
  message(FATAL_ERROR "ConvVAE targets missing")
endif()
EOF
    # Same major and not newer than installed: accepted; otherwise rejected.
    local major=${version%%.*} minor want found results=""
    minor=${version#*.}
    minor=${minor%%.*}
    for want in "$major.$minor" "$major" "$((major + 1)).0" "$major.$((minor + 1))"; do
        rm -rf "$dir/b"
        found=$(cmake -S "$dir" -B "$dir/b" -DWANT="$want" -DCMAKE_PREFIX_PATH="$prefix" |
            sed -n 's/.*probe: .*found=\([^ ]*\).*/\1/p')
        echo "find_package(ConvVAE $want): found=$found"
        case $want in
        "$major.$minor" | "$major") [ "$found" = 1 ] ;;
        *) [ "$found" != 1 ] ;;
        esac
        results="$results $want:$([ "$found" = 1 ] && echo yes || echo no)"
    done
    echo "=> find_package(ConvVAE X) accepted?$results (SameMajorVersion)"
}

# consumer_cmake NAME [cmake args]: configure, build and run consumer-cmake.
consumer_cmake() {
    local name=$1 dir="$work/$1" line
    shift
    cmake -S examples/consumer-cmake -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-Wall -Wextra -Wpedantic -Werror" "$@"
    # The package must come from the installed prefix, not the build tree.
    grep -qF "ConvVAE_DIR:PATH=$prefix/$libdir/cmake/ConvVAE" "$dir/CMakeCache.txt"
    cmake --build "$dir" -j2
    run_prog "$dir/consumer_cmake"
    line=$(echo "$prog_out" | tail -1)
    run_prog "$dir/cluster_images"
    echo "=> $line; $(echo "$prog_out" | grep 'ACC')"
}

check_consumer_cmake() {
    consumer_cmake consumer-cmake
    loads_installed "$work/consumer-cmake/consumer_cmake"
}

check_consumer_cmake_static() {
    consumer_cmake consumer-cmake-static -DCONVVAE_STATIC=ON
    if readelf -d "$work/consumer-cmake-static/consumer_cmake" | grep NEEDED | grep -F libconvvae; then
        echo "=> the static consumer needs libconvvae.so"
        return 1
    fi
}

check_consumer_cmake_fullstatic() {
    consumer_cmake consumer-cmake-fullstatic -DCONVVAE_FULLY_STATIC=ON
    fully_static "$work/consumer-cmake-fullstatic/consumer_cmake"
    fully_static "$work/consumer-cmake-fullstatic/cluster_images"
}

# ------------------------------------------------------------------ ABI ----
# Only the types declared in the public header count (--headers-dir), so the
# opaque handles' private layouts may change freely. Paths of the source tree
# are stripped so the baseline does not depend on where it was built.
abi_dump() {
    abidw --headers-dir "$prefix/include" --drop-private-types --drop-undefined-syms \
        --no-show-locs --no-comp-dir-path --no-corpus-path --no-elf-needed \
        --out-file "$2.tmp" "$1"
    sed -e "s|path='$here/|path='|g" "$2.tmp" >"$2"
    rm -f "$2.tmp"
}

check_abi() {
    local lib="$prefix/$libdir/$soname" new="$work/$soname.abi" rc
    # (grep without -q: an early exit would SIGPIPE readelf and trip pipefail)
    if ! readelf -S "$lib" | grep '\.debug_info' >/dev/null; then
        echo "=> $lib has no debug info: abidw would not see any types"
        return 1
    fi
    abi_dump "$lib" "$new"
    if [ "$update_abi" -eq 1 ]; then
        mkdir -p "$(dirname "$baseline")"
        cp "$new" "$baseline"
        echo "baseline rewritten: ${baseline#"$here"/}"
    fi
    if [ ! -f "$baseline" ]; then
        echo "=> no baseline ${baseline#"$here"/}; create it with scripts/check-install.sh --update-abi"
        return 1
    fi
    set +e
    abidiff --no-added-syms "$baseline" "$new"
    rc=$?
    set -e
    # abidiff's exit status is a bit set: 1 error, 2 usage error, 4 ABI
    # change (e.g. a changed signature), 8 incompatible change (e.g. a removed
    # function). Anything but 0 fails the check.
    case $rc in
    0) echo "=> abidiff --no-added-syms ${baseline#"$here"/}: no change (exit 0)" ;;
    *)
        local why=""
        [ $((rc & 1)) -ne 0 ] && why="$why error"
        [ $((rc & 2)) -ne 0 ] && why="$why usage-error"
        [ $((rc & 4)) -ne 0 ] && why="$why abi-change"
        [ $((rc & 8)) -ne 0 ] && why="$why incompatible-change"
        echo "=> abidiff exit $rc:$why (see docs/abi.md)"
        return 1
        ;;
    esac
}

run_check build check_build
[ $check_rc -eq 0 ] || finish
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
soname="libconvvae.so.${version%%.*}"
baseline="$here/abi/$soname.abi"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
run_check install check_install
[ $check_rc -eq 0 ] || finish
run_check soname check_soname
run_check exports check_exports
run_check tool check_tool
run_check headers check_headers
run_check pkg-config check_pkgconfig
run_check consumer-pkgconfig check_consumer_pkgconfig
if [ $check_rc -eq 0 ]; then
    run_check consumer-pkgconfig-static check_consumer_pkgconfig_static
    run_check consumer-pkgconfig-fullstatic check_consumer_pkgconfig_fullstatic
fi
run_check cmake-package-version check_package_version
run_check consumer-cmake check_consumer_cmake
run_check consumer-cmake-static check_consumer_cmake_static
run_check consumer-cmake-fullstatic check_consumer_cmake_fullstatic
if [ "$update_abi" -eq 1 ]; then
    run_check abi-baseline-update check_abi
else
    run_check abi check_abi
fi
finish
