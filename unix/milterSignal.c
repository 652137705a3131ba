/*
 * milterSignal.c --
 *
 *	Signals, as libmilter's smfi_main (and so TclMilter 1.0) handled
 *	them: while milter main runs, TERM, INT and HUP stop the milter as
 *	milter stop does, so that main returns once the messages in progress
 *	are done. -signals maps TERM, INT, HUP, USR1, USR2 and QUIT to
 *	"stop", "reload", "default" (the system's default action), "ignore",
 *	or a script.
 *
 *	The handler only writes the signal's number to a pipe (the
 *	self-pipe trick). The owner thread of the milter that handles
 *	signals reads the pipe through a Tcl file handler and carries out
 *	the action from its event loop, like any other event. No Tcl, lock
 *	or allocation ever runs in the handler, and the signal may arrive on
 *	any thread of the process: Tcl's notifier thread, the network
 *	thread, a worker, a thread of the script's own.
 *
 *	Signals are not blocked (the way of signalfd): a signal blocked in
 *	our threads but not in all others (Tcl's notifier thread, the
 *	script's threads) would still get its default action there, and a
 *	blocked mask is inherited by every program a callback starts with
 *	exec, which would then not stop on TERM.
 *
 *	Dispositions belong to the process, so one milter of the process
 *	handles signals at a time: the first that installs them. Another
 *	one logs a warning and runs without.
 *
 *	Threads: the registry below is guarded by sigLock; the rest runs on
 *	the owner thread of the milter that handles signals.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * The signals -signals may name, and their numbers.
 */

#define NUM_SIGNALS 6
#define SIG_PREFIX	"SIG"		/* May come before a name. */
#define SIG_PREFIX_LEN	(sizeof(SIG_PREFIX) - 1)

static const char *const signalNames[] = {
    "TERM", "INT", "HUP", "USR1", "USR2", "QUIT", NULL
};
static const int signalNumbers[NUM_SIGNALS] = {
    SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT
};

/*
 * What a signal does while a milter handles signals.
 */

typedef enum Action {
    ACTION_NONE,		/* Not ours: its disposition is left. */
    ACTION_STOP,		/* milter stop. */
    ACTION_RELOAD,		/* milter reload. */
    ACTION_DEFAULT,		/* SIG_DFL. */
    ACTION_IGNORE,		/* SIG_IGN. */
    ACTION_SCRIPT		/* A script, in the owner. */
} Action;

/*
 * The process-wide registry. The pipe is made once and stays open for
 * the life of the process, so that the handler never sees a closed or
 * reused descriptor. The saved dispositions are those found before this
 * file changed them.
 */

typedef struct Disposition {
    int changed;		/* We changed it: 'saved' is valid. */
    struct sigaction saved;	/* What it was before. */
} Disposition;

TCL_DECLARE_MUTEX(sigLock)
static int readFd = -1;			/* sigLock (made once). */
static int writeFd = -1;		/* Set before any handler. */
static const MilterSignalActions *actions = NULL;
					/* sigLock: stop and reload, given
					 * by milterRun.c (signals come below
					 * the commands that run a milter). */
static MilterState *handlerState = NULL;	/* sigLock */
static Disposition dispositions[NUM_SIGNALS];	/* handlerState's owner */

static void		SignalReadable(ClientData clientData, int mask);

/*
 *----------------------------------------------------------------------
 *
 * SignalHandler --
 *
 *	The signal handler: writes the signal number to the pipe. Only
 *	async-signal-safe calls; a full pipe loses the signal (65536 of
 *	them are already waiting).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes one byte.
 *
 *----------------------------------------------------------------------
 */

static void
SignalHandler(
    int signo)
{
    int saved = errno;
    unsigned char byte = (unsigned char) signo;
    ssize_t n = write(writeFd, &byte, 1);

    (void) n;
    errno = saved;
}

