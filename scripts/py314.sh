#!/usr/bin/env bash
# scripts/py314.sh - run the leasepool test suite on a real CPython 3.14.
#
# The host (Debian bookworm) only has CPython 3.11, but the `interpreter`
# backend needs `concurrent.futures.InterpreterPoolExecutor` (3.14+).  This
# script keeps a Debian sid chroot that has python3.14, builds the package in it
# with the host's Rust toolchain, and runs pytest there.
#
# Usage (as root; non-interactive, so it also runs in CI with CI=true):
#   scripts/py314.sh                                  # python -m pytest tests
#   scripts/py314.sh tests/test_interpreter_backend.py -x -q
#   scripts/py314.sh -k lease --maxfail=1             # any pytest arguments
#
# All arguments go to `python -m pytest`, run in /src inside the chroot; with no
# arguments it runs `tests`.  The exit code is pytest's (5 if no test was
# collected), or the failing phase's if setup fails before pytest runs.  Each phase's wall time is printed at the
# end.
#
# Phases:
#   chroot   create (debootstrap, first run only, ~1-2 min) or reuse the chroot
#            at $LEASEPOOL_PY314_ROOT with python3.14, python3.14-venv,
#            python3.14-dev, gcc, libc6-dev, ca-certificates
#   mount    mount /proc, /sys, /dev and bind-mount the host's Rust toolchain
#            ($CARGO_HOME or /root/.cargo, read-write so the crates.io registry
#            cache is shared; $RUSTUP_HOME or /root/.rustup, read-only).  All
#            mounts are undone on exit, also on failure or Ctrl-C.
#   source   copy the repo's files (tracked + untracked-but-not-ignored, per
#            git; build output such as target/ is never copied) to /src in the
#            chroot.  Nothing is written back to the repo.
#   venv     create (or reuse) the venv /opt/py314-venv and pip install the
#            project's [build-system] requires (maturin) from PyPI
#   install  build the wheel once (pip wheel --no-build-isolation /src, i.e.
#            maturin in release mode), force-reinstall it, then install its
#            extras ('wheel[test]'); cargo builds into
#            CARGO_TARGET_DIR=/var/cache/leasepool-target inside the chroot, so
#            later runs build incrementally (warm overhead before pytest: ~2 s)
#   pytest   python -m pytest "$@" in /src
#
# Environment:
#   LEASEPOOL_PY314_ROOT     chroot directory  (default /var/cache/leasepool-py314)
#   LEASEPOOL_SRC            project root to test (default: this script's repo)
#   LEASEPOOL_PY314_EXTRAS   pip extras to install (default "test"; "" for none)
#   LEASEPOOL_PY314_MIRROR   Debian mirror for debootstrap (default: the first
#                            .../debian URI found in the host's apt sources)
#   LEASEPOOL_PY314_SUITE    Debian suite (default sid)
#   LEASEPOOL_PY314_EXTRA_PACKAGES  more Debian packages for the chroot
#                            (space-separated; installed on the next run)
#   LEASEPOOL_PY314_REBUILD=1       delete and recreate the chroot (e.g. to pick
#                            up a newer python3.14 from sid)
#   LEASEPOOL_PY314_FRESH_VENV=1    recreate the venv (drops packages that are no
#                            longer in the project's dependencies)
#   PIP_*, CARGO_*, RUSTUP_*, RUST_*, MATURIN_*, PYTEST_*, HYPOTHESIS_*, proxy
#   variables, CI, TERM, NO_COLOR, FORCE_COLOR, TZ are passed into the chroot
#   (except ones that name host paths).  The host's CA bundle is copied into the
#   chroot and used by pip and cargo, so TLS-intercepting proxies keep working.
#
# Needs: root, bash >= 5, util-linux (mount, flock), tar, git; debootstrap is
# apt-get installed on the host if missing.  Runs are serialised with flock on
# "$LEASEPOOL_PY314_ROOT.lock".  To remove everything:
#   rm -rf --one-file-system /var/cache/leasepool-py314   (with no run active)

set -euo pipefail
shopt -s nullglob

