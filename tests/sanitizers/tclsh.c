/*
 * tclsh.c --
 *
 *	A plain tclsh main program for "make asan-test" and "make tsan-test".
 *	It is compiled with the sanitizer flags and linked against the
 *	system's libtcl8.6.so, so that the sanitizer runtime is part of the
 *	executable.  Preloading the runtime into /usr/bin/tclsh8.6 instead
 *	(LD_PRELOAD) would also preload it into every other program the tests
 *	start (perl, gcc, sendmail, miltertest, ...), several of which fail
 *	under ThreadSanitizer or report their own leaks.  Child tclsh
 *	processes started through [info nameofexecutable] get this program
 *	again, so they can load the instrumented libtclmilter.
 *
 *	libtcl itself stays uninstrumented; only this file and the extension
 *	are compiled with -fsanitize.
 *
 * Copyright (c) 2026 The TclMilter developers.
 * See the file "license.terms" for information on usage and redistribution.
 */

#include <tcl.h>

/*
 *----------------------------------------------------------------------
 *
 * AppInit --
 *
 *	Initialises the interpreter the way tclsh does.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Sources init.tcl and sets tcl_rcFileName.
 *
 *----------------------------------------------------------------------
 */

static int
AppInit(
    Tcl_Interp *interp)
{
    if (Tcl_Init(interp) == TCL_ERROR) {
	return TCL_ERROR;
    }
    Tcl_ObjSetVar2(interp, Tcl_NewStringObj("tcl_rcFileName", -1), NULL,
	    Tcl_NewStringObj("~/.tclshrc", -1), TCL_GLOBAL_ONLY);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * main --
 *
 *	Hands control to Tcl_Main.
 *
 * Results:
 *	None: Tcl_Main exits.
 *
 * Side effects:
 *	Runs a Tcl shell or script.
 *
 *----------------------------------------------------------------------
 */

int
main(
    int argc,
    char **argv)
{
    Tcl_Main(argc, argv, AppInit);
    return 0;
}