/*
 *----------------------------------------------------------------------
 *
 * SignalIndex --
 *
 *	The index of a signal name (TERM or SIGTERM, ...) in signalNames.
 *
 * Results:
 *	The index, or -1.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
SignalIndex(
    const char *name)
{
    int i;

    if (strncmp(name, SIG_PREFIX, SIG_PREFIX_LEN) == 0) {
	name += SIG_PREFIX_LEN;
    }
    for (i = 0; i < NUM_SIGNALS; i++) {
	if (strcmp(name, signalNames[i]) == 0) {
	    return i;
	}
    }
    return -1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalCheck --
 *
 *	Validates a -signals value: a dictionary from signal names (TERM,
 *	INT, HUP, USR1, USR2, QUIT, with or without "SIG") to actions (any
 *	string: stop, reload, default, ignore, or a script).
 *
 * Results:
 *	TCL_OK with, in *dictPtr, the dictionary with the names in their
 *	short form (a new object with a zero reference count), or NULL when
 *	it is empty; or TCL_ERROR with errorCode MILTER CONFIG VALUE
 *	-signals.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSignalCheck(
    Tcl_Interp *interp,
    Tcl_Obj *valueObj,
    Tcl_Obj **dictPtr)
{
    Tcl_Obj **elems, *dictObj;
    Tcl_Size n, i;

    *dictPtr = NULL;
    if (Tcl_ListObjGetElements(NULL, valueObj, &n, &elems) != TCL_OK
	    || n % 2 != 0) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"bad value \"%s\" for -signals: must be a dictionary of "
		"signal names and actions", Tcl_GetString(valueObj)));
	Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE", "-signals",
		NULL);
	return TCL_ERROR;
    }
    if (n == 0) {
	return TCL_OK;
    }
    dictObj = Tcl_NewDictObj();
    for (i = 0; i < n; i += 2) {
	int index = SignalIndex(Tcl_GetString(elems[i]));

	if (index < 0) {
	    Tcl_DecrRefCount(dictObj);
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad signal \"%s\" in -signals: must be TERM, INT, HUP, "
		    "USR1, USR2 or QUIT", Tcl_GetString(elems[i])));
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE", "-signals",
		    NULL);
	    return TCL_ERROR;
	}
	Tcl_DictObjPut(NULL, dictObj,
		Tcl_NewStringObj(signalNames[index], -1), elems[i + 1]);
    }
    *dictPtr = dictObj;
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * ActionOf --
 *
 *	What a signal does for a milter: its entry in -signals, else "stop"
 *	for TERM, INT and HUP, else nothing.
 *
 * Results:
 *	The action; for ACTION_SCRIPT the script in *scriptPtr (owned by
 *	the -signals value).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Action
ActionOf(
    MilterState *statePtr,
    int index,
    Tcl_Obj **scriptPtr)
{
    static const char *const words[] = {
	"stop", "reload", "default", "ignore", NULL
    };
    static const Action actions[] = {
	ACTION_STOP, ACTION_RELOAD, ACTION_DEFAULT, ACTION_IGNORE
    };
    Tcl_Obj *keyObj, *valueObj = NULL;
    int i;

    *scriptPtr = NULL;
    if (statePtr->signalsObj != NULL) {
	keyObj = Tcl_NewStringObj(signalNames[index], -1);
	Tcl_IncrRefCount(keyObj);
	Tcl_DictObjGet(NULL, statePtr->signalsObj, keyObj, &valueObj);
	Tcl_DecrRefCount(keyObj);
    }
    if (valueObj == NULL) {
	return signalNumbers[index] == SIGTERM
		|| signalNumbers[index] == SIGINT
		|| signalNumbers[index] == SIGHUP ? ACTION_STOP : ACTION_NONE;
    }
    for (i = 0; words[i] != NULL; i++) {
	if (strcmp(Tcl_GetString(valueObj), words[i]) == 0) {
	    return actions[i];
	}
    }
    *scriptPtr = valueObj;
    return ACTION_SCRIPT;
}

/*
 *----------------------------------------------------------------------
 *
 * Apply --
 *
 *	Owner thread of the milter that handles signals: gives every
 *	signal the disposition its action needs, saving the one found the
 *	first time it is changed, and puts back the saved one of a signal
 *	that has no action any more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	sigaction().
 *
 *----------------------------------------------------------------------
 */

