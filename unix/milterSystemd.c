/*
 * milterSystemd.c --
 *
 *	The two systemd protocols a milter service needs, without
 *	libsystemd: both are a few lines of plain socket code, and a
 *	dependency on libsystemd would tie the package to systemd systems.
 *
 *	Socket activation: -connection systemd takes the listening socket
 *	that systemd (or systemd-socket-activate) passed as descriptor 3,
 *	after checking LISTEN_PID and LISTEN_FDS as sd_listen_fds() does,
 *	and removes the variables from the environment, so that programs
 *	the script starts do not think the socket is theirs.
 *
 *	Notification (sd_notify): when NOTIFY_SOCKET names a unix datagram
 *	socket (a path, or "@name" for an abstract one), the milter sends
 *	it READY=1 once it listens, RELOADING=1 and READY=1 around milter
 *	reload, and STOPPING=1 when it stops, each with a STATUS= line. The
 *	datagram is sent without waiting: a service manager that does not
 *	read it never holds up the milter.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * The first descriptor systemd passes (SD_LISTEN_FDS_START).
 */

#define LISTEN_FDS_START 3

/*
 * At most this many passed descriptors get FD_CLOEXEC.
 */

#define LISTEN_FDS_MAX	1024

/*
 * The descriptor taken by the first "systemd" start, for the next ones:
 * by then the variables are gone from the environment.
 */

TCL_DECLARE_MUTEX(systemdLock)
static int systemdFd = -1;		/* systemdLock */

/*
 *----------------------------------------------------------------------
 *
 * ParseNumber --
 *
 *	A whole string as a non-negative decimal integer.
 *
 * Results:
 *	The number, or -1.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static long
ParseNumber(
    const char *s)
{
    char *end;
    long value;

    if (s == NULL || *s < '0' || *s > '9') {
	return -1;
    }
    errno = 0;
    value = strtol(s, &end, 10);
    if (*end != '\0' || errno != 0) {
	return -1;
    }
    return value;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSystemdFd --
 *
 *	Owner thread, at start with -connection systemd: the listening
 *	socket systemd passed. LISTEN_PID must be this process and
 *	LISTEN_FDS at least 1; the first descriptor (3) is taken, every
 *	passed descriptor is marked close-on-exec, and LISTEN_PID,
 *	LISTEN_FDS and LISTEN_FDNAMES are removed from the environment
 *	(through the interpreter's env array, which keeps Tcl's view of the
 *	environment right). Later starts take the same descriptor again.
 *
 * Results:
 *	1 with the descriptor in *fdPtr; else 0 with a message.
 *
 * Side effects:
 *	Changes the environment and descriptor flags.
 *
 *----------------------------------------------------------------------
 */

int
MilterSystemdFd(
    Tcl_Interp *interp,
    int *fdPtr,
    char *err,
    size_t errLen)
{
    const char *pidStr, *fdsStr;
    long pid, count, i;

    Tcl_MutexLock(&systemdLock);
    *fdPtr = systemdFd;
    Tcl_MutexUnlock(&systemdLock);
    if (*fdPtr >= 0) {
	return 1;
    }
    pidStr = Tcl_GetVar2(interp, "env", "LISTEN_PID", TCL_GLOBAL_ONLY);
    fdsStr = Tcl_GetVar2(interp, "env", "LISTEN_FDS", TCL_GLOBAL_ONLY);
    if (pidStr == NULL || fdsStr == NULL) {
	snprintf(err, errLen, "systemd passed no socket: LISTEN_PID and "
		"LISTEN_FDS are not set");
	return 0;
    }
    pid = ParseNumber(pidStr);
    if (pid != (long) getpid()) {
	snprintf(err, errLen, "the sockets systemd passed are for process "
		"\"%s\", not this one (%ld)", pidStr, (long) getpid());
	return 0;
    }
    count = ParseNumber(fdsStr);
    if (count < 1) {
	snprintf(err, errLen, "systemd passed no socket: LISTEN_FDS is "
		"\"%s\"", fdsStr);
	return 0;
    }
    if (!MilterSocketCheckFd(LISTEN_FDS_START, err, errLen)) {
	return 0;
    }
    for (i = 0; i < count && i < LISTEN_FDS_MAX; i++) {
	int flags = fcntl(LISTEN_FDS_START + (int) i, F_GETFD);

	if (flags >= 0) {
	    fcntl(LISTEN_FDS_START + (int) i, F_SETFD, flags | FD_CLOEXEC);
	}
    }
    Tcl_UnsetVar2(interp, "env", "LISTEN_PID", TCL_GLOBAL_ONLY);
    Tcl_UnsetVar2(interp, "env", "LISTEN_FDS", TCL_GLOBAL_ONLY);
    Tcl_UnsetVar2(interp, "env", "LISTEN_FDNAMES", TCL_GLOBAL_ONLY);
    Tcl_MutexLock(&systemdLock);
    systemdFd = LISTEN_FDS_START;
    Tcl_MutexUnlock(&systemdLock);
    *fdPtr = LISTEN_FDS_START;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSystemdFinalize --
 *
 *	The library leaves the process (unload): forgets the mutex, which
 *	Tcl would otherwise finalize through a pointer into the unmapped
 *	library. The descriptor taken stays open.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Finalizes the mutex.
 *
 *----------------------------------------------------------------------
 */

void
MilterSystemdFinalize(void)
{
    Tcl_MutexFinalize(&systemdLock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterNotifyInit --
 *
 *	Owner thread, at start: remembers NOTIFY_SOCKET if it names a unix
 *	socket (an absolute path, or "@name").
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets statePtr->notifyPath.
 *
 *----------------------------------------------------------------------
 */

void
MilterNotifyInit(
    MilterState *statePtr)
{
    const char *path = getenv("NOTIFY_SOCKET");

    statePtr->notifyPath[0] = '\0';
    if (path != NULL && (path[0] == '/' || (path[0] == '@' && path[1]))
	    && strlen(path) < sizeof(statePtr->notifyPath)
	    && strlen(path) < sizeof(((struct sockaddr_un *) 0)->sun_path)) {
	strcpy(statePtr->notifyPath, path);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterNotify --
 *
 *	Any thread: sends a notification ("READY=1\nSTATUS=...") to the
 *	service manager, if NOTIFY_SOCKET was set when the milter started.
 *	The datagram is sent without blocking; if it cannot be sent now it
 *	is lost, as with sd_notify.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sends a datagram.
 *
 *----------------------------------------------------------------------
 */

void
MilterNotify(
    MilterState *statePtr,
    const char *format,
    ...)
{
    struct sockaddr_un sun;
    socklen_t len;
    const char *path = statePtr->notifyPath;
    char msg[1024];
    va_list args;
    int fd, n;
    ssize_t sent;

    if (path[0] == '\0') {
	return;
    }
    va_start(args, format);
    n = vsnprintf(msg, sizeof(msg), format, args);
    va_end(args);
    if (n < 0) {
	return;
    }
    if ((size_t) n >= sizeof(msg)) {
	n = sizeof(msg) - 1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (path[0] == '@') {
	sun.sun_path[0] = '\0';		/* Abstract: no trailing NUL. */
    } else {
	len++;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
	return;
    }
    do {
	sent = sendto(fd, msg, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT,
		(struct sockaddr *) &sun, len);
    } while (sent < 0 && errno == EINTR);
    close(fd);
}
