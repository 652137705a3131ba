#!/usr/bin/env bash
# deps.sh --
#
#	Installs what TclMilter needs from Debian 12 packages.  Idempotent and
#	non-interactive: packages already installed are skipped, "apt-get
#	update" runs at most once and only when something must be fetched.
#
#	    bash scripts/deps.sh build   compiler, Tcl 8.6 headers and tclsh
#	    bash scripts/deps.sh test    build + what the test suite drives
#	                                 (postfix, miltertest, libmilter, tcllib,
#	                                 systemd-socket-activate, promtool; for
#	                                 examples/greylist: postgresql, tdbc
#	                                 drivers, dnsmasq-base, tcl-udp)
#	    bash scripts/deps.sh all     test + sanitizers, valgrind, clang, perf
#	    bash scripts/deps.sh dev     all + autoconf (to regenerate configure)
#	    bash scripts/deps.sh deb     test + what building and checking the
#	                                 Debian package needs (debhelper,
#	                                 tcl-dev, fakeroot, lintian)
#
#	Postfix is installed with debconf's "No configuration" answer, so no
#	system mail service is configured or started; no service is started
#	while postfix, postgresql or prometheus are installed (the tests run
#	private instances of the first two and only promtool of the last).
#	Sendmail conflicts with postfix, so for "test" and above its
#	packages are only downloaded into
#	$TCLMILTER_DEB_CACHE (default /var/cache/tclmilter-debs); the MTA tests
#	unpack them privately with dpkg-deb -x.  Their shared libraries are
#	installed so that the unpacked binaries run.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

set -euo pipefail

group="${1:-build}"
deb_cache="${TCLMILTER_DEB_CACHE:-/var/cache/tclmilter-debs}"

build_pkgs=(gcc libc6-dev make tcl8.6 tcl8.6-dev tcl-thread)
test_pkgs=(tcllib miltertest postfix libmilter-dev
	   # systemd-socket-activate and systemd-analyze (tests/systemd.test);
	   # nothing is started.
	   systemd
	   # Shared libraries of sendmail-bin, for the privately unpacked copy.
	   libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 libssl3
	   libwrap0 m4 procps
	   # examples/greylist and tests/greylist.test: its databases
	   # (SQLite through tdbc, a private PostgreSQL server), the DNSBL
	   # server, UDP for tcllib's dns.
	   postgresql tcl8.6-tdbc-postgres tcl8.6-tdbc-sqlite3
	   libsqlite3-tcl dnsmasq-base tcl-udp
	   # promtool (tests/stats.test checks milter stats -format
	   # prometheus and -metrics with a real scraper's parser; 19 MB
	   # download).  Its service is not started.
	   prometheus)
all_pkgs=(clang libclang-rt-14-dev libasan8 libubsan1 libtsan2 valgrind
	  linux-perf iproute2)
dev_pkgs=(autoconf)
# dpkg-buildpackage, debian/control's Build-Depends (tcl-dev provides
# tcltk-depends), and lintian for checking the result.
deb_pkgs=(dpkg-dev debhelper fakeroot tcl-dev lintian)
sendmail_debs=(sendmail-bin sendmail-base sendmail-cf)

case "$group" in
build)	want=("${build_pkgs[@]}"); fetch_sendmail=0 ;;
test)	want=("${build_pkgs[@]}" "${test_pkgs[@]}"); fetch_sendmail=1 ;;
all)	want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${all_pkgs[@]}")
	fetch_sendmail=1 ;;
dev)	want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${all_pkgs[@]}"
	      "${dev_pkgs[@]}")
	fetch_sendmail=1 ;;
deb)	want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${deb_pkgs[@]}")
	fetch_sendmail=1 ;;
-h|--help|help)
	sed -n '2,27s/^# \{0,1\}//p' "$0"
	exit 0 ;;
*)	echo "usage: $0 build|test|all|dev|deb" >&2
	exit 2 ;;
esac

log() {
    echo "deps.sh: $*" >&2
}

# Run a command as root: directly, or through sudo when it needs no
# password.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
	"$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo -n "$@"
    else
	log "need root (or password-less sudo) to run: $*"
	exit 1
    fi
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for pkg in "${want[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

need_sendmail=()
if [ "$fetch_sendmail" = 1 ]; then
    for pkg in "${sendmail_debs[@]}"; do
	compgen -G "$deb_cache/${pkg}_*.deb" >/dev/null || need_sendmail+=("$pkg")
    done
fi

if [ ${#missing[@]} -eq 0 ] && [ ${#need_sendmail[@]} -eq 0 ]; then
    log "group '$group': everything is already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends -o Dpkg::Use-Pty=0
	  -o Dpkg::Options::=--force-confdef
	  -o Dpkg::Options::=--force-confold)

log "apt-get update"
as_root apt-get update -q </dev/null

if [ ${#missing[@]} -gt 0 ]; then
    policy_created=0
    for pkg in "${missing[@]}"; do
	if [ "$pkg" = postfix ]; then
	    # No main.cf, no system instance.
	    echo "postfix postfix/main_mailer_type select No configuration" \
		| as_root debconf-set-selections
	fi
	if [ "$pkg" = postfix ] || [ "$pkg" = postgresql ] \
		|| [ "$pkg" = prometheus ]; then
	    # Keep maintainer scripts from starting any service while we
	    # install (the standard Debian policy-rc.d hook).
	    if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# created by TclMilter scripts/deps.sh\nexit 101\n' \
		    | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod 755 /usr/sbin/policy-rc.d
		policy_created=1
	    fi
	fi
    done
    log "apt-get install ${missing[*]}"
    status=0
    as_root apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null \
	|| status=$?
    if [ "$policy_created" = 1 ]; then
	as_root rm -f /usr/sbin/policy-rc.d
    fi
    if [ "$status" -ne 0 ]; then
	log "apt-get install failed (status $status)"
	exit "$status"
    fi
fi

# Whatever happened during installation, leave no system postfix running.
if command -v postfix >/dev/null 2>&1; then
    if as_root postfix status >/dev/null 2>&1; then
	log "stopping the system postfix instance"
	as_root postfix stop >/dev/null 2>&1 || true
    fi
    if command -v pgrep >/dev/null 2>&1 \
	    && pgrep -x master -u 0 >/dev/null 2>&1 \
	    && [ -f /var/spool/postfix/pid/master.pid ]; then
	pid="$(tr -dc 0-9 </var/spool/postfix/pid/master.pid)"
	if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = master ]; then
	    log "stopping postfix master (pid $pid)"
	    as_root kill "$pid" 2>/dev/null || true
	fi
    fi
fi

if [ ${#need_sendmail[@]} -gt 0 ]; then
    as_root mkdir -p "$deb_cache"
    log "apt-get download ${need_sendmail[*]} into $deb_cache"
    (cd "$deb_cache" && as_root apt-get download -q \
	-o APT::Sandbox::User=root "${need_sendmail[@]}" </dev/null)
fi

log "group '$group': done"