static void
Apply(
    MilterState *statePtr)
{
    struct sigaction sa;
    Tcl_Obj *scriptObj;
    int i;

    for (i = 0; i < NUM_SIGNALS; i++) {
	Disposition *dPtr = &dispositions[i];

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	switch (ActionOf(statePtr, i, &scriptObj)) {
	case ACTION_NONE:
	    if (dPtr->changed) {
		sigaction(signalNumbers[i], &dPtr->saved, NULL);
		dPtr->changed = 0;
	    }
	    continue;
	case ACTION_DEFAULT:
	    sa.sa_handler = SIG_DFL;
	    break;
	case ACTION_IGNORE:
	    sa.sa_handler = SIG_IGN;
	    break;
	default:
	    sa.sa_handler = SignalHandler;
	    sa.sa_flags = SA_RESTART;
	    break;
	}
	if (dPtr->changed) {
	    sigaction(signalNumbers[i], &sa, NULL);
	} else if (sigaction(signalNumbers[i], &sa, &dPtr->saved) == 0) {
	    dPtr->changed = 1;
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalSetActions --
 *
 *	Tells the signal handling how to stop and reload a milter (the
 *	actions stop and reload of -signals). milterRun.c gives them at
 *	package initialisation, before any milter can install the handlers.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets the actions for the process.
 *
 *----------------------------------------------------------------------
 */

void
MilterSignalSetActions(
    const MilterSignalActions *actionsPtr)	/* Static. */
{
    Tcl_MutexLock(&sigLock);
    actions = actionsPtr;
    Tcl_MutexUnlock(&sigLock);
}

/*
 *----------------------------------------------------------------------
 *
 * CurrentActions --
 *
 *	The actions given by MilterSignalSetActions.
 *
 * Results:
 *	The actions (a milter that handles signals was started, so they
 *	were given).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static const MilterSignalActions *
CurrentActions(void)
{
    const MilterSignalActions *actionsPtr;

    Tcl_MutexLock(&sigLock);
    actionsPtr = actions;
    Tcl_MutexUnlock(&sigLock);
    return actionsPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalInstall --
 *
 *	Owner thread: this milter starts handling signals (milter main, or
 *	milter start with -signals set), unless it does already or another
 *	milter of the process does (then a warning is logged).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Makes the pipe on first use; creates the file handler; changes
 *	dispositions.
 *
 *----------------------------------------------------------------------
 */

void
MilterSignalInstall(
    MilterState *statePtr,
    MilterSignalsBy by)		/* Who installs them. */
{
    int fds[2], busy = 0, failed = 0;

    if (statePtr->signalsInstalled || statePtr->workerPtr != NULL) {
	return;				/* Workers cannot run a milter. */
    }
    Tcl_MutexLock(&sigLock);
    if (handlerState != NULL) {
	busy = 1;
    } else if (readFd < 0) {
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
	    failed = errno;
	} else {
	    readFd = fds[0];
	    writeFd = fds[1];
	}
    }
    if (!busy && !failed) {
	handlerState = statePtr;
    }
    Tcl_MutexUnlock(&sigLock);
    if (busy) {
	MilterLog(statePtr, MILTER_LOG_WARNING, "signals are handled by "
		"another milter of this process, not by this one");
	return;
    }
    if (failed) {
	char msg[200];

	snprintf(msg, sizeof(msg), "cannot handle signals: pipe: %s",
		strerror(failed));
	MilterLog(statePtr, MILTER_LOG_ERROR, msg);
	return;
    }
    statePtr->signalsInstalled = 1;
    statePtr->signalsByMain = (by == MILTER_SIGNALS_BY_MAIN);
    Tcl_CreateFileHandler(readFd, TCL_READABLE, SignalReadable, statePtr);
    Apply(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalUpdate --
 *
 *	Owner thread: -signals changed. Applies the new actions if this
 *	milter handles signals; handling starts when the milter was
 *	started without main and -signals is set now, and ends when it is
 *	cleared.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May change dispositions.
 *
 *----------------------------------------------------------------------
 */

void
MilterSignalUpdate(
    MilterState *statePtr)
{
    if (!statePtr->signalsInstalled) {
	if (statePtr->status != MILTER_IDLE && statePtr->signalsObj != NULL
		&& statePtr->workerPtr == NULL) {
	    MilterSignalInstall(statePtr, MILTER_SIGNALS_BY_START);
	}
	return;
    }
    if (!statePtr->signalsByMain && statePtr->signalsObj == NULL) {
	MilterSignalRestore(statePtr);
	return;
    }
    Apply(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalRestore --
 *
 *	Owner thread: this milter stops handling signals (main returned,
 *	the milter is idle again, or it is torn down). Every disposition
 *	gets back what it was; signals that arrived and were not yet
 *	handled are dropped.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	sigaction(); deletes the file handler.
 *
 *----------------------------------------------------------------------
 */

void
MilterSignalRestore(
    MilterState *statePtr)
{
    unsigned char buf[64];
    int i;

    if (!statePtr->signalsInstalled) {
	return;
    }
    for (i = 0; i < NUM_SIGNALS; i++) {
	if (dispositions[i].changed) {
	    sigaction(signalNumbers[i], &dispositions[i].saved, NULL);
	    dispositions[i].changed = 0;
	}
    }
    Tcl_DeleteFileHandler(readFd);
    while (read(readFd, buf, sizeof(buf)) > 0) {
	/* Drop them. */
    }
    statePtr->signalsInstalled = 0;
    statePtr->signalsByMain = 0;
    Tcl_MutexLock(&sigLock);
    handlerState = NULL;
    Tcl_MutexUnlock(&sigLock);
}

/*
 *----------------------------------------------------------------------
 *
 * RunScript --
 *
 *	Owner thread: evaluates a signal's script at global level; an error
 *	is a background error.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Whatever the script does.
 *
 *----------------------------------------------------------------------
 */

static void
RunScript(
    MilterState *statePtr,
    int index,
    Tcl_Obj *scriptObj)
{
    Tcl_Interp *interp = statePtr->interp;
    Tcl_InterpState saved;
    char info[80];
    int code;

    Tcl_Preserve(interp);
    Tcl_IncrRefCount(scriptObj);	/* The script may change -signals. */
    saved = Tcl_SaveInterpState(interp, TCL_OK);
    code = Tcl_EvalObjEx(interp, scriptObj, TCL_EVAL_GLOBAL);
    if (code == TCL_ERROR) {
	snprintf(info, sizeof(info), "\n    (milter signal \"%s\" script)",
		signalNames[index]);
	Tcl_AddErrorInfo(interp, info);
	Tcl_BackgroundException(interp, code);
    }
    Tcl_RestoreInterpState(interp, saved);
    Tcl_DecrRefCount(scriptObj);
    Tcl_Release(interp);
}

/*
 *----------------------------------------------------------------------
 *
 * Reload --
 *
 *	Owner thread: a signal asks for milter reload. Without -workers
 *	there is nothing to reload, which is logged as a warning; a reload
 *	that fails is logged as an error (the workers serving go on); one
 *	that succeeds as a notice when -debuglevel is 1 or more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See MilterReload.
 *
 *----------------------------------------------------------------------
 */

static void
Reload(
    MilterState *statePtr,
    int index)
{
    Tcl_Interp *interp = statePtr->interp;
    Tcl_InterpState saved;
    char msg[600];

    if (statePtr->pool == NULL || statePtr->status != MILTER_RUNNING) {
	snprintf(msg, sizeof(msg), "signal %s: %s", signalNames[index],
		statePtr->status != MILTER_RUNNING
		? "the milter is stopping: not reloaded"
		: "nothing to reload: the milter runs without -workers");
	MilterLog(statePtr, MILTER_LOG_WARNING, msg);
	return;
    }
    Tcl_Preserve(interp);
    saved = Tcl_SaveInterpState(interp, TCL_OK);
    if (CurrentActions()->reload(interp, statePtr) != TCL_OK) {
	snprintf(msg, sizeof(msg), "signal %s: reload failed: %s",
		signalNames[index], Tcl_GetString(Tcl_GetObjResult(interp)));
	MilterLog(statePtr, MILTER_LOG_ERROR, msg);
    } else if (statePtr->debugLevel > 0) {
	snprintf(msg, sizeof(msg), "signal %s: workers reloaded",
		signalNames[index]);
	MilterLog(statePtr, MILTER_LOG_NOTICE, msg);
    }
    Tcl_RestoreInterpState(interp, saved);
    Tcl_Release(interp);
}

/*
 *----------------------------------------------------------------------
 *
 * SignalReadable --
 *
 *	Owner thread, file handler of the pipe: carries out the action of
 *	every signal that arrived, in order, as long as this milter still
 *	handles signals.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Stops or reloads the milter, or evaluates scripts.
 *
 *----------------------------------------------------------------------
 */

static void
SignalReadable(
    ClientData clientData,
    int mask)			/* Not used. */
{
    MilterState *statePtr = clientData;
    unsigned char buf[64];
    ssize_t n, i;
    char msg[80];

    (void) mask;
    Tcl_Preserve(statePtr);
    while (statePtr->signalsInstalled
	    && (n = read(readFd, buf, sizeof(buf))) > 0) {
	for (i = 0; i < n && statePtr->signalsInstalled
		&& statePtr->interp != NULL && !statePtr->shutDown; i++) {
	    Tcl_Obj *scriptObj;
	    int index;

	    for (index = 0; index < NUM_SIGNALS; index++) {
		if (signalNumbers[index] == buf[i]) {
		    break;
		}
	    }
	    if (index == NUM_SIGNALS) {
		continue;
	    }
	    switch (ActionOf(statePtr, index, &scriptObj)) {
	    case ACTION_STOP:
		if (statePtr->debugLevel > 0) {
		    snprintf(msg, sizeof(msg), "signal %s: stopping",
			    signalNames[index]);
		    MilterLog(statePtr, MILTER_LOG_NOTICE, msg);
		}
		CurrentActions()->stop(statePtr);
		break;
	    case ACTION_RELOAD:
		Reload(statePtr, index);
		break;
	    case ACTION_SCRIPT:
		RunScript(statePtr, index, scriptObj);
		break;
	    default:
		/* -signals changed since the signal arrived. */
		break;
	    }
	}
    }
    Tcl_Release(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSignalFinalize --
 *
 *	The library leaves the process (unload, no milter running, so no
 *	handler of ours is installed): closes the pipe and forgets the
 *	mutex, which Tcl would otherwise finalize through a pointer into
 *	the unmapped library.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes the pipe.
 *
 *----------------------------------------------------------------------
 */

void
MilterSignalFinalize(void)
{
    Tcl_MutexLock(&sigLock);
    if (handlerState == NULL && readFd >= 0) {
	close(readFd);
	close(writeFd);
	readFd = writeFd = -1;
    }
    Tcl_MutexUnlock(&sigLock);
    Tcl_MutexFinalize(&sigLock);
}
