/*
 * milterWorker.c --
 *
 *	Worker interpreters (-workers N -workerinit script), in the manner
 *	of NaviServer's connection threads and the Thread package's tpool:
 *	N threads, each with its own interpreter that has TclMilter loaded
 *	and has evaluated -workerinit, each draining its own ready queue.
 *	A connection is pinned to one worker for its session (the least
 *	loaded of the current generation, MilterPoolAssign), so its context
 *	command and private data are ordinary objects of one interpreter.
 *	Blocking in a callback holds up only the connections of that worker.
 *
 *	The owner keeps the configuration; what the workers need of it (the
 *	callbacks, by name, and the dynamic options) is copied into the pool
 *	as C strings and picked up by each worker before it runs its next
 *	callbacks: no Tcl_Obj ever crosses a thread.
 *
 *	A worker whose interpreter dies (deleted, or [exit], which in a
 *	worker ends only that worker, as thread::exit does) answers what it
 *	holds with -defaultreply and starts its replacement. [milter reload]
 *	starts a new generation from the current -workerinit; new
 *	connections go to it, and each old worker ends once its last
 *	connection is gone.
 *
 *	Locking: the pool's mutex guards the worker list, the generations
 *	and the shared configuration; it is taken before a queue's mutex
 *	(MilterPoolAssign pins under it) and never held while a script runs
 *	or a thread is joined.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"
#include "milterList.h"

#include <stdio.h>
#include <string.h>

/*
 * The size of the pool's copy of the -encoding name; the size of the log
 * line of a failed replacement, and how much of its error that quotes.
 */

#define ENCODING_NAME_SIZE	64
#define REPLACEMENT_LOG_SIZE	600
#define LOGGED_ERROR_LENGTH	500

/*
 * Life of a worker (MilterWorker.phase).
 */

typedef enum WorkerPhase {
    WORKER_STARTING,		/* Evaluating -workerinit. */
    WORKER_READY,		/* Serving. */
    WORKER_FAILED,		/* -workerinit failed; the thread ends. */
    WORKER_EXITED		/* The thread has ended its work. */
} WorkerPhase;

/*
 * One worker thread. Fields below 'phase' are guarded by the pool's
 * mutex; 'interp' and 'statePtr' belong to the worker thread; 'drainer'
 * is guarded by 'hookLock', which is taken with the queue's lock held
 * (from the queue's ready hook) and before the drainer's own lock.
 */

typedef struct MilterWorker {
    struct MilterPool *poolPtr;	/* Its pool. */
    Tcl_ThreadId thread;	/* Its thread, joined by JoinEnded. */
    int generation;		/* Which [milter reload] made it. */
    char *script;		/* Its generation's -workerinit, which a
				 * replacement evaluates too (ckalloc'ed;
				 * read-only while the thread runs). */
    Tcl_Interp *interp;		/* Worker thread only. */
    MilterState *statePtr;	/* Its milter state (worker thread). */
    int looping;		/* In its event loop (worker thread). */
    int detached;		/* Its milter state has shut down, so its
				 * interpreter is or will soon be freed
				 * (worker thread). */
    Tcl_Mutex hookLock;		/* Guards 'drainer'. */
    MilterState *drainer;	/* Whom the queue's hook wakes: the state,
				 * once -workerinit has succeeded. */

    WorkerPhase phase;		/* Where it is in its life. */
    MilterQueue *queue;		/* Its ready queue, from its start until
				 * its interpreter goes; connections may be
				 * pinned to it while it is STARTING. */
    int quit;			/* End now (stop). */
    int retire;			/* End once no connection is pinned. */
    int joined;			/* The thread was joined. */
    int replacement;		/* Started for one that died. */
    char *error;		/* -workerinit's error ... */
    char *errorInfo;		/* ... and its errorInfo (ckalloc'ed). */
    struct MilterWorker *prevPtr;	/* The pool's list of workers. */
    struct MilterWorker *nextPtr;
				/* The next worker of the pool. */
} MilterWorker;

/*
 * The pool of an owner whose milter runs with -workers.
 */

struct MilterPool {
    MilterState *ownerPtr;	/* Owner thread's state. */
    Tcl_Mutex lock;		/* Guards the pool and its workers' fields
				 * from 'phase' on. */
    Tcl_Condition changed;	/* A worker changed phase. */
    MilterWorker *workers;	/* Every worker not yet joined. */
    int size;			/* -workers. */
    int generation;		/* The current generation. */
    int stopping;		/* No replacements any more. */
    int started;		/* Workers started so far: the number of the
				 * latest (milter sessions shows it). */

