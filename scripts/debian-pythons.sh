#!/usr/bin/env bash
# The test suite on CPythons the host lacks: Debian sid's, in a root filesystem that
# mmdebstrap builds on first use. As root: scripts/debian-pythons.sh 3.13 3.14 (make matrix)
# Per version: a venv /opt/venv-3.X, pip install '.[test]' of a copy of the checkout (the
# cargo target dir stays in the rootfs: later builds are incremental), pytest as `make
# pytest` runs it (options: PYTEST_ADDOPTS). Exit status: the first failing pytest's; a
# setup failure stops the run at once. LEASEPOOL_ROOTFS (default /var/cache/leasepool-debian),
# LEASEPOOL_ROOTFS_REBUILD=1 (anew, e.g. for a newer sid Python), LEASEPOOL_DEBIAN_MIRROR.
set -euo pipefail

ROOT=${LEASEPOOL_ROOTFS:-/var/cache/leasepool-debian}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MARKER=etc/leasepool-rootfs   # made by this script: no other tree is ever deleted
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
BUNDLE=/etc/ssl/certs/ca-certificates.crt
T0=${LEASEPOOL_T0:-$(date +%s)}   # the Makefile's start: one time scale in the CI log

step() { printf '\n=== %s (%ss)\n' "$1" "$(($(date +%s) - T0))"; }
die() { printf 'debian-pythons: %s\n' "$*" >&2; exit 2; }

# ---- in the rootfs: this file, copied to /src, runs itself there ----
build() {   # a venv (once), then pip install '/src[test]' as `make install` does
    local py=/opt/venv-$1/bin/python
    [[ -x $py ]] || { "python$1" -m venv "/opt/venv-$1" && "$py" -m pip install -q -U pip; }
    CARGO_TARGET_DIR=/var/cache/leasepool-target/$1 "$py" -m pip install -q '/src[test]'
}
run_pytest() { cd /tmp && exec "/opt/venv-$1/bin/python" -m pytest /src/tests -q -p no:cacheprovider; }
[[ ${1:-} != --in-rootfs ]] || { shift; "$@"; exit; }

# ---- on the host ----
ENV=(HOME=/root LANG=C.UTF-8 PATH=/root/.cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
    CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup DEBIAN_FRONTEND=noninteractive
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "PIP_CERT=$BUNDLE" "SSL_CERT_FILE=$BUNDLE"
    "REQUESTS_CA_BUNDLE=$BUNDLE" "CARGO_HTTP_CAINFO=$BUNDLE")
for var in $(compgen -e); do case $var in
    CI | TERM | NO_COLOR | FORCE_COLOR | TZ | PYTEST_* | HYPOTHESIS_* | RUST_* | RUSTUP_TOOLCHAIN | \
        PIP_INDEX_URL | PIP_EXTRA_INDEX_URL | PIP_DEFAULT_TIMEOUT | *_proxy | *_PROXY) ENV+=("$var=${!var}") ;;
esac; done

# Run "$@" chrooted into the rootfs. The mounts live in a mount namespace of this command
# only, so they vanish with it (also on SIGKILL): nothing to unmount, nothing leaks into
# the host. rustup's toolchains are read-only; cargo's registry cache is shared.
in_root() {
    unshare --mount -- bash -euo pipefail -c '
        r=$1; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"
        mount --bind "$2" "$r/root/.cargo"; mount --bind -o ro "$3" "$r/root/.rustup"
        mount --bind -o ro /etc/resolv.conf "$r/etc/resolv.conf"
        mount --bind -o ro "$4" "$r$5"   # the host CA bundle: TLS proxies keep working
        shift 5; exec chroot "$r" /usr/bin/env -i "$@"' in_root "$ROOT" \
        "${CARGO_HOME:-$HOME/.cargo}" "${RUSTUP_HOME:-$HOME/.rustup}" "$CA" "$BUNDLE" "${ENV[@]}" "$@" 9>&-
}

create_rootfs() {   # $@: Python versions
    local v pkgs="gcc libc6-dev ca-certificates"
    for v; do pkgs+=" python$v python$v-venv python$v-dev"; done
    command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap; }
    rm -rf --one-file-system "$ROOT.new"
    # Its own mount namespace: a killed mmdebstrap leaves no /proc or /dev mounted here.
    # Valid-Until is not checked: mirrors have served sid weeks stale (signatures are).
    unshare --mount -- mmdebstrap --mode=root --variant=apt \
        --aptopt='Acquire::Check-Valid-Until "false"' --include="$pkgs" \
        --customize-hook='mkdir -p "$1/root/.cargo" "$1/root/.rustup"; touch "$1/'"$MARKER"'"' \
        sid "$ROOT.new" ${LEASEPOOL_DEBIAN_MIRROR:+"$LEASEPOOL_DEBIAN_MIRROR"}
    mv -T "$ROOT.new" "$ROOT"
}

ensure_rootfs() {   # $@: Python versions
    [[ ! -e $ROOT || -f $ROOT/$MARKER ]] || die "$ROOT lacks /$MARKER: not made by this script"
    [[ ${LEASEPOOL_ROOTFS_REBUILD:-0} != 1 ]] || rm -rf --one-file-system "$ROOT"
    [[ -e $ROOT ]] || create_rootfs "$@"
    local v
    for v; do   # versions asked for after the rootfs was made
        [[ -x $ROOT/usr/bin/python$v ]] || in_root bash -c 'apt-get update -qq &&
            apt-get install -y -qq "python$1" "python$1-venv" "python$1-dev"' apt "$v" ||
            die "could not install python$v: is it in sid?"
    done
}

copy_source() {   # tracked + untracked-not-ignored files that exist: never target/
    rm -rf --one-file-system "$ROOT/src" && mkdir "$ROOT/src"
    git -c safe.directory="$SRC" -C "$SRC" ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ ! -e $SRC/$f && ! -L $SRC/$f ]] || printf '%s\0' "$f"; done |
        tar -C "$SRC" --null --no-recursion -T - -cf - | tar -C "$ROOT/src" -xf -
}

main() {
    local v rc first_rc=0 summary=()
    (($# && EUID == 0)) || die "usage, as root: $0 3.X..."
    for v; do [[ $v =~ ^3\.[0-9]+$ ]] || die "not a CPython version: $v"; done
    exec 9>"$ROOT.lock"   # one run at a time per rootfs
    flock -n 9 || { echo "waiting for $ROOT.lock" >&2; flock 9; }
    step "Debian sid rootfs at $ROOT (python $*)"
    ensure_rootfs "$@"
    copy_source
    for v; do
        step "CPython $v: build and install"
        in_root bash /src/scripts/debian-pythons.sh --in-rootfs build "$v" || die "CPython $v: build failed"
        step "CPython $v: pytest"
        rc=0; in_root bash /src/scripts/debian-pythons.sh --in-rootfs run_pytest "$v" || rc=$?
        summary+=("CPython $v: pytest exit $rc"); ((first_rc)) || first_rc=$rc
    done
    printf '%s\n' "" "${summary[@]}"
    return "$first_rc"
}
main "$@"
