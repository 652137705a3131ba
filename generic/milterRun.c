/*
 * milterRun.c --
 *
 *	The commands that run the milter: milter start, main, stop and
 *	reload. Signals are handled while main runs (unix/milterSignal.c),
 *	and a service manager is told about start, reload and stop
 *	(unix/milterSystemd.c). What reaches the interpreter from the
 *	network thread while it runs, and the teardown, are in
 *	milterBridge.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Buffer sizes: the error text of a failed start, the "fd:N" spec of a
 * socket that systemd passed, and a log line.
 */

#define ERROR_SIZE	512
#define FD_SPEC_SIZE	40
#define LOG_LINE_SIZE	400

/*
 * Time units, for the MONOTONIC_USEC of a reload.
 */

#define USEC_PER_SEC	1000000ULL
#define NSEC_PER_USEC	1000ULL

/*
 * What the actions stop and reload of -signals do: given to the signal
 * handling (unix/milterSignal.c) before it is installed.
 */

static const MilterSignalActions signalActions = {
    MilterStopOwn, MilterReload
};

/*
 *----------------------------------------------------------------------
 *
 * MilterRunInit --
 *
 *	Package initialisation (Milter_Init): gives the signal handling the
 *	actions stop and reload of these commands, before any milter can
 *	install it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	MilterSignalSetActions.
 *
 *----------------------------------------------------------------------
 */

void
MilterRunInit(void)
{
    MilterSignalSetActions(&signalActions);
}

/*
 *----------------------------------------------------------------------
 *
 * FillServerConfig --
 *
 *	The network thread's configuration, from the interpreter's options.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *cfgPtr; its strings are the state's own.
 *
 *----------------------------------------------------------------------
 */

static void
FillServerConfig(
    MilterState *statePtr,	/* The interpreter's milter. */
    MilterServerConfig *cfgPtr)	/* Filled in. */
{
    memset(cfgPtr, 0, sizeof(MilterServerConfig));
    cfgPtr->spec = Tcl_GetString(statePtr->connectionObj);
    cfgPtr->backlog = statePtr->backlog;
    cfgPtr->timeout = statePtr->timeout;
    cfgPtr->maxConnections = statePtr->maxConnections;
    cfgPtr->drainTimeout = statePtr->drainTimeout;
    cfgPtr->socketMode = statePtr->socketMode;
    cfgPtr->socketUid = statePtr->socketUid;
    cfgPtr->socketGid = statePtr->socketGid;
    cfgPtr->maxData = (size_t) statePtr->maxDataSize;
    cfgPtr->leadingSpace = statePtr->leadingSpace;
    cfgPtr->debugLevel = statePtr->debugLevel;
    cfgPtr->wanted = statePtr->wanted;
    cfgPtr->stats = statePtr->stats;
    cfgPtr->metricsSpec = statePtr->metricsObj != NULL
	    ? Tcl_GetString(statePtr->metricsObj) : NULL;
    cfgPtr->captureDir = statePtr->captureObj != NULL
	    ? Tcl_GetString(statePtr->captureObj) : NULL;
    cfgPtr->captureSize = (size_t) statePtr->captureSize;
    cfgPtr->captureBody = (size_t) statePtr->captureBody;
    cfgPtr->captureMask = statePtr->captureMask;
    cfgPtr->captureAll = statePtr->captureAll;
}

/*
 *----------------------------------------------------------------------
 *
 * CheckCaptureDir --
 *
 *	-capture must name a directory the milter can write files into: a
 *	mistake there fails milter start rather than every session.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER CONFIG VALUE -capture.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
CheckCaptureDir(
    Tcl_Interp *interp,		/* For errors. */
    const char *dir)		/* -capture, or NULL when not set. */
{
    struct stat st;
    const char *why = NULL;

    if (dir == NULL) {
	return TCL_OK;
    }
    if (stat(dir, &st) != 0) {
	why = Tcl_ErrnoMsg(errno);
    } else if (!S_ISDIR(st.st_mode)) {
	why = "not a directory";
    } else if (access(dir, W_OK | X_OK) != 0) {
	why = Tcl_ErrnoMsg(errno);
    }
    if (why == NULL) {
	return TCL_OK;
    }
    Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad value \"%s\" for -capture: "
	    "cannot write files there: %s", dir, why));
    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE", "-capture", NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * UseSystemdSocket --
 *
 *	-connection systemd: serves on the socket the service manager
 *	passed, as "fd:N". Other specs are left as they are.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER SOCKET systemd when no
 *	socket was passed.
 *
 * Side effects:
 *	May point cfgPtr->spec at 'spec'.
 *
 *----------------------------------------------------------------------
 */