    /* The owner's configuration, as the workers need it. */
    unsigned epoch;		/* Bumped on every change. */
    char *callbacks[MILTER_EV_COUNT];
				/* The callbacks as strings (ckalloc'ed), or
				 * NULL. */
    int defaultReply;		/* -defaultreply, as a verdict. */
    int coroutines;		/* -coroutines. */
    char encoding[ENCODING_NAME_SIZE];
				/* The name of -encoding. */
};

/*
 * How a worker leaves (WorkerLeaves).
 */

typedef enum WorkerLeaving {
    WORKER_INTERP_GOES,		/* Its interpreter is deleted; the thread
				 * goes on to its end. */
    WORKER_THREAD_ENDS		/* The thread ends from inside its loop. */
} WorkerLeaving;

/*
 * Which workers JoinEnded joins.
 */

typedef enum JoinWhich {
    JOIN_ENDED,			/* Those whose threads have ended. */
    JOIN_ALL			/* All of them (told to end before). */
} JoinWhich;

/*
 * A no-op event that wakes a worker's Tcl_DoOneEvent so that it looks at
 * its quit and retire flags.
 */

typedef struct WakeEvent {
    Tcl_Event header;		/* Must be first. */
} WakeEvent;

static void		ReplaceWorker(MilterWorker *wPtr);
static void		WorkerLeaves(MilterWorker *wPtr, WorkerLeaving how);
static void		WorkerReadyHook(void *clientData);
static Tcl_ThreadCreateType WorkerThread(ClientData clientData);

