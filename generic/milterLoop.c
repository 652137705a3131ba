/*
 * milterLoop.c --
 *
 *	Running and stopping a milter: milter start, main, stop and reload;
 *	the drain event through which the network thread's work (and its
 *	log lines, see milterLog.c) reaches the owner thread; and teardown on
 *	interpreter deletion, thread exit and process exit. Signals are
 *	handled while main runs (unix/milterSignal.c), and a service manager
 *	is told about start, reload and stop (unix/milterSystemd.c).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * The event queued to the owner thread. One is in the queue at a time per
 * milter; it drains everything that is ready.
 */

typedef struct DrainEvent {
    Tcl_Event header;		/* Must be first. */
    MilterState *statePtr;
} DrainEvent;

/*
 * Running milters of the process, so that [milter stop] works from any
 * thread and process exit can stop every network thread.
 */

typedef struct Running {
    MilterState *statePtr;
    MilterServer *server;
    struct Running *nextPtr;
} Running;

TCL_DECLARE_MUTEX(registryLock)
static Running *running = NULL;		/* registryLock */
static int exitHandlerSet = 0;		/* registryLock */

static int		DrainEventProc(Tcl_Event *evPtr, int flags);

/*
 *----------------------------------------------------------------------
 *
 * NotifyStopping --
 *
 *	Any thread, just before a milter's server is asked to stop (and
 *	only if no stop was asked yet): tells the service manager.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See MilterNotify.
 *
 *----------------------------------------------------------------------
 */

static void
NotifyStopping(
    MilterState *statePtr,
    MilterServer *server)
{
    if (!MilterServerStopping(server)) {
	MilterNotify(statePtr, "STOPPING=1\nSTATUS=stopping");
    }
}

/*
 *----------------------------------------------------------------------
 *
 * PostDrainLocked --
 *
 *	Queues the drain event to the owner unless one is queued already.
 *	Called with statePtr->lock held, from any thread; checking 'dead'
 *	under the lock guarantees nothing is queued after teardown.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues an event and wakes the owner's notifier.
 *
 *----------------------------------------------------------------------
 */

static void
PostDrainLocked(
    MilterState *statePtr)
{
    DrainEvent *evPtr;

    if (statePtr->dead || statePtr->posted) {
	return;
    }
    statePtr->posted = 1;
    evPtr = (DrainEvent *) ckalloc(sizeof(DrainEvent));
    evPtr->header.proc = DrainEventProc;
    evPtr->statePtr = statePtr;
    Tcl_ThreadQueueEvent(statePtr->owner, (Tcl_Event *) evPtr,
	    TCL_QUEUE_TAIL);
    Tcl_ThreadAlert(statePtr->owner);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterReadyHook --
 *
 *	A ready queue's hook (any thread, with the queue's lock held): the
 *	interpreter that drains it has work, or its last connection went.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues the drain event to that interpreter's thread.
 *
 *----------------------------------------------------------------------
 */