log() { printf '[py314] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${LEASEPOOL_PY314_ROOT:-/var/cache/leasepool-py314}
ROOT=${ROOT%/}
SRC=$(cd "${LEASEPOOL_SRC:-$SCRIPT_DIR/..}" && pwd)
SUITE=${LEASEPOOL_PY314_SUITE:-sid}
EXTRAS=${LEASEPOOL_PY314_EXTRAS-test}
HOST_CARGO_HOME=${CARGO_HOME:-/root/.cargo}
HOST_RUSTUP_HOME=${RUSTUP_HOME:-/root/.rustup}
MARKER=.leasepool-py314          # file in the chroot's / written once it is complete
VENV=/opt/py314-venv             # paths inside the chroot
TARGET_DIR=/var/cache/leasepool-target
CHROOT_CA=/etc/leasepool-host-ca.pem

read -r -a PACKAGES <<<"python3.14 python3.14-venv python3.14-dev gcc libc6-dev ca-certificates ${LEASEPOOL_PY314_EXTRA_PACKAGES:-}"
PACKAGE_LIST=$(printf '%s\n' "${PACKAGES[@]}" | sort -u | paste -sd, -)

[[ $EUID -eq 0 ]] || die "must run as root (chroot, mount)"
[[ $ROOT == /?* && $ROOT != *..* ]] || die "LEASEPOOL_PY314_ROOT must be an absolute path other than /: '$ROOT'"
[[ -f $SRC/pyproject.toml ]] || die "no pyproject.toml in $SRC (set LEASEPOOL_SRC)"

# ---------------------------------------------------------------- timing ----
now_us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }
fmt_us() { printf '%d.%01ds' "$(($1 / 1000000))" "$(($1 / 100000 % 10))"; }
SCRIPT_T0=$(now_us)
PHASE_NAME=''
PHASE_T0=0
TIMINGS=()

phase_start() {
    PHASE_NAME=$1
    PHASE_T0=$(now_us)
    log "---- $PHASE_NAME: $2"
}
phase_end() {   # phase_end [status-text]
    local dt=$(($(now_us) - PHASE_T0))
    TIMINGS+=("$(printf '  %-8s %8s  %s' "$PHASE_NAME" "$(fmt_us "$dt")" "${1:-ok}")")
    log "---- $PHASE_NAME done in $(fmt_us "$dt")"
    PHASE_NAME=''
}

# ---------------------------------------------------------------- mounts ----
# Mount points (inside $ROOT) that this run mounted; undone in reverse order.
MOUNTED=()
HAVE_LOCK=0