static int
UseSystemdSocket(
    Tcl_Interp *interp,		/* For the error. */
    MilterServerConfig *cfgPtr,	/* Its spec may change. */
    char *spec,			/* Room for "fd:N" ... */
    size_t specSize)		/* ... of this size. */
{
    char err[ERROR_SIZE];
    int fd;

    if (strcmp(cfgPtr->spec, "systemd") != 0) {
	return TCL_OK;
    }
    if (!MilterSystemdFd(interp, &fd, err, sizeof(err))) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"couldn't open milter socket: %s", err));
	Tcl_SetErrorCode(interp, "MILTER", "SOCKET", "systemd", NULL);
	return TCL_ERROR;
    }
    snprintf(spec, specSize, "fd:%d", fd);
    cfgPtr->spec = spec;
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * ServerStartError --
 *
 *	The error of a failed MilterServerStart: the -metrics socket's or
 *	the milter socket's.
 *
 * Results:
 *	TCL_ERROR, with errorCode MILTER SOCKET and the spec that failed.
 *
 * Side effects:
 *	Sets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

static int
ServerStartError(
    Tcl_Interp *interp,		/* For the error. */
    MilterState *statePtr,	/* Whose sockets failed. */
    const char *err)		/* What MilterServerStart said. */
{
    size_t prefixLength = strlen(MILTER_METRICS_ERROR);

    if (strncmp(err, MILTER_METRICS_ERROR, prefixLength) == 0) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(		/* Stats. */
		"couldn't open metrics socket: %s", err + prefixLength));
	Tcl_SetErrorCode(interp, "MILTER", "SOCKET",
		Tcl_GetString(statePtr->metricsObj), NULL);
	return TCL_ERROR;
    }
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "couldn't open milter socket: %s", err));
    Tcl_SetErrorCode(interp, "MILTER", "SOCKET",
	    Tcl_GetString(statePtr->connectionObj), NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * StartServing --
 *
 *	Makes the interpreter's ready queue, starts the workers (with
 *	-workers) and then the network thread.
 *
 * Results:
 *	A standard Tcl result; on failure nothing is left running.
 *
 * Side effects:
 *	Sets statePtr->queue, ->pool and ->server.
 *
 *----------------------------------------------------------------------
 */

