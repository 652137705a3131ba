/*
 * milterBridge.c --
 *
 *	The bridge between the network thread and the interpreter: the
 *	server's hooks (a new connection's ready queue, the drain deadline,
 *	the stop, log lines from any thread), the drain event through which
 *	the network thread's work (and its log lines, see milterLog.c)
 *	reaches the owner thread, the process list of running milters, and
 *	teardown on interpreter deletion, thread exit and process exit. The
 *	commands that start and stop a milter are in milterRun.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"
#include "milterList.h"

/*
 * The event queued to the owner thread. One is in the queue at a time per
 * milter; it drains everything that is ready.
 */

typedef struct DrainEvent {
    Tcl_Event header;		/* Must be first. */
    MilterState *statePtr;	/* The milter whose queue is drained. */
} DrainEvent;

/*
 * Running milters of the process, so that [milter stop] works from any
 * thread and process exit can stop every network thread.
 */

typedef struct Running {
    MilterState *statePtr;	/* A running milter ... */
    MilterServer *server;	/* ... and its server. */
    struct Running *prevPtr;	/* The list's links. */
    struct Running *nextPtr;
} Running;

TCL_DECLARE_MUTEX(registryLock)
static Running *running = NULL;		/* registryLock */
static int exitHandlerSet = 0;		/* registryLock */

static int		DrainEventProc(Tcl_Event *evPtr, int flags);