/*
 *----------------------------------------------------------------------
 *
 * CopyString --
 *
 *	A ckalloc'ed copy of a string, or NULL for NULL.
 *
 * Results:
 *	The copy.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

static char *
CopyString(
    const char *s)		/* A string, or NULL. */
{
    char *copy;

    if (s == NULL) {
	return NULL;
    }
    copy = ckalloc(strlen(s) + 1);
    strcpy(copy, s);
    return copy;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolSync --
 *
 *	Owner thread: copies what the workers need of the configuration
 *	(callbacks by name, -defaultreply, -coroutines, -encoding) into the
 *	pool; each worker takes it over before its next callbacks
 *	(SyncWorker).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Bumps the pool's epoch.
 *
 *----------------------------------------------------------------------
 */

void
MilterPoolSync(
    MilterState *statePtr)	/* The owner's milter state. */
{
    MilterPool *poolPtr = statePtr->pool;
    int i;

    if (poolPtr == NULL) {
	return;
    }
    Tcl_MutexLock(&poolPtr->lock);
    for (i = 0; i < MILTER_EV_COUNT; i++) {
	if (poolPtr->callbacks[i] != NULL) {
	    ckfree(poolPtr->callbacks[i]);
	}
	poolPtr->callbacks[i] = statePtr->callbacks[i] == NULL ? NULL
		: CopyString(Tcl_GetString(statePtr->callbacks[i]));
    }
    poolPtr->defaultReply = statePtr->defaultReply;
    poolPtr->coroutines = statePtr->coroutines;
    snprintf(poolPtr->encoding, sizeof(poolPtr->encoding), "%s",
	    Tcl_GetEncodingName(statePtr->encoding));
    poolPtr->epoch++;
    Tcl_MutexUnlock(&poolPtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * SyncWorker --
 *
 *	Worker thread: takes over the owner's configuration if it changed
 *	since last time, building this interpreter's own objects from the
 *	pool's strings.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Replaces the worker state's callbacks and options.
 *
 *----------------------------------------------------------------------
 */

static void
SyncWorker(
    MilterState *statePtr)	/* A worker's milter state. */
{
    MilterPool *poolPtr = statePtr->workerPtr->poolPtr;
    int i;

    Tcl_MutexLock(&poolPtr->lock);
    if (statePtr->configEpoch != poolPtr->epoch) {
	statePtr->configEpoch = poolPtr->epoch;
	for (i = 0; i < MILTER_EV_COUNT; i++) {
	    if (statePtr->callbacks[i] != NULL) {
		Tcl_DecrRefCount(statePtr->callbacks[i]);
		statePtr->callbacks[i] = NULL;
	    }
	    if (poolPtr->callbacks[i] != NULL) {
		statePtr->callbacks[i] =
			Tcl_NewStringObj(poolPtr->callbacks[i], -1);
		Tcl_IncrRefCount(statePtr->callbacks[i]);
	    }
	}
	statePtr->defaultReply = poolPtr->defaultReply;
	statePtr->coroutines = poolPtr->coroutines;
	if (strcmp(poolPtr->encoding,
		Tcl_GetEncodingName(statePtr->encoding)) != 0) {
	    Tcl_Encoding encoding = Tcl_GetEncoding(NULL, poolPtr->encoding);

	    if (encoding != NULL) {
		MilterUseEncoding(statePtr, encoding);
	    }
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWorkerBeforeDrain --
 *
 *	Worker thread, before it drains its queue: the configuration is
 *	brought up to date.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See SyncWorker.
 *
 *----------------------------------------------------------------------
 */

void
MilterWorkerBeforeDrain(
    MilterState *statePtr)	/* The milter state that drains. */
{
    if (statePtr->workerPtr != NULL) {
	SyncWorker(statePtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerLeaves --
 *
 *	Worker thread, as its interpreter or its thread goes: no new
 *	connection is assigned to its queue from now on. If it was
 *	serving (it dies in a callback: [exit], thread::exit, or its
 *	interpreter deleted otherwise), its replacement is started in the
 *	same step, before the MTA hears of the death, so that a connection
 *	accepted after that finds a worker. With WORKER_THREAD_ENDS (the
 *	thread ends from inside its loop, and WorkerThread never gets back
 *	to the end of it), the worker is also marked as ended.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Clears the worker's queue in the pool; may start a worker.
 *
 *----------------------------------------------------------------------
 */

static void
WorkerLeaves(
    MilterWorker *wPtr,		/* The worker. */
    WorkerLeaving how)		/* WORKER_THREAD_ENDS, or WORKER_INTERP_GOES
				 * when only the interpreter goes. */
{
    MilterPool *poolPtr = wPtr->poolPtr;

    Tcl_MutexLock(&poolPtr->lock);
    wPtr->queue = NULL;
    if (wPtr->looping) {
	wPtr->looping = 0;
	ReplaceWorker(wPtr);
	if (how == WORKER_THREAD_ENDS) {
	    wPtr->phase = WORKER_EXITED;
	    Tcl_ConditionNotify(&poolPtr->changed);
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerThreadExit --
 *
 *	Thread exit handler of a worker, registered after its milter
 *	state's own, so that it runs first: when the thread ends inside a
 *	callback (thread::exit), the replacement starts before the state's
 *	shutdown answers the MTA.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See WorkerLeaves.
 *
 *----------------------------------------------------------------------
 */

static void
WorkerThreadExit(
    ClientData clientData)	/* The worker. */
{
    WorkerLeaves(clientData, WORKER_THREAD_ENDS);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWorkerDetach --
 *
 *	Worker thread, as its milter state shuts down (its interpreter is
 *	deleted, or its thread ends): see WorkerLeaves. From now on the
 *	interpreter is not looked at, since it may be freed.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See WorkerLeaves.
 *
 *----------------------------------------------------------------------
 */

void
MilterWorkerDetach(
    MilterState *statePtr)	/* The milter state that shuts down. */
{
    MilterWorker *wPtr = statePtr->workerPtr;

    if (wPtr == NULL) {
	return;
    }
    WorkerLeaves(wPtr, Tcl_InterpDeleted(wPtr->interp)
	    ? WORKER_INTERP_GOES : WORKER_THREAD_ENDS);
    wPtr->detached = 1;
}

/*
 *----------------------------------------------------------------------
 *
 * WakeEventProc --
 *
 *	Worker thread: the event WakeWorker queues. It does nothing: being
 *	serviced ends the worker's Tcl_DoOneEvent.
 *
 * Results:
 *	1 (handled).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
WakeEventProc(
    Tcl_Event *evPtr,		/* Not used. */
    int flags)			/* Not used. */
{
    (void) evPtr;
    (void) flags;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * WakeWorker --
 *
 *	Any thread: wakes a worker's event loop so that it looks at its
 *	flags. A bare Tcl_ThreadAlert does not end Tcl_DoOneEvent; a queued
 *	event does.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues an event to the worker's thread.
 *
 *----------------------------------------------------------------------
 */

static void
WakeWorker(
    MilterWorker *wPtr)		/* The worker to wake. */
{
    WakeEvent *evPtr = (WakeEvent *) ckalloc(sizeof(WakeEvent));

    evPtr->header.proc = WakeEventProc;
    Tcl_ThreadQueueEvent(wPtr->thread, (Tcl_Event *) evPtr, TCL_QUEUE_TAIL);
    Tcl_ThreadAlert(wPtr->thread);
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerExitObjCmd --
 *
 *	[exit] in a worker interpreter ends that worker only (the pool
 *	starts a replacement); [milter stop] in the owner ends the milter.
 *
 * Results:
 *	TCL_OK; the interpreter is deleted, so nothing more runs in it.
 *
 * Side effects:
 *	Starts the replacement (WorkerLeaves); deletes the interpreter.
 *
 *----------------------------------------------------------------------
 */

static int
WorkerExitObjCmd(
    ClientData clientData,	/* The worker. */
    Tcl_Interp *interp,		/* The worker's interpreter. */
    int objc,			/* Not used: any status is accepted. */
    Tcl_Obj *const objv[])	/* Not used. */
{
    (void) objc;
    (void) objv;
    WorkerLeaves(clientData, WORKER_INTERP_GOES);
    Tcl_DeleteInterp(interp);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * StartWorker --
 *
 *	Starts a worker thread of the given generation, which evaluates
 *	'script' as its -workerinit, with its ready queue (whose reference
 *	the worker's interpreter takes over). Called with the pool's mutex
 *	held.
 *
 * Results:
 *	The worker (phase STARTING), or NULL if no thread could be made.
 *
 * Side effects:
 *	Creates a thread and links the worker into the pool.
 *
 *----------------------------------------------------------------------
 */

static MilterWorker *
StartWorker(
    MilterPool *poolPtr,	/* The pool, locked. */
    int generation,		/* The worker's generation. */
    const char *script)		/* Its -workerinit. */
{
    MilterWorker *wPtr = (MilterWorker *) ckalloc(sizeof(MilterWorker));

    memset(wPtr, 0, sizeof(MilterWorker));
    wPtr->poolPtr = poolPtr;
    wPtr->generation = generation;
    wPtr->script = CopyString(script);
    wPtr->phase = WORKER_STARTING;
    wPtr->queue = MilterQueueNew(WorkerReadyHook, wPtr);
    MilterQueueSetLabel(wPtr->queue, ++poolPtr->started);
    if (Tcl_CreateThread(&wPtr->thread, WorkerThread, wPtr,
	    TCL_THREAD_STACK_DEFAULT, TCL_THREAD_JOINABLE) != TCL_OK) {
	MilterQueueRelease(wPtr->queue);
	ckfree(wPtr->script);
	ckfree(wPtr);
	return NULL;
    }
    MILTER_LIST_PUSH(poolPtr->workers, wPtr);
    return wPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerReadyHook --
 *
 *	The hook of a worker's ready queue (any thread, queue lock held):
 *	wakes the worker's interpreter once it serves; until then events
 *	wait on the queue.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May queue a drain event to the worker's thread.
 *
 *----------------------------------------------------------------------
 */

static void
WorkerReadyHook(
    void *clientData)		/* The worker. */
{
    MilterWorker *wPtr = clientData;

    Tcl_MutexLock(&wPtr->hookLock);
    if (wPtr->drainer != NULL) {
	MilterReadyHook(wPtr->drainer);
    }
    Tcl_MutexUnlock(&wPtr->hookLock);
}

/*
 *----------------------------------------------------------------------
 *
 * SetDrainer --
 *
 *	Worker thread, no lock of ours held, once -workerinit succeeded:
 *	makes the interpreter the one its queue's hook wakes, and wakes it
 *	at once if events came in while -workerinit ran.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May queue a drain event to the worker's thread.
 *
 *----------------------------------------------------------------------
 */

static void
SetDrainer(
    MilterWorker *wPtr)		/* The worker, which serves now. */
{
    MilterState *statePtr = wPtr->statePtr;

    Tcl_MutexLock(&wPtr->hookLock);
    wPtr->drainer = statePtr;
    Tcl_MutexUnlock(&wPtr->hookLock);
    if (MilterQueueLength(statePtr->queue) > 0) {
	MilterReadyHook(statePtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * InitWorker --
 *
 *	Worker thread: makes the interpreter, loads TclMilter into it,
 *	hands it the worker's ready queue and evaluates -workerinit.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with the error in the interpreter. The
 *	interpreter is returned preserved (Tcl_Preserve), so that it is
 *	still there to be asked even if -workerinit deleted it ([exit]).
 *
 * Side effects:
 *	Sets wPtr->interp and wPtr->statePtr.
 *
 *----------------------------------------------------------------------
 */

static int
InitWorker(
    MilterWorker *wPtr,		/* The worker being set up. */
    const char *script)		/* Its -workerinit. */
{
    Tcl_Interp *interp = Tcl_CreateInterp();
    MilterState *statePtr;

    wPtr->interp = interp;
    Tcl_Preserve(interp);
    /*
     * The library is loaded already: [load {} prefix] runs its init
     * procedure in this interpreter, as in any other.
     */

    if (Tcl_Init(interp) != TCL_OK || Tcl_EvalEx(interp,
	    "load {} " MILTER_INIT_PREFIX, -1, TCL_EVAL_GLOBAL) != TCL_OK) {
	return TCL_ERROR;
    }
    statePtr = MilterGetState(interp);
    statePtr->workerPtr = wPtr;
    statePtr->stats = wPtr->poolPtr->ownerPtr->stats;	/* Stats: count
							 * as the owner. */
    statePtr->queue = wPtr->queue;
    wPtr->statePtr = statePtr;
    SyncWorker(statePtr);
    Tcl_CreateThreadExitHandler(WorkerThreadExit, wPtr);
    Tcl_CreateObjCommand(interp, "::exit", WorkerExitObjCmd, wPtr, NULL);
    return Tcl_EvalEx(interp, script, -1, TCL_EVAL_GLOBAL);
}

/*
 *----------------------------------------------------------------------
 *
 * InterpGone --
 *
 *	Worker thread: whether the worker's interpreter was deleted. Once
 *	its milter state has shut down (MilterWorkerDetach) the
 *	interpreter may already be freed, so it is not looked at then.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
InterpGone(
    MilterWorker *wPtr)		/* The worker. */
{
    return wPtr->detached || Tcl_InterpDeleted(wPtr->interp);
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerShouldEnd --
 *
 *	Worker thread: whether to leave the event loop.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
WorkerShouldEnd(
    MilterWorker *wPtr)		/* The worker. */
{
    MilterPool *poolPtr = wPtr->poolPtr;
    int end;

    if (InterpGone(wPtr)) {
	return 1;
    }
    Tcl_MutexLock(&poolPtr->lock);
    end = wPtr->quit || (wPtr->retire && wPtr->queue != NULL
	    && MilterQueueConnections(wPtr->queue) == 0);
    Tcl_MutexUnlock(&poolPtr->lock);
    return end;
}

/*
 *----------------------------------------------------------------------
 *
 * ReplaceWorker --
 *
 *	A worker died while the pool goes on (its interpreter was deleted,
 *	or its thread ended): a new worker of the same generation, from
 *	the same -workerinit, takes its place, and retires as it would
 *	have. Called with the pool's mutex held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May start a thread.
 *
 *----------------------------------------------------------------------
 */

static void
ReplaceWorker(
    MilterWorker *wPtr)		/* The worker that died. */
{
    MilterPool *poolPtr = wPtr->poolPtr;
    MilterWorker *newPtr;

    if (wPtr->quit || poolPtr->stopping) {
	return;
    }
    newPtr = StartWorker(poolPtr, wPtr->generation, wPtr->script);
    if (newPtr != NULL) {
	newPtr->replacement = 1;
	newPtr->retire = wPtr->retire;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerStarted --
 *
 *	Worker thread, once -workerinit has run: tells whoever waits
 *	whether the worker serves or failed (and why). A failed replacement
 *	is logged, since nobody waits for it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets the worker's phase and takes over 'error' and 'errorInfo'.
 *
 *----------------------------------------------------------------------
 */

static void
WorkerStarted(
    MilterWorker *wPtr,		/* The worker that started. */
    int code,			/* How -workerinit went. */
    char *error,		/* With TCL_ERROR, the message and ... */
    char *errorInfo)		/* ... the errorInfo (ckalloc'ed). */
{
    MilterPool *poolPtr = wPtr->poolPtr;

    Tcl_MutexLock(&poolPtr->lock);
    if (code != TCL_OK) {
	wPtr->error = error;
	wPtr->errorInfo = errorInfo;
	wPtr->phase = WORKER_FAILED;
	if (wPtr->replacement) {
	    /*
	     * Nobody waits for a replacement: say why the pool is one
	     * worker short.
	     */

	    char msg[REPLACEMENT_LOG_SIZE];

	    snprintf(msg, sizeof(msg), "a worker replacing one that died "
		    "failed in -workerinit: %.*s", LOGGED_ERROR_LENGTH, error);
	    MilterLogFromAnyThread(poolPtr->ownerPtr, MILTER_LOG_ERROR, msg);
	}
    } else {
	wPtr->phase = WORKER_READY;
    }
    Tcl_ConditionNotify(&poolPtr->changed);
    Tcl_MutexUnlock(&poolPtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * SetUpWorker --
 *
 *	Worker thread: makes the worker's interpreter and evaluates
 *	-workerinit (InitWorker), then reports how that went.
 *
 * Results:
 *	TCL_OK when the worker serves; TCL_ERROR when -workerinit failed or
 *	deleted the interpreter.
 *
 * Side effects:
 *	See InitWorker and WorkerStarted.
 *
 *----------------------------------------------------------------------
 */

static int
SetUpWorker(
    MilterWorker *wPtr)		/* The worker to set up. */
{
    char *error = NULL, *errorInfo = NULL;
    int code;

    code = InitWorker(wPtr, wPtr->script);
    if (Tcl_InterpDeleted(wPtr->interp)) {
	error = CopyString(
		"the worker interpreter was deleted by -workerinit");
	errorInfo = CopyString(error);
	code = TCL_ERROR;
    } else if (code != TCL_OK) {
	Tcl_Obj *infoObj = Tcl_GetVar2Ex(wPtr->interp, "errorInfo", NULL,
		TCL_GLOBAL_ONLY);

	error = CopyString(Tcl_GetStringResult(wPtr->interp));
	errorInfo = CopyString(infoObj ? Tcl_GetString(infoObj) : error);
    }

    /*
     * An interpreter that -workerinit deleted goes now, its milter
     * state with it (which closes the queue).
     */

    Tcl_Release(wPtr->interp);
    WorkerStarted(wPtr, code, error, errorInfo);
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * TearDownWorker --
 *
 *	Worker thread, after its event loop: deleting the interpreter
 *	answers what this worker holds (its callbacks on the stack, its
 *	queue) with -defaultreply, and closes its queue so that its
 *	connections' later events get the same. An interpreter that died
 *	in the loop has done so, and its replacement is on its way
 *	(MilterWorkerDetach).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Deletes the interpreter; marks the worker ended for JoinEnded.
 *
 *----------------------------------------------------------------------
 */

static void
TearDownWorker(
    MilterWorker *wPtr,		/* The worker whose loop ended. */
    int code)			/* SetUpWorker's result. */
{
    MilterPool *poolPtr = wPtr->poolPtr;
    MilterQueue *queue;
    int verdict;

    if (!InterpGone(wPtr)) {
	Tcl_DeleteInterp(wPtr->interp);
    }
    if (wPtr->statePtr == NULL) {
	/*
	 * No milter state took the queue over (Tcl_Init or loading the
	 * package failed): what a replacement was given is answered here.
	 */

	Tcl_MutexLock(&poolPtr->lock);
	queue = wPtr->queue;
	wPtr->queue = NULL;
	verdict = poolPtr->defaultReply;
	Tcl_MutexUnlock(&poolPtr->lock);
	MilterConnCloseQueue(queue, verdict);
	MilterQueueRelease(queue);
    }
    Tcl_MutexLock(&poolPtr->lock);
    wPtr->phase = code == TCL_OK ? WORKER_EXITED : WORKER_FAILED;
    wPtr->queue = NULL;
    Tcl_ConditionNotify(&poolPtr->changed);
    Tcl_MutexUnlock(&poolPtr->lock);
    Tcl_DeleteThreadExitHandler(WorkerThreadExit, wPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * WorkerThread --
 *
 *	A worker's life: set up (reporting success or the error of
 *	-workerinit to whoever waits), run the event loop until told to
 *	end or until its interpreter dies (MilterWorkerDetach then starts
 *	its replacement), and answer what it still holds with
 *	-defaultreply.
 *
 * Results:
 *	None (the thread ends).
 *
 * Side effects:
 *	Runs scripts.
 *
 *----------------------------------------------------------------------
 */

static Tcl_ThreadCreateType
WorkerThread(
    ClientData clientData)	/* The worker. */
{
    MilterWorker *wPtr = clientData;
    int code;

    code = SetUpWorker(wPtr);
    if (code == TCL_OK) {
	SetDrainer(wPtr);
    }
    wPtr->looping = 1;
    while (code == TCL_OK && !WorkerShouldEnd(wPtr)) {
	Tcl_DoOneEvent(TCL_ALL_EVENTS);
    }
    wPtr->looping = 0;
    TearDownWorker(wPtr, code);

    /*
     * Return rather than Tcl_ExitThread: pthread_exit() unwinds the
     * stack by force, which AddressSanitizer mistakes for an overflow
     * when it then tears the thread down.
     */

    Tcl_FinalizeThread();
    TCL_THREAD_CREATE_RETURN;
}

/*
 *----------------------------------------------------------------------
 *
 * StartGeneration --
 *
 *	Owner thread: starts poolPtr->size workers of a new generation
 *	from 'script' and waits until each is serving or has failed. On a
 *	failure, the new workers are told to end.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with the first failure's message and
 *	errorInfo in the interpreter (errorCode MILTER WORKERINIT).
 *
 * Side effects:
 *	Creates threads; on success the new generation becomes current.
 *
 *----------------------------------------------------------------------
 */

static int
StartGeneration(
    Tcl_Interp *interp,		/* The owner's interpreter, for errors. */
    MilterPool *poolPtr,	/* The pool. */
    const char *script)		/* The generation's -workerinit. */
{
    MilterWorker *wPtr, *failed = NULL;
    int generation, i, started = 0, waiting;

    Tcl_MutexLock(&poolPtr->lock);
    generation = poolPtr->generation + 1;
    for (i = 0; i < poolPtr->size; i++) {
	if (StartWorker(poolPtr, generation, script) != NULL) {
	    started++;
	}
    }
    do {
	waiting = 0;
	for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	    if (wPtr->generation != generation) {
		continue;
	    }
	    if (wPtr->phase == WORKER_STARTING) {
		waiting = 1;
	    } else if (wPtr->phase == WORKER_FAILED && failed == NULL) {
		failed = wPtr;
	    }
	}
	if (waiting) {
	    Tcl_ConditionWait(&poolPtr->changed, &poolPtr->lock, NULL);
	}
    } while (waiting);

    if (failed == NULL && started == poolPtr->size) {
	for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	    if (wPtr->generation < generation) {
		wPtr->retire = 1;
		WakeWorker(wPtr);
	    }
	}
	poolPtr->generation = generation;
	Tcl_MutexUnlock(&poolPtr->lock);
	return TCL_OK;
    }

    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	if (wPtr->generation == generation && wPtr->phase == WORKER_READY) {
	    wPtr->quit = 1;
	    WakeWorker(wPtr);
	}
    }
    if (failed != NULL) {
	const char *info = failed->errorInfo;
	size_t length = strlen(failed->error);

	/*
	 * Tcl_AddErrorInfo starts an empty errorInfo with the message: what
	 * the worker's errorInfo has after its own copy of the message is
	 * what follows it here.
	 */

	Tcl_SetObjResult(interp, Tcl_NewStringObj(failed->error, -1));
	if (strncmp(info, failed->error, length) == 0) {
	    info += length;
	} else {
	    Tcl_AddErrorInfo(interp, "\n");
	}
	Tcl_AddErrorInfo(interp, info);
	Tcl_AddErrorInfo(interp, "\n    (milter -workerinit)");
    } else {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"cannot start a worker thread", -1));
    }
    Tcl_SetErrorCode(interp, "MILTER", "WORKERINIT", NULL);
    Tcl_MutexUnlock(&poolPtr->lock);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * JoinEnded --
 *
 *	Owner thread: joins and frees the workers whose threads have ended
 *	(all of them with JOIN_ALL, after telling them to end).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Joins threads; frees workers.
 *
 *----------------------------------------------------------------------
 */

static void
JoinEnded(
    MilterPool *poolPtr,	/* The pool. */
    JoinWhich which)		/* JOIN_ALL, or JOIN_ENDED for those that
				 * ended. */
{
    for (;;) {
	MilterWorker *wPtr;
	int result;

	Tcl_MutexLock(&poolPtr->lock);
	for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	    if (which == JOIN_ALL || wPtr->phase == WORKER_EXITED
		    || wPtr->phase == WORKER_FAILED) {
		MILTER_LIST_REMOVE(poolPtr->workers, wPtr);
		break;
	    }
	}
	Tcl_MutexUnlock(&poolPtr->lock);
	if (wPtr == NULL) {
	    return;
	}
	Tcl_JoinThread(wPtr->thread, &result);
	if (wPtr->error != NULL) {
	    ckfree(wPtr->error);
	    ckfree(wPtr->errorInfo);
	}
	Tcl_MutexFinalize(&wPtr->hookLock);
	ckfree(wPtr->script);
	ckfree(wPtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolStart --
 *
 *	Owner thread, at milter start with -workers > 0: the pool and its
 *	first generation.
 *
 * Results:
 *	A standard Tcl result; on failure nothing is left running.
 *
 * Side effects:
 *	Sets statePtr->pool.
 *
 *----------------------------------------------------------------------
 */

int
MilterPoolStart(
    Tcl_Interp *interp,		/* The owner's interpreter, for errors. */
    MilterState *statePtr)	/* The owner's milter state. */
{
    MilterPool *poolPtr = (MilterPool *) ckalloc(sizeof(MilterPool));

    memset(poolPtr, 0, sizeof(MilterPool));
    poolPtr->ownerPtr = statePtr;
    poolPtr->size = statePtr->workers;
    statePtr->pool = poolPtr;
    MilterPoolSync(statePtr);
    if (StartGeneration(interp, poolPtr, statePtr->workerInitObj
	    ? Tcl_GetString(statePtr->workerInitObj) : "") != TCL_OK) {
	MilterPoolStop(statePtr);
	return TCL_ERROR;
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolReload --
 *
 *	Owner thread: [milter reload]. A new generation from the current
 *	-workerinit; the old one keeps its connections and ends with the
 *	last of them. If the new generation fails to start, the old one
 *	goes on serving.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Starts and retires threads.
 *
 *----------------------------------------------------------------------
 */

int
MilterPoolReload(
    Tcl_Interp *interp,		/* The owner's interpreter, for errors. */
    MilterState *statePtr)	/* The owner's milter state. */
{
    int code;

    JoinEnded(statePtr->pool, JOIN_ENDED);
    MilterPoolSync(statePtr);
    code = StartGeneration(interp, statePtr->pool, statePtr->workerInitObj
	    ? Tcl_GetString(statePtr->workerInitObj) : "");
    JoinEnded(statePtr->pool, JOIN_ENDED);
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolAssign --
 *
 *	Network thread, for a new connection: the ready queue of the
 *	current generation's worker with the fewest connections, pinned.
 *	Only when none of them serves (each died and its replacement is
 *	still evaluating -workerinit) does a starting one get it: its
 *	events wait until the replacement serves.
 *
 * Results:
 *	The queue, or NULL when no worker serves or starts (the pool is
 *	stopping, or replacements could not start).
 *
 * Side effects:
 *	Pins the queue.
 *
 *----------------------------------------------------------------------
 */

MilterQueue *
MilterPoolAssign(
    MilterPool *poolPtr)	/* The pool. */
{
    MilterWorker *wPtr;
    MilterQueue *best = NULL;
    int bestCount = 0, bestReady = 0;

    Tcl_MutexLock(&poolPtr->lock);
    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	int count, ready = wPtr->phase == WORKER_READY;

	if (wPtr->generation != poolPtr->generation
		|| (!ready && wPtr->phase != WORKER_STARTING)
		|| wPtr->quit || wPtr->queue == NULL) {
	    continue;
	}
	count = MilterQueueConnections(wPtr->queue);
	if (best == NULL || ready > bestReady
		|| (ready == bestReady && count < bestCount)) {
	    best = wPtr->queue;
	    bestCount = count;
	    bestReady = ready;
	}
    }
    if (best != NULL) {
	MilterQueuePin(best);
    }
    Tcl_MutexUnlock(&poolPtr->lock);
    return best;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolStop --
 *
 *	Owner thread: ends every worker (each finishes the callback it is
 *	running) and frees the pool. Called once no connection is left, or
 *	at teardown after the network thread was joined.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Joins threads; clears statePtr->pool.
 *
 *----------------------------------------------------------------------
 */

void
MilterPoolStop(
    MilterState *statePtr)	/* The owner's milter state. */
{
    MilterPool *poolPtr = statePtr->pool;
    MilterWorker *wPtr;
    int i;

    if (poolPtr == NULL) {
	return;
    }
    Tcl_MutexLock(&poolPtr->lock);
    poolPtr->stopping = 1;
    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	wPtr->quit = 1;
	if (wPtr->phase == WORKER_READY) {
	    WakeWorker(wPtr);
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
    JoinEnded(poolPtr, JOIN_ALL);
    statePtr->pool = NULL;
    for (i = 0; i < MILTER_EV_COUNT; i++) {
	if (poolPtr->callbacks[i] != NULL) {
	    ckfree(poolPtr->callbacks[i]);
	}
    }
    Tcl_ConditionFinalize(&poolPtr->changed);
    Tcl_MutexFinalize(&poolPtr->lock);
    ckfree(poolPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolDeadline --
 *
 *	Network thread: a stop's -draintimeout has passed; every serving
 *	worker is told, as the owner is, so that it answers the callbacks it
 *	holds suspended (see MilterCoroDeadline).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues events to the worker threads.
 *
 *----------------------------------------------------------------------
 */

void
MilterPoolDeadline(
    MilterPool *poolPtr)	/* The pool. */
{
    MilterWorker *wPtr;

    Tcl_MutexLock(&poolPtr->lock);
    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	if (wPtr->phase == WORKER_READY && wPtr->queue != NULL) {
	    MilterCoroDeadline(wPtr->statePtr);
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolWorkers --
 *
 *	How many workers serve, and how many connections they hold.
 *
 * Results:
 *	The number of serving workers; *connsPtr gets their connections.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterPoolWorkers(
    MilterPool *poolPtr,	/* The pool. */
    int *connsPtr)		/* Gets the number of connections. */
{
    MilterWorker *wPtr;
    int n = 0, conns = 0;

    Tcl_MutexLock(&poolPtr->lock);
    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	if (wPtr->phase == WORKER_READY && wPtr->queue != NULL) {
	    n++;
	    conns += MilterQueueConnections(wPtr->queue);
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
    *connsPtr = conns;
    return n;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPoolQueued --
 *
 *	Statistics: the events waiting in the workers' ready queues.
 *
 * Results:
 *	Their number.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

long
MilterPoolQueued(
    MilterPool *poolPtr)	/* The pool. */
{
    MilterWorker *wPtr;
    long n = 0;

    Tcl_MutexLock(&poolPtr->lock);
    for (wPtr = poolPtr->workers; wPtr != NULL; wPtr = wPtr->nextPtr) {
	if (wPtr->queue != NULL) {
	    n += MilterQueueLength(wPtr->queue);
	}
    }
    Tcl_MutexUnlock(&poolPtr->lock);
    return n;
}