void
MilterReadyHook(
    void *clientData)
{
    MilterState *statePtr = clientData;

    Tcl_MutexLock(&statePtr->lock);
    PostDrainLocked(statePtr);
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * Server hooks --
 *
 *	AssignHook: a new connection's ready queue (network thread): a
 *	    worker's, or the owner's.
 *	DeadlineHook: a stop's -draintimeout passed; the owner and every
 *	    worker answer the callbacks they hold suspended.
 *	StoppedHook: every connection is gone after a stop.
 *	LogHook: a log line from any thread; it is only queued (see
 *	    milterLog.c), and the owner woken to deliver it.
 *	ThreadExitHook: the network thread ends; release what ckalloc kept
 *	    for it.
 *
 *----------------------------------------------------------------------
 */

static MilterQueue *
AssignHook(
    void *clientData)
{
    MilterState *statePtr = clientData;
    MilterQueue *queue = NULL;

    if (statePtr->pool != NULL) {
	queue = MilterPoolAssign(statePtr->pool);
    }
    if (queue == NULL) {
	/*
	 * Owner mode; or no worker serves right now, and the owner's
	 * queue, closed in worker mode, answers with -defaultreply.
	 */

	queue = statePtr->queue;
	MilterQueuePin(queue);
    }
    return queue;
}

static void
DeadlineHook(
    void *clientData)
{
    MilterState *statePtr = clientData;

    MilterCoroDeadline(statePtr);
    if (statePtr->pool != NULL) {
	MilterPoolDeadline(statePtr->pool);
    }
}

static void
StoppedHook(
    void *clientData)
{
    MilterState *statePtr = clientData;

    Tcl_MutexLock(&statePtr->lock);
    statePtr->serverStopped = 1;
    PostDrainLocked(statePtr);
    Tcl_MutexUnlock(&statePtr->lock);
}

static void
LogHook(
    void *clientData,
    MilterLogLevel level,
    const char *msg)
{
    MilterLogFromAnyThread(clientData, level, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogFromAnyThread --
 *
 *	Queues a log line for the owner of 'statePtr' (through its
 *	-logcommand or its log destination), from any thread; never blocks
 *	on I/O.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues the line and wakes the owner.
 *
 *----------------------------------------------------------------------
 */

void
MilterLogFromAnyThread(
    MilterState *statePtr,
    MilterLogLevel level,
    const char *msg)
{
    Tcl_MutexLock(&statePtr->lock);
    if (MilterLogQueueLocked(statePtr, level, msg)) {
	PostDrainLocked(statePtr);
    }
    Tcl_MutexUnlock(&statePtr->lock);
}

static void
ThreadExitHook(
    void *clientData)		/* Not used. */
{
    (void) clientData;
    Tcl_FinalizeThread();
}

/*
 *----------------------------------------------------------------------
 *
 * Registry --
 *
 *	Register and Unregister keep the process list of running milters.
 *
 *----------------------------------------------------------------------
 */

static void
Register(
    MilterState *statePtr)
{
    Running *rPtr = (Running *) ckalloc(sizeof(Running));

    rPtr->statePtr = statePtr;
    rPtr->server = statePtr->server;
    Tcl_MutexLock(&registryLock);
    rPtr->nextPtr = running;
    running = rPtr;
    Tcl_MutexUnlock(&registryLock);
}

static void
Unregister(
    MilterState *statePtr)
{
    Running **linkPtr, *rPtr = NULL;

    Tcl_MutexLock(&registryLock);
    for (linkPtr = &running; *linkPtr != NULL;
	    linkPtr = &(*linkPtr)->nextPtr) {
	if ((*linkPtr)->statePtr == statePtr) {
	    rPtr = *linkPtr;
	    *linkPtr = rPtr->nextPtr;
	    break;
	}
    }
    Tcl_MutexUnlock(&registryLock);
    if (rPtr != NULL) {
	ckfree(rPtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ReleaseQueue --
 *
 *	Lets go of the interpreter's ready queue (the connections pinned to
 *	it hold their own references).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Clears statePtr->queue.
 *
 *----------------------------------------------------------------------
 */

static void
ReleaseQueue(
    MilterState *statePtr)
{
    if (statePtr->queue != NULL) {
	MilterQueueRelease(statePtr->queue);
	statePtr->queue = NULL;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FinishStop --
 *
 *	The network thread reported that every connection is gone: join it
 *	and go back to idle, so that milter main returns and may run again.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees the server.
 *
 *----------------------------------------------------------------------
 */

static void
FinishStop(
    MilterState *statePtr)
{
    MilterServer *server = statePtr->server;
    MilterEvent *ev;
    MilterConn *conn;

    if (server == NULL) {
	return;
    }
    Unregister(statePtr);
    MilterServerJoin(server);
    while ((conn = MilterQueuePop(statePtr->queue, &ev)) != NULL) {
	MilterRunConn(statePtr, conn, ev);
    }
    MilterPoolStop(statePtr);
    ReleaseQueue(statePtr);
    MilterSignalRestore(statePtr);
    statePtr->server = NULL;
    statePtr->status = MILTER_IDLE;
    Tcl_MutexLock(&statePtr->lock);
    statePtr->serverStopped = 0;
    Tcl_MutexUnlock(&statePtr->lock);
    MilterServerRelease(server);
}

/*
 *----------------------------------------------------------------------
 *
 * DrainEventProc --
 *
 *	Owner thread. Delivers the log lines and runs every ready
 *	connection, and finishes a stop. Serviced with file events, like
 *	socket readiness.
 *
 * Results:
 *	1 when handled; 0 to stay queued when file events are not being
 *	serviced.
 *
 * Side effects:
 *	Runs script callbacks.
 *
 *----------------------------------------------------------------------
 */

static int
DrainEventProc(
    Tcl_Event *evPtr,
    int flags)
{
    MilterState *statePtr = ((DrainEvent *) evPtr)->statePtr;
    MilterEvent *ev;
    MilterConn *conn;
    int stopped, budget;

    if (!(flags & TCL_FILE_EVENTS)) {
	return 0;
    }
    Tcl_MutexLock(&statePtr->lock);
    statePtr->posted = 0;
    stopped = statePtr->serverStopped;
    Tcl_MutexUnlock(&statePtr->lock);

    Tcl_Preserve(statePtr);
    MilterLogFlush(statePtr);

    /*
     * Only the connections queued now: later ones wait for the next drain
     * event, so timers and file events get their turn in between.
     */

    MilterWorkerBeforeDrain(statePtr);
    statePtr->draining++;
    budget = statePtr->queue ? MilterQueueLength(statePtr->queue) : 0;
    while (budget-- > 0 && !statePtr->shutDown && statePtr->queue != NULL
	    && (conn = MilterQueuePop(statePtr->queue, &ev)) != NULL) {
	MilterRunConn(statePtr, conn, ev);
    }
    statePtr->draining--;
    if (!statePtr->shutDown && statePtr->queue != NULL
	    && MilterQueueLength(statePtr->queue) > 0) {
	Tcl_MutexLock(&statePtr->lock);
	PostDrainLocked(statePtr);
	Tcl_MutexUnlock(&statePtr->lock);
    }
    if (!statePtr->shutDown && (stopped || statePtr->finishPending)) {
	if (statePtr->draining > 0) {
	    statePtr->finishPending = 1;	/* Outer drain finishes. */
	} else {
	    statePtr->finishPending = 0;
	    FinishStop(statePtr);
	}
    }
    Tcl_Release(statePtr);
    return 1;
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
    Tcl_Interp *interp,
    MilterState *statePtr)
{
    MilterServerConfig cfg;
    MilterServerHooks hooks;
    char err[512], spec[40];

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
    memset(&cfg, 0, sizeof(cfg));
    cfg.spec = Tcl_GetString(statePtr->connectionObj);
    cfg.backlog = statePtr->backlog;
    cfg.timeout = statePtr->timeout;
    cfg.maxConnections = statePtr->maxConnections;
    cfg.drainTimeout = statePtr->drainTimeout;
    cfg.socketMode = statePtr->socketMode;
    cfg.socketUid = statePtr->socketUid;
    cfg.socketGid = statePtr->socketGid;
    cfg.maxData = (size_t) statePtr->maxDataSize;
    cfg.leadingSpace = statePtr->leadingSpace;
    cfg.debugLevel = statePtr->debugLevel;
    cfg.wanted = statePtr->wanted;
    cfg.stats = statePtr->stats;
    cfg.metricsSpec = statePtr->metricsObj != NULL
	    ? Tcl_GetString(statePtr->metricsObj) : NULL;
    cfg.captureDir = statePtr->captureObj != NULL	/* Capture. */
	    ? Tcl_GetString(statePtr->captureObj) : NULL;
    cfg.captureSize = (size_t) statePtr->captureSize;
    cfg.captureBody = (size_t) statePtr->captureBody;
    cfg.captureMask = statePtr->captureMask;
    cfg.captureAll = statePtr->captureAll;

    hooks.clientData = statePtr;
    hooks.assign = AssignHook;
    hooks.log = LogHook;
    hooks.stopped = StoppedHook;
    hooks.threadExit = ThreadExitHook;
    hooks.deadline = DeadlineHook;
    hooks.metrics = MilterStatsText;

    if (strcmp(cfg.spec, "systemd") == 0) {
	int fd;

	if (!MilterSystemdFd(interp, &fd, err, sizeof(err))) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "couldn't open milter socket: %s", err));
	    Tcl_SetErrorCode(interp, "MILTER", "SOCKET", "systemd", NULL);
	    return TCL_ERROR;
	}
	snprintf(spec, sizeof(spec), "fd:%d", fd);
	cfg.spec = spec;
    }
    MilterNotifyInit(statePtr);

    Tcl_MutexLock(&statePtr->lock);
    statePtr->useLogCommand = statePtr->logCommandObj != NULL;
    Tcl_MutexUnlock(&statePtr->lock);
    MilterLogReset(statePtr);

    MilterStatsReset(statePtr->stats);	/* Counted since the start. */
    statePtr->queue = MilterQueueNew(MilterReadyHook, statePtr);
    if (statePtr->workers > 0) {
	if (MilterPoolStart(interp, statePtr) != TCL_OK) {
	    ReleaseQueue(statePtr);
	    return TCL_ERROR;
	}
	MilterConnCloseQueue(statePtr->queue, statePtr->defaultReply);
    }
    err[0] = '\0';
    statePtr->server = MilterServerStart(&cfg, &hooks, err, sizeof(err));
    if (statePtr->server == NULL) {
	MilterPoolStop(statePtr);
	ReleaseQueue(statePtr);
	if (strncmp(err, MILTER_METRICS_ERROR,
		strlen(MILTER_METRICS_ERROR)) == 0) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(		/* Stats. */
		    "couldn't open metrics socket: %s",
		    err + strlen(MILTER_METRICS_ERROR)));
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
    statePtr->status = MILTER_RUNNING;
    Register(statePtr);
    if (statePtr->debugLevel > 0) {
	char msg[400];

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
 *----------------------------------------------------------------------
 */

int
MilterStartObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    int installed = 0;

    (void) clientData;
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
	MilterSignalInstall(statePtr, 0);
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
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    int code = TCL_OK;

    (void) clientData;
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
    MilterSignalInstall(statePtr, 1);	/* Before READY=1, see start. */
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
    MilterState *statePtr)
{
    if (statePtr->server != NULL && statePtr->status == MILTER_RUNNING) {
	statePtr->status = MILTER_DRAINING;
	NotifyStopping(statePtr, statePtr->server);
	MilterServerStop(statePtr->server, 0);
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
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    Running *rPtr;

    (void) clientData;
    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    if (statePtr->server != NULL) {
	MilterStopOwn(statePtr);
	return TCL_OK;
    }
    Tcl_MutexLock(&registryLock);
    for (rPtr = running; rPtr != NULL; rPtr = rPtr->nextPtr) {
	NotifyStopping(rPtr->statePtr, rPtr->server);
	MilterServerStop(rPtr->server, 0);
    }
    Tcl_MutexUnlock(&registryLock);
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
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);

    (void) clientData;
    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    return MilterReload(interp, statePtr);
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
    Tcl_Interp *interp,
    MilterState *statePtr)
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
	    "STATUS=reloading", (unsigned long long) ts.tv_sec * 1000000
	    + (unsigned long long) ts.tv_nsec / 1000);
    code = MilterPoolReload(interp, statePtr);
    MilterNotify(statePtr, "READY=1\nSTATUS=listening on %s%s",
	    MilterServerAddress(statePtr->server),
	    code == TCL_OK ? "" : " (reload failed: the workers before it "
	    "serve on)");
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * DeleteDrainEvent --
 *
 *	Tcl_DeleteEvents predicate: our queued drain events.
 *
 *----------------------------------------------------------------------
 */

static int
DeleteDrainEvent(
    Tcl_Event *evPtr,
    ClientData clientData)
{
    return evPtr->proc == DrainEventProc
	    && ((DrainEvent *) evPtr)->statePtr == clientData;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterShutdown --
 *
 *	Hard teardown on the owner thread (interpreter deleted, owner thread
 *	exiting): every command waiting for a verdict (in a callback up the
 *	stack, or queued) gets the -defaultreply without running a script;
 *	then every connection is closed, the network thread joined and the
 *	contexts deleted. Queued log lines for standard error are written
 *	as far as that can be done without blocking (MilterLogShutdown).
 *	Safe to call twice and from inside a callback.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Answers and closes connections.
 *
 *----------------------------------------------------------------------
 */

void
MilterShutdown(
    MilterState *statePtr)
{
    MilterServer *server = statePtr->server;
    MilterEvent *ev;
    MilterConn *conn;

    if (statePtr->shutDown) {
	return;
    }
    statePtr->shutDown = 1;
    MilterSignalRestore(statePtr);
    MilterAnswerPending(statePtr);
    if (server != NULL) {
	NotifyStopping(statePtr, server);
	Unregister(statePtr);

	/*
	 * Refuse new connections, give the commands already waiting in the
	 * ready queue the -defaultreply (no callback runs once shutDown is
	 * set), then close everything.
	 */

	MilterServerStop(server, 0);
	while ((conn = MilterQueuePop(statePtr->queue, &ev)) != NULL) {
	    MilterRunConn(statePtr, conn, ev);
	}
	MilterServerStop(server, 1);
	MilterServerJoin(server);
	MilterPoolStop(statePtr);
    }
    MilterWorkerDetach(statePtr);
    if (statePtr->queue != NULL) {
	/*
	 * What still waits, and whatever comes later for a worker's
	 * connections, gets -defaultreply.
	 */

	MilterConnCloseQueue(statePtr->queue, statePtr->defaultReply);
	ReleaseQueue(statePtr);
    }
    Tcl_MutexLock(&statePtr->lock);
    statePtr->dead = 1;
    Tcl_MutexUnlock(&statePtr->lock);
    MilterLogShutdown(statePtr);
    Tcl_DeleteEvents(DeleteDrainEvent, statePtr);
    while (statePtr->contexts != NULL) {
	MilterCtxDelete(statePtr->contexts);
    }
    if (server != NULL) {
	statePtr->server = NULL;
	MilterServerRelease(server);
    }
    statePtr->status = MILTER_IDLE;
}

/*
 *----------------------------------------------------------------------
 *
 * ProcessExit --
 *
 *	Process exit handler. On exit no interpreter is deleted, so this
 *	stops and joins every network thread before Tcl finalizes.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Answers what the exiting thread's milters hold; closes every MTA
 *	connection of the process.
 *
 *----------------------------------------------------------------------
 */

static void
ProcessExit(
    ClientData clientData)	/* Not used. */
{
    Running *rPtr;

    (void) clientData;
    Tcl_MutexLock(&registryLock);
    for (rPtr = running; rPtr != NULL; rPtr = rPtr->nextPtr) {
	if (rPtr->statePtr->owner == Tcl_GetCurrentThread()) {
	    MilterAnswerPending(rPtr->statePtr);	/* exit in a callback */
	}
	MilterServerStop(rPtr->server, 1);
    }
    for (rPtr = running; rPtr != NULL; rPtr = rPtr->nextPtr) {
	MilterServerJoin(rPtr->server);
    }
    Tcl_MutexUnlock(&registryLock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterInitExitHandler --
 *
 *	Registers ProcessExit once per process (each load of the package
 *	calls this).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May create the exit handler.
 *
 *----------------------------------------------------------------------
 */

void
MilterInitExitHandler(void)
{
    Tcl_MutexLock(&registryLock);
    if (!exitHandlerSet) {
	exitHandlerSet = 1;
	Tcl_CreateExitHandler(ProcessExit, NULL);
    }
    Tcl_MutexUnlock(&registryLock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterDeleteExitHandler --
 *
 *	The library is about to leave the process (unload): removes the
 *	exit handler, which would otherwise call into unmapped code at
 *	exit, and forgets the registry mutex (and those of the signal and
 *	systemd code), which Tcl would otherwise finalize through a pointer
 *	into the unmapped library. Refused while any milter of the process
 *	runs.
 *
 * Results:
 *	1 when done, so that the library may go; 0 if a milter runs.
 *
 * Side effects:
 *	Deletes the exit handler and resets the flag, so that a later load
 *	registers it again.
 *
 *----------------------------------------------------------------------
 */

int
MilterDeleteExitHandler(void)
{
    int idle;

    Tcl_MutexLock(&registryLock);
    idle = (running == NULL);
    if (idle && exitHandlerSet) {
	exitHandlerSet = 0;
	Tcl_DeleteExitHandler(ProcessExit, NULL);
    }
    Tcl_MutexUnlock(&registryLock);
    if (idle) {
	Tcl_MutexFinalize(&registryLock);
	MilterSignalFinalize();
	MilterSystemdFinalize();
    }
    return idle;
}