/*
 *----------------------------------------------------------------------
 *
 * MilterNotifyStopping --
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

void
MilterNotifyStopping(
    MilterState *statePtr,	/* The milter to stop. */
    MilterServer *server)	/* Its server. */
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
    MilterState *statePtr)	/* The owner's milter state, locked. */
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
    void *clientData)		/* The milter state that drains the queue. */
{
    MilterState *statePtr = clientData;

    Tcl_MutexLock(&statePtr->lock);
    PostDrainLocked(statePtr);
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * AssignHook --
 *
 *	Server hook, network thread: the ready queue of a new connection:
 *	a worker's, or the owner's.
 *
 * Results:
 *	The queue, pinned for the connection.
 *
 * Side effects:
 *	Counts the connection on the queue.
 *
 *----------------------------------------------------------------------
 */

static MilterQueue *
AssignHook(
    void *clientData)		/* The owner's milter state. */
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

/*
 *----------------------------------------------------------------------
 *
 * DeadlineHook --
 *
 *	Server hook, network thread: a stop's -draintimeout passed; the
 *	owner and every worker answer the callbacks they hold suspended.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See MilterCoroDeadline and MilterPoolDeadline.
 *
 *----------------------------------------------------------------------
 */

static void
DeadlineHook(
    void *clientData)		/* The owner's milter state. */
{
    MilterState *statePtr = clientData;

    MilterCoroDeadline(statePtr);
    if (statePtr->pool != NULL) {
	MilterPoolDeadline(statePtr->pool);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * StoppedHook --
 *
 *	Server hook, network thread: every connection is gone after a
 *	stop; the owner finishes the stop from its drain event.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets statePtr->serverStopped; queues the drain event.
 *
 *----------------------------------------------------------------------
 */

static void
StoppedHook(
    void *clientData)		/* The owner's milter state. */
{
    MilterState *statePtr = clientData;

    Tcl_MutexLock(&statePtr->lock);
    statePtr->serverStopped = 1;
    PostDrainLocked(statePtr);
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * LogHook --
 *
 *	Server hook, any thread: a log line; it is only queued (see
 *	milterLog.c), and the owner woken to deliver it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See MilterLogFromAnyThread.
 *
 *----------------------------------------------------------------------
 */

static void
LogHook(
    void *clientData,		/* The owner's milter state. */
    MilterLogLevel level,	/* How important the line is. */
    const char *msg)		/* The line, without a newline. */
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
    MilterState *statePtr,	/* Whose log. */
    MilterLogLevel level,	/* How important the line is. */
    const char *msg)		/* The line, without a newline. */
{
    Tcl_MutexLock(&statePtr->lock);
    if (MilterLogQueueLocked(statePtr, level, msg)) {
	PostDrainLocked(statePtr);
    }
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * ThreadExitHook --
 *
 *	Server hook, network thread, as it ends: releases what Tcl kept
 *	for the thread (ckalloc's per-thread caches).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Tcl_FinalizeThread.
 *
 *----------------------------------------------------------------------
 */

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
 * MilterBridgeHooks --
 *
 *	The hooks through which a milter's network thread reaches its
 *	owner (MilterServerStart).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *hooksPtr.
 *
 *----------------------------------------------------------------------
 */

void
MilterBridgeHooks(
    MilterState *statePtr,	/* The owner's milter state. */
    MilterServerHooks *hooksPtr)	/* Filled in. */
{
    hooksPtr->clientData = statePtr;
    hooksPtr->assign = AssignHook;
    hooksPtr->log = LogHook;
    hooksPtr->stopped = StoppedHook;
    hooksPtr->threadExit = ThreadExitHook;
    hooksPtr->deadline = DeadlineHook;
    hooksPtr->metrics = MilterStatsText;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterRegisterRunning --
 *
 *	Adds a milter that has just started to the process list of running
 *	milters (milter stop from another thread, process exit).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Allocates a list entry.
 *
 *----------------------------------------------------------------------
 */

void
MilterRegisterRunning(
    MilterState *statePtr)	/* Started, with its server. */
{
    Running *rPtr = (Running *) ckalloc(sizeof(Running));

    rPtr->statePtr = statePtr;
    rPtr->server = statePtr->server;
    Tcl_MutexLock(&registryLock);
    MILTER_LIST_PUSH(running, rPtr);
    Tcl_MutexUnlock(&registryLock);
}

/*
 *----------------------------------------------------------------------
 *
 * Unregister --
 *
 *	Takes a milter off the process list of running milters, if it is
 *	on it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees its list entry.
 *
 *----------------------------------------------------------------------
 */

static void
Unregister(
    MilterState *statePtr)	/* The milter that stops. */
{
    Running *rPtr;

    Tcl_MutexLock(&registryLock);
    for (rPtr = running; rPtr != NULL; rPtr = rPtr->nextPtr) {
	if (rPtr->statePtr == statePtr) {
	    MILTER_LIST_REMOVE(running, rPtr);
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
 * MilterStopAllRunning --
 *
 *	Any thread: asks every running milter of the process to stop
 *	(milter stop in an interpreter that runs none), telling the
 *	service manager.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	The milters drain; their owners are woken by the network threads.
 *
 *----------------------------------------------------------------------
 */

void
MilterStopAllRunning(void)
{
    Running *rPtr;

    Tcl_MutexLock(&registryLock);
    for (rPtr = running; rPtr != NULL; rPtr = rPtr->nextPtr) {
	MilterNotifyStopping(rPtr->statePtr, rPtr->server);
	MilterServerStop(rPtr->server, MILTER_STOP_DRAIN);
    }
    Tcl_MutexUnlock(&registryLock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterReleaseQueue --
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

void
MilterReleaseQueue(
    MilterState *statePtr)	/* The interpreter's milter. */
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
    MilterState *statePtr)	/* The owner's milter state. */
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
    MilterReleaseQueue(statePtr);
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
    Tcl_Event *evPtr,		/* The DrainEvent. */
    int flags)			/* What Tcl_DoOneEvent services. */
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
 * DeleteDrainEvent --
 *
 *	Tcl_DeleteEvents predicate: our queued drain events.
 *
 * Results:
 *	1 for a drain event of the given milter state, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
DeleteDrainEvent(
    Tcl_Event *evPtr,		/* A queued event. */
    ClientData clientData)	/* The milter state being torn down. */
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
    MilterState *statePtr)	/* The owner's milter state. */
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
	MilterNotifyStopping(statePtr, server);
	Unregister(statePtr);

	/*
	 * Refuse new connections, give the commands already waiting in the
	 * ready queue the -defaultreply (no callback runs once shutDown is
	 * set), then close everything.
	 */

	MilterServerStop(server, MILTER_STOP_DRAIN);
	while ((conn = MilterQueuePop(statePtr->queue, &ev)) != NULL) {
	    MilterRunConn(statePtr, conn, ev);
	}
	MilterServerStop(server, MILTER_STOP_HARD);
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
	MilterReleaseQueue(statePtr);
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
	    /* [exit] in a callback. */
	    MilterAnswerPending(rPtr->statePtr);
	}
	MilterServerStop(rPtr->server, MILTER_STOP_HARD);
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
