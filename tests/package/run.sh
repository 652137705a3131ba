#!/usr/bin/env bash
# run.sh --
#
#	Builds the Debian package in a clean copy of the source tree
#	(dpkg-buildpackage -b -us -uc), checks it with lintian (any warning
#	or error fails), installs it with apt-get, and runs
#	tests/package/installed.tcl against the installed package, with
#	TCLLIBPATH unset and from outside the tree.  Afterwards the package
#	is purged again unless it was installed before or --keep is given.
#
#	    bash tests/package/run.sh ?--keep? ?tcltest options...?
#
#	Needs root and "bash scripts/deps.sh deb".  The copy holds the files
#	git knows (with their working-tree changes) and untracked files that
#	are not ignored, so an in-tree build (Makefile, *.o) is left alone;
#	the .deb files are kept in $TCLMILTER_DEB_OUT when that is set.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
keep=0
if [ "${1:-}" = --keep ]; then
    keep=1
    shift
fi

log() {
    echo "package/run.sh: $*" >&2
}

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (apt-get install, and the MTA tests)"
    exit 1
fi

source_name="$(cd "$top" && dpkg-parsechangelog -S Source)"
version="$(cd "$top" && dpkg-parsechangelog -S Version)"
package=tcl-tclmilter
arch="$(dpkg --print-architecture)"

work="$(mktemp -d /tmp/tclmilter-deb.XXXXXX)"
installed_before=0
if [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" \
	= installed ]; then
    installed_before=1
fi

finish() {
    status=$?
    if [ "$keep" = 0 ] && [ "$installed_before" = 0 ] \
	    && dpkg-query -W "$package" >/dev/null 2>&1; then
	log "purging $package"
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$package" \
	    </dev/null >/dev/null || status=1
    fi
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT

# 1. A clean copy.  apt's sandbox user _apt must be able to read the .deb.
chmod 755 "$work"
src="$work/$source_name-$version"
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z --cached --others --exclude-standard \
	| xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
	| tar --null -T - -cf -) | tar -xf - -C "$src"
else
    cp -a "$top/." "$src/"
fi

# 2. Build.
log "dpkg-buildpackage -b -us -uc in $src"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    log "dpkg-buildpackage failed (log above)"
    exit 1
fi
grep -E '^Totals: ' "$work/build.log" \
    | sed 's/^/build-time tests: /' >&2 || true
changes="$work/${source_name}_${version}_${arch}.changes"
deb="$work/${package}_${version}_${arch}.deb"
if [ -n "${TCLMILTER_DEB_OUT:-}" ]; then
    mkdir -p "$TCLMILTER_DEB_OUT"
    cp "$work"/*.deb "$changes" "$TCLMILTER_DEB_OUT/"
fi

# 3. lintian: warnings and errors fail; informational tags are shown.
log "lintian $(basename "$changes")"
lint=0
lintian --info --display-info --fail-on error,warning "$changes" \
    >"$work/lintian.log" 2>&1 || lint=$?
grep -v '^running with root privileges' "$work/lintian.log" >&2 || true
if [ "$lint" -ne 0 ]; then
    log "lintian found warnings or errors (status $lint)"
    exit 1
fi

# 4. Install, as an administrator would.
log "apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 "$deb" </dev/null >"$work/install.log" 2>&1 || {
	cat "$work/install.log" >&2
	log "apt-get install failed"
	exit 1
    }

# 5. The installed package: no TCLLIBPATH, not from the tree.
log "tests/package/installed.tcl"
(cd / && env -u TCLLIBPATH /usr/bin/tclsh \
    "$top/tests/package/installed.tcl" "$@")
