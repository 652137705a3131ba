#!/usr/bin/env bash
# demo.sh --
#
#	One-command demo: installs the build dependencies, builds TclMilter in
#	the source tree if needed, then runs examples/blacklist.tcl on a
#	private unix socket and shows its verdicts on a clean and a
#	blacklisted message (scripts/demo.tcl, via "make demo").
#
#	    bash scripts/demo.sh
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"

bash scripts/deps.sh build

if [ ! -f Makefile ] || [ ! -f config.status ]; then
    ./configure
fi
make
make demo