static int
StartServing(
    Tcl_Interp *interp,		/* For errors. */
    MilterState *statePtr,	/* The milter to start. */
    const MilterServerConfig *cfgPtr)	/* The network thread's
				 * configuration. */
				/* The network thread's configuration. */
{
    MilterServerHooks hooks;
    char err[ERROR_SIZE];

    statePtr->queue = MilterQueueNew(MilterReadyHook, statePtr);
    if (statePtr->workers > 0) {
	if (MilterPoolStart(interp, statePtr) != TCL_OK) {
	    MilterReleaseQueue(statePtr);
	    return TCL_ERROR;
	}
	MilterConnCloseQueue(statePtr->queue, statePtr->defaultReply);
    }
    MilterBridgeHooks(statePtr, &hooks);
    err[0] = '\0';
    statePtr->server = MilterServerStart(cfgPtr, &hooks, err, sizeof(err));
    if (statePtr->server == NULL) {
	MilterPoolStop(statePtr);
	MilterReleaseQueue(statePtr);
	return ServerStartError(interp, statePtr, err);
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStart --
 *
 *	Opens the socket (or takes the one systemd passed) and starts
 *	serving in the background; then tells the service manager, if any,
 *	that the milter is ready.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER SOCKET on failure.
 *
 * Side effects:
 *	Starts the network thread.
 *
 *----------------------------------------------------------------------
 */

int
MilterStart(
    Tcl_Interp *interp,		/* For errors. */
    MilterState *statePtr)	/* The interpreter's milter. */
{
    MilterServerConfig cfg;
    char spec[FD_SPEC_SIZE];

    if (statePtr->status != MILTER_IDLE) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"the milter is already running", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "RUNNING", NULL);
	return TCL_ERROR;
    }
    if (statePtr->workerPtr != NULL) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"a worker interpreter cannot start a milter", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "WORKER", NULL);
	return TCL_ERROR;
    }
    FillServerConfig(statePtr, &cfg);
    if (CheckCaptureDir(interp, cfg.captureDir) != TCL_OK
	    || UseSystemdSocket(interp, &cfg, spec, sizeof(spec)) != TCL_OK) {
	return TCL_ERROR;
    }
    MilterNotifyInit(statePtr);

    Tcl_MutexLock(&statePtr->lock);
    statePtr->useLogCommand = statePtr->logCommandObj != NULL;
    Tcl_MutexUnlock(&statePtr->lock);
    MilterLogReset(statePtr);

    MilterStatsReset(statePtr->stats);	/* Counted since the start. */
    if (StartServing(interp, statePtr, &cfg) != TCL_OK) {
	return TCL_ERROR;
    }
    statePtr->status = MILTER_RUNNING;
    MilterRegisterRunning(statePtr);
    if (statePtr->debugLevel > 0) {
	char msg[LOG_LINE_SIZE];

	snprintf(msg, sizeof(msg), "milter \"%s\" listening on %s",
		Tcl_GetString(statePtr->nameObj),
		MilterServerAddress(statePtr->server));
	MilterLog(statePtr, MILTER_LOG_NOTICE, msg);
    }
    MilterNotify(statePtr, "READY=1\nSTATUS=listening on %s",
	    MilterServerAddress(statePtr->server));
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStartObjCmd --
 *
 *	milter start
 *
 *	Starts serving and returns at once; callbacks run whenever the
 *	event loop runs (vwait, update, Tk, or milter main). Signals are
 *	handled from now on only when -signals is set.
 *
 * Results:
 *	A standard Tcl result (see MilterStart).
 *
 * Side effects:
 *	Starts the network thread; may change signal dispositions.
 *
 *----------------------------------------------------------------------
 */

