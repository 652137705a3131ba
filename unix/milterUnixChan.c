/*
 * milterUnixChan.c --
 *
 *	::milter::test::unixsocket path: a Tcl channel connected to a unix
 *	domain socket. Tcl 8.6 cannot open one itself; the MTA-side test
 *	client (library/miltertest.tcl) uses this, so that tests reach
 *	milters on unix sockets without a helper process. Only the client
 *	needs it: "package require milter::test" loads the TclMilter shared
 *	library with the init procedure Miltertest_Init, which creates the
 *	command; "package require TclMilter" (Milter_Init) does not.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 *----------------------------------------------------------------------
 *
 * UnixSocketObjCmd --
 *
 *	::milter::test::unixsocket path
 *
 * Results:
 *	The name of a new channel, readable and writable, or an error with
 *	errorCode POSIX ... as Tcl's socket command reports.
 *
 * Side effects:
 *	Opens a socket.
 *
 *----------------------------------------------------------------------
 */

static int
UnixSocketObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    struct sockaddr_un sun;
    const char *path;
    Tcl_Channel chan;
    int fd;

    (void) clientData;
    if (objc != 2) {
	Tcl_WrongNumArgs(interp, 1, objv, "path");
	return TCL_ERROR;
    }
    path = Tcl_GetString(objv[1]);
    if (strlen(path) >= sizeof(sun.sun_path)) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"unix socket path \"%s\" is too long", path));
	Tcl_SetErrorCode(interp, "POSIX", "ENAMETOOLONG",
		"file name too long", NULL);
	return TCL_ERROR;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
	int err = errno;

	if (fd >= 0) {
	    close(fd);
	}
	Tcl_SetErrno(err);
	Tcl_SetObjResult(interp, Tcl_NewStringObj(Tcl_PosixError(interp), -1));
	return TCL_ERROR;
    }
    chan = Tcl_MakeFileChannel((ClientData) (intptr_t) fd,
	    TCL_READABLE | TCL_WRITABLE);
    Tcl_RegisterChannel(interp, chan);
    Tcl_SetObjResult(interp, Tcl_NewStringObj(Tcl_GetChannelName(chan), -1));
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * Miltertest_Init --
 *
 *	The second init procedure of the shared library, for the milter::test
 *	package (pkgIndex.tcl: "load FILE Miltertest"): creates
 *	::milter::test::unixsocket. The package itself is provided by
 *	library/miltertest.tcl.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Creates a command (and the namespace ::milter::test) in the
 *	interpreter.
 *
 *----------------------------------------------------------------------
 */

int
Miltertest_Init(
    Tcl_Interp *interp)
{
    if (Tcl_InitStubs(interp, "8.6", 0) == NULL) {
	return TCL_ERROR;
    }
    Tcl_CreateObjCommand(interp, "::milter::test::unixsocket",
	    UnixSocketObjCmd, NULL, NULL);
    return TCL_OK;
}