# Every mount point at or below $1, deepest first (from /proc/self/mountinfo).
mounts_under() {
    local dir=$1 mp
    while read -r _ _ _ _ mp _; do
        mp=${mp//\\040/ }   # mountinfo escapes blanks as \040
        if [[ $mp == "$dir" || $mp == "$dir"/* ]]; then
            printf '%s\n' "$mp"
        fi
    done </proc/self/mountinfo | sort -r
}

# Unmount everything at or below $1 (stale mounts of a killed run, or ours).
unmount_under() {
    local mp
    while IFS= read -r mp; do
        [[ -n $mp ]] || continue
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "warning: could not unmount $mp"
    done < <(mounts_under "$1")
}

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup_mounts() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTED[i]}" 2>/dev/null || umount -R -l "${MOUNTED[i]}" 2>/dev/null || true
    done
    MOUNTED=()
    # Belt and braces: nothing of ours may stay mounted below the chroot (only
    # while holding the lock: otherwise the mounts may be another run's).
    ((HAVE_LOCK)) || return 0
    [[ -d $ROOT ]] && unmount_under "$ROOT"
    [[ -d $ROOT.partial ]] && unmount_under "$ROOT.partial"
    return 0
}

# shellcheck disable=SC2317  # the EXIT trap
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [[ -n $PHASE_NAME ]] && phase_end "FAILED (exit $rc)"
    cleanup_mounts
    if ((HAVE_LOCK)) && [[ -d $ROOT ]] && [[ -n $(mounts_under "$ROOT") ]]; then
        log "warning: mounts left under $ROOT:"; mounts_under "$ROOT" >&2
    fi
    log "timings:"
    printf '%s\n' "${TIMINGS[@]}" >&2
    log "total    $(fmt_us $(($(now_us) - SCRIPT_T0)))  exit $rc"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# bind_mount SRC DST [ro]: DST is below $ROOT; submounts come along (rbind),
# made slaves so unmounting them never propagates back to the host.
bind_mount() {
    mkdir -p "$2"
    mount --rbind "$1" "$2"
    MOUNTED+=("$2")
    mount --make-rslave "$2"
    if [[ ${3:-} == ro ]]; then
        mount -o remount,bind,ro "$2"
    fi
}

# Remove a directory tree that is known to be ours, refusing if anything is
# still mounted below it (rm --one-file-system does not stop at bind mounts
# of the same filesystem).
remove_tree() {
    unmount_under "$1"
    if [[ -n $(mounts_under "$1") ]]; then
        die "refusing to delete $1: still has mounts"
    fi
    rm -rf --one-file-system "$1"
}

# ---------------------------------------------------------------- chroot ----
detect_mirror() {
    if [[ -n ${LEASEPOOL_PY314_MIRROR:-} ]]; then
        echo "$LEASEPOOL_PY314_MIRROR"; return
    fi
    local f uri
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    for f in "${files[@]}"; do
        [[ -r $f ]] || continue
        # one-line format: deb [opts] URI suite...; deb822 format: URIs: URI...
        while read -r uri; do
            if [[ $uri =~ ^https?://[^[:space:]]+/debian/?$ ]]; then
                echo "${uri%/}"; return
            fi
        done < <(sed -nE -e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
                          -e 's/^[[:space:]]*URIs:[[:space:]]*//p' "$f" | tr ' ' '\n')
    done
    die "no Debian mirror found in the host's apt sources; set LEASEPOOL_PY314_MIRROR"
}

create_chroot() {
    local mirror partial=$ROOT.partial
    mirror=$(detect_mirror)
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap on the host"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    [[ -e $partial ]] && remove_tree "$partial"
    log "debootstrap $SUITE from $mirror into $partial (packages: $PACKAGE_LIST)"
    # debootstrap mounts /proc and /sys in the target itself; the EXIT trap
    # unmounts them if it dies half-way.
    if ! debootstrap --variant=minbase --components=main --include="$PACKAGE_LIST" \
            "$SUITE" "$partial" "$mirror" >"$ROOT.debootstrap.log" 2>&1; then
        tail -n 30 "$ROOT.debootstrap.log" >&2
        [[ -f $partial/debootstrap/debootstrap.log ]] && tail -n 30 "$partial/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (full log: $ROOT.debootstrap.log)"
    fi
    unmount_under "$partial"
    chroot "$partial" apt-get clean
    allow_stale_release "$partial"
    printf 'suite=%s\nmirror=%s\npackages=%s\ncreated=%s\n' \
        "$SUITE" "$mirror" "$PACKAGE_LIST" "$(date -u +%FT%TZ)" >"$partial/$MARKER"
    mv -T "$partial" "$ROOT"
}

ensure_chroot() {
    if [[ ${LEASEPOOL_PY314_REBUILD:-0} == 1 && -e $ROOT ]]; then
        [[ -f $ROOT/$MARKER ]] || die "$ROOT exists but is not a py314 chroot (no /$MARKER); not deleting it"
        log "LEASEPOOL_PY314_REBUILD=1: deleting $ROOT"
        remove_tree "$ROOT"
    fi
    if [[ -e $ROOT ]]; then
        [[ -f $ROOT/$MARKER ]] || die "$ROOT exists but is not a py314 chroot (no /$MARKER); remove it or set LEASEPOOL_PY314_ROOT"
        log "reusing $ROOT ($(grep -h '^created=' "$ROOT/$MARKER"))"
    else
        create_chroot
    fi
}

# The mirror may serve a sid Release file past its Valid-Until (seen here: a
# mirror some weeks behind the clock); signatures are still checked.
allow_stale_release() {
    echo 'Acquire::Check-Valid-Until "false";' >"$1/etc/apt/apt.conf.d/99leasepool-py314"
}

# Install packages that the chroot lacks (added to the list, e.g. through
# LEASEPOOL_PY314_EXTRA_PACKAGES, since it was made).  Needs the mounts.
ensure_packages() {
    local have missing
    have=$(sed -n 's/^packages=//p' "$ROOT/$MARKER" | tr ',' '\n' | sort -u)
    mapfile -t missing < <(comm -13 <(printf '%s\n' "$have") <(printf '%s\n' "${PACKAGES[@]}" | sort -u))
    ((${#missing[@]})) || return 0
    log "installing into the chroot: ${missing[*]}"
    allow_stale_release "$ROOT"
    # shellcheck disable=SC2016  # expanded by the chroot's shell
    in_chroot 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null && apt-get clean' \
        "${missing[@]}"
    have=$(printf '%s\n' "$have" "${missing[@]}" | sort -u | paste -sd, -)
    sed -i "s|^packages=.*|packages=$have|" "$ROOT/$MARKER"
}

mount_all() {
    [[ -d $HOST_CARGO_HOME/bin ]] || die "no Rust toolchain at $HOST_CARGO_HOME (set CARGO_HOME)"
    [[ -d $HOST_RUSTUP_HOME ]] || die "no rustup home at $HOST_RUSTUP_HOME (set RUSTUP_HOME)"
    mkdir -p "$ROOT/proc"
    mount -t proc proc "$ROOT/proc"
    MOUNTED+=("$ROOT/proc")
    bind_mount /sys "$ROOT/sys" ro
    bind_mount /dev "$ROOT/dev"
    bind_mount "$HOST_CARGO_HOME" "$ROOT/root/.cargo"
    bind_mount "$HOST_RUSTUP_HOME" "$ROOT/root/.rustup" ro

    # Name resolution and the host's CA bundle (pip/cargo may sit behind a
    # TLS-intercepting proxy whose CA only the host trusts).
    rm -f "$ROOT/etc/resolv.conf" "$ROOT/etc/hosts"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    cp -L /etc/hosts "$ROOT/etc/hosts"
    local ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    [[ -r $ca ]] || ca=/etc/ssl/certs/ca-certificates.crt
    if [[ -r $ca ]]; then
        cp -L "$ca" "$ROOT$CHROOT_CA"
    else
        cp -L "$ROOT/etc/ssl/certs/ca-certificates.crt" "$ROOT$CHROOT_CA"
    fi
}

# ---------------------------------------------------------------- source ----
existing_only() {   # NUL-separated paths on stdin -> those that exist in $SRC
    local f
    while IFS= read -r -d '' f; do
        if [[ -e $SRC/$f || -L $SRC/$f ]]; then printf '%s\0' "$f"; fi
    done
}

sync_source() {
    local dst=$ROOT/src
    [[ -e $dst ]] && remove_tree "$dst"
    mkdir -p "$dst"
    if git -c safe.directory="$SRC" -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -c safe.directory="$SRC" -C "$SRC" ls-files -z --cached --others --exclude-standard \
            | existing_only \
            | tar -C "$SRC" --null --no-recursion -T - -cf - \
            | tar -C "$dst" -xf -
    else
        log "$SRC is not a git work tree; copying all but target/, .git/, venvs, caches"
        tar -C "$SRC" --exclude=./target --exclude=.git --exclude=.venv --exclude=venv \
            --exclude=__pycache__ --exclude=.pytest_cache --exclude=.mypy_cache \
            --exclude=.ruff_cache --exclude='*.so' -cf - . | tar -C "$dst" -xf -
    fi
    log "copied $(find "$dst" -type f | wc -l) files from $SRC to /src"
}

# ---------------------------------------------------------------- in chroot --
CHROOT_ENV=(
    HOME=/root
    USER=root
    LANG=C.UTF-8
    "PATH=/root/.cargo/bin:$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    CARGO_HOME=/root/.cargo
    RUSTUP_HOME=/root/.rustup
    "CARGO_TARGET_DIR=$TARGET_DIR"
    DEBIAN_FRONTEND=noninteractive
    PIP_NO_INPUT=1
    PIP_DISABLE_PIP_VERSION_CHECK=1
    "PIP_CERT=$CHROOT_CA"
    "SSL_CERT_FILE=$CHROOT_CA"
    "REQUESTS_CA_BUNDLE=$CHROOT_CA"
    "CURL_CA_BUNDLE=$CHROOT_CA"
    "CARGO_HTTP_CAINFO=$CHROOT_CA"
)
while IFS= read -r var; do
    case $var in
        CARGO_HOME | CARGO_TARGET_DIR | CARGO_HTTP_CAINFO | CARGO_BUILD_TARGET_DIR | RUSTUP_HOME) ;;
        PIP_CERT | PIP_FIND_LINKS | PIP_CONFIG_FILE | PIP_CACHE_DIR | PIP_TARGET | PIP_PREFIX) ;;
        PIP_* | CARGO_* | RUSTUP_* | RUST_* | RUSTFLAGS | MATURIN_* | PYTEST_* | HYPOTHESIS_*) CHROOT_ENV+=("$var=${!var}") ;;
        http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY | all_proxy | ALL_PROXY) CHROOT_ENV+=("$var=${!var}") ;;
        CI | TERM | NO_COLOR | FORCE_COLOR | TZ) CHROOT_ENV+=("$var=${!var}") ;;
    esac
done < <(compgen -e)

in_chroot() {   # in_chroot SCRIPT [ARGS...]: bash -c SCRIPT in the chroot, cwd /
    local script=$1
    shift
    chroot "$ROOT" /usr/bin/env -i "${CHROOT_ENV[@]}" /bin/bash -euo pipefail -c "cd / && $script" py314 "$@" 9>&-
}

# shellcheck disable=SC2016  # these run in the chroot's shell
VENV_SCRIPT='
if [[ $2 == 1 ]] || ! "$1/bin/python" -c "import sys; assert sys.version_info >= (3, 14)" 2>/dev/null; then
    rm -rf "$1"
    python3.14 -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
fi
"$1/bin/python" -VV
# The [build-system] requires (maturin) go into the venv so that the project
# can be installed with --no-build-isolation (no fresh build env per run).
mapfile -t reqs < <("$1/bin/python" -c "
import tomllib
with open(\"/src/pyproject.toml\", \"rb\") as f:
    print(\"\n\".join(tomllib.load(f).get(\"build-system\", {}).get(\"requires\", [])))
")
if ((${#reqs[@]})); then
    "$1/bin/python" -m pip install -q "${reqs[@]}"
fi
"$1/bin/python" -m pip list --format=freeze 2>/dev/null | grep -i "^maturin==" || true
cargo --version
rustc --version
'

# shellcheck disable=SC2016
INSTALL_SCRIPT='
# One build (pip wheel), then a forced reinstall of just that wheel and an
# install of its extras (dependencies already present are not re-fetched).
wheels=/tmp/py314-wheels
rm -rf "$wheels"
"$1/bin/python" -m pip wheel -v --no-build-isolation --no-deps -w "$wheels" /src
whl=$(echo "$wheels"/*.whl)
[[ -f $whl ]] || { echo "expected exactly one wheel, got: $whl" >&2; exit 1; }
"$1/bin/python" -m pip install -q --force-reinstall --no-deps "$whl"
"$1/bin/python" -m pip install "$whl${2:+[$2]}"
'

# shellcheck disable=SC2016
PYTEST_SCRIPT='
venv=$1
shift
(($#)) || set -- tests
cd /src
exec "$venv/bin/python" -m pytest "$@"
'

# ------------------------------------------------------------------ main ----
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
if ! flock -n 9; then
    log "waiting for another run holding $ROOT.lock"
    flock 9
fi
HAVE_LOCK=1

phase_start chroot "$SUITE chroot at $ROOT"
# A run that was killed (SIGKILL) may have left its mounts behind.
[[ -d $ROOT ]] && unmount_under "$ROOT"
ensure_chroot
phase_end

phase_start mount "proc, sys, dev, $HOST_CARGO_HOME, $HOST_RUSTUP_HOME"
mount_all
ensure_packages
phase_end

phase_start source "$SRC -> $ROOT/src"
sync_source
phase_end

phase_start venv "$VENV with python3.14 and build requirements"
in_chroot "$VENV_SCRIPT" "$VENV" "${LEASEPOOL_PY314_FRESH_VENV:-0}"
phase_end

phase_start install "pip install '/src${EXTRAS:+[$EXTRAS]}' (cargo target: $TARGET_DIR)"
in_chroot "$INSTALL_SCRIPT" "$VENV" "$EXTRAS"
phase_end

phase_start pytest "python -m pytest ${*:-tests}"
pytest_rc=0
in_chroot "$PYTEST_SCRIPT" "$VENV" "$@" || pytest_rc=$?
phase_end "exit $pytest_rc"
exit "$pytest_rc"