int
MilterStartObjCmd(
    ClientData clientData,	/* The interpreter's milter state. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
{
    MilterState *statePtr = clientData;
    int installed = 0;

    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }

    /*
     * Signals first, so that they are handled from the moment a service
     * manager hears that the milter is ready.
     */

    if (statePtr->signalsObj != NULL && statePtr->status == MILTER_IDLE
	    && !statePtr->signalsInstalled) {
	MilterSignalInstall(statePtr, MILTER_SIGNALS_BY_START);
	installed = statePtr->signalsInstalled;
    }
    if (MilterStart(interp, statePtr) != TCL_OK) {
	if (installed) {
	    MilterSignalRestore(statePtr);
	}
	return TCL_ERROR;
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterMainObjCmd --
 *
 *	milter main
 *
 *	Starts the milter if it is idle, then runs the event loop (timers,
 *	file events and sockets keep working) until it is stopped and every
 *	connection has finished. Meanwhile the milter handles the signals
 *	of -signals (TERM, INT and HUP stop it by default), unless another
 *	milter of the process does.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Runs the event loop; changes signal dispositions while it runs.
 *
 *----------------------------------------------------------------------
 */

int
MilterMainObjCmd(
    ClientData clientData,	/* The interpreter's milter state. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
{
    MilterState *statePtr = clientData;
    int code = TCL_OK;

    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    if (statePtr->inMain) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"milter main is already running", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "RUNNING", NULL);
	return TCL_ERROR;
    }
    MilterSignalInstall(statePtr, MILTER_SIGNALS_BY_MAIN);
				/* Before READY=1, see start. */
    if (statePtr->status == MILTER_IDLE
	    && MilterStart(interp, statePtr) != TCL_OK) {
	if (statePtr->signalsByMain) {
	    MilterSignalRestore(statePtr);
	}
	return TCL_ERROR;
    }
    statePtr->inMain = 1;
    Tcl_Preserve(statePtr);
    while (statePtr->status != MILTER_IDLE && !statePtr->shutDown) {
	Tcl_DoOneEvent(TCL_ALL_EVENTS);
	if (Tcl_InterpDeleted(interp)) {
	    break;
	}
	if (Tcl_Canceled(interp, TCL_LEAVE_ERR_MSG) == TCL_ERROR
		|| Tcl_LimitExceeded(interp)) {
	    code = TCL_ERROR;
	    break;
	}
    }
    statePtr->inMain = 0;
    if (statePtr->signalsByMain) {
	MilterSignalRestore(statePtr);
    }
    Tcl_Release(statePtr);
    if (code == TCL_OK) {
	Tcl_ResetResult(interp);
    }
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStopOwn --
 *
 *	Owner thread: stops this interpreter's milter if it runs (milter
 *	stop, or a signal whose action is stop), telling the service
 *	manager.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	The milter drains.
 *
 *----------------------------------------------------------------------
 */

void
MilterStopOwn(
    MilterState *statePtr)	/* The interpreter's milter. */
{
    if (statePtr->server != NULL && statePtr->status == MILTER_RUNNING) {
	statePtr->status = MILTER_DRAINING;
	MilterNotifyStopping(statePtr, statePtr->server);
	MilterServerStop(statePtr->server, MILTER_STOP_DRAIN);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStopObjCmd --
 *
 *	milter stop
 *
 *	Stops this interpreter's milter; in an interpreter that runs none
 *	(the manual's secondary thread), stops every milter of the process.
 *	Listening ends at once; open messages may finish until
 *	-draintimeout; milter main returns when all connections are gone.
 *	From another thread the owner is woken by a queued event.
 *
 * Results:
 *	TCL_OK.
 *
 * Side effects:
 *	Stops milters.
 *
 *----------------------------------------------------------------------
 */

int
MilterStopObjCmd(
    ClientData clientData,	/* The interpreter's milter state. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
{
    MilterState *statePtr = clientData;

    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    if (statePtr->server != NULL) {
	MilterStopOwn(statePtr);
    } else {
	MilterStopAllRunning();
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterReloadObjCmd --
 *
 *	milter reload
 *
 *	With -workers: a fresh generation of workers from the current
 *	-workerinit takes the new connections; sessions in progress finish
 *	on the old one, which then ends. If the new -workerinit fails, the
 *	old generation keeps serving and the error is returned.
 *
 * Results:
 *	A standard Tcl result; MILTER STATE IDLE when the milter does not
 *	run, MILTER STATE NOWORKERS without -workers, MILTER WORKERINIT when
 *	the new generation failed.
 *
 * Side effects:
 *	Starts and retires worker threads; notifies the service manager
 *	(see MilterReload).
 *
 *----------------------------------------------------------------------
 */

int
MilterReloadObjCmd(
    ClientData clientData,	/* The interpreter's milter state. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
{
    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    return MilterReload(interp, clientData);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterReload --
 *
 *	Owner thread: milter reload, from the command or a signal. The
 *	service manager is told RELOADING=1 before and READY=1 after (also
 *	when the new generation failed, since the old one serves on).
 *
 * Results:
 *	As MilterReloadObjCmd.
 *
 * Side effects:
 *	Starts and retires worker threads.
 *
 *----------------------------------------------------------------------
 */

int
MilterReload(
    Tcl_Interp *interp,		/* For errors. */
    MilterState *statePtr)	/* The interpreter's milter. */
{
    struct timespec ts;
    int code;

    if (statePtr->status != MILTER_RUNNING) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"the milter is not running", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "IDLE", NULL);
	return TCL_ERROR;
    }
    if (statePtr->pool == NULL) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"nothing to reload: the milter runs without -workers", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "NOWORKERS", NULL);
	return TCL_ERROR;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    MilterNotify(statePtr, "RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=reloading", (unsigned long long) ts.tv_sec * USEC_PER_SEC
	    + (unsigned long long) ts.tv_nsec / NSEC_PER_USEC);
    code = MilterPoolReload(interp, statePtr);
    MilterNotify(statePtr, "READY=1\nSTATUS=listening on %s%s",
	    MilterServerAddress(statePtr->server),
	    code == TCL_OK ? "" : " (reload failed: the workers before it "
	    "serve on)");
    return code;
}
