#!/usr/bin/env bash
# test.sh --
#
#	One-command test run: installs the build and test dependencies
#	(postfix, miltertest, ...), configures and builds TclMilter in the
#	source tree if needed, then runs the whole suite with "make test".
#	Extra arguments go to tcltest, e.g.
#
#	    bash scripts/test.sh -file context.test -verbose bps
#
#	Under CI (CI=true) tests/all.tcl also fails when a test was skipped
#	for a missing dependency, so every integration test must run.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"

bash scripts/deps.sh test

if [ ! -f Makefile ] || [ ! -f config.status ]; then
    ./configure
fi
make
make test TESTFLAGS="$*"
