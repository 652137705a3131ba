/*
 * milterState.c --
 *
 *	The milter state of an interpreter (MilterState): created with the
 *	default configuration on first use, stopped and freed when the
 *	interpreter is deleted or its thread exits; the error for what a
 *	worker's interpreter may not do (it is not the owner).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <string.h>

/*
 * Defaults of the options that are not zero: -timeout (seconds, as in
 * libmilter), -draintimeout (milliseconds), -socketmode, -capturesize and
 * -capturebody (bytes).
 */

#define DEFAULT_TIMEOUT		7210
#define DEFAULT_DRAIN_TIMEOUT	5000
#define DEFAULT_SOCKET_MODE	0660
#define DEFAULT_CAPTURE_SIZE	(1024 * 1024)
#define DEFAULT_CAPTURE_BODY	(64 * 1024)

static void		DeleteState(ClientData clientData, Tcl_Interp *interp);
static void		ThreadExit(ClientData clientData);
static void		FreeState(char *blockPtr);

/*
 *----------------------------------------------------------------------
 *
 * MilterGetState --
 *
 *	The milter state of an interpreter, created on first use.
 *
 * Results:
 *	The state.
 *
 * Side effects:
 *	May create the state with the default configuration.
 *
 *----------------------------------------------------------------------
 */

MilterState *
MilterGetState(
    Tcl_Interp *interp)		/* The interpreter. */
{
    MilterState *statePtr = Tcl_GetAssocData(interp, "milter", NULL);

    if (statePtr != NULL) {
	return statePtr;
    }
    statePtr = (MilterState *) ckalloc(sizeof(MilterState));
    memset(statePtr, 0, sizeof(MilterState));
    statePtr->interp = interp;
    statePtr->owner = Tcl_GetCurrentThread();
    statePtr->nameObj = Tcl_NewStringObj("TclMilter", -1);
    strcpy(statePtr->logName, "TclMilter");
    statePtr->connectionObj =
	    Tcl_NewStringObj("unix:/var/run/tclmilter.sock", -1);
    Tcl_IncrRefCount(statePtr->nameObj);
    Tcl_IncrRefCount(statePtr->connectionObj);
    statePtr->timeout = DEFAULT_TIMEOUT;
    statePtr->encoding = Tcl_GetEncoding(NULL, "utf-8");
    statePtr->asciiCompatible = 1;
    statePtr->defaultReply = MILTER_TEMPFAIL;
    statePtr->drainTimeout = DEFAULT_DRAIN_TIMEOUT;
    statePtr->socketMode = DEFAULT_SOCKET_MODE;
    statePtr->maxDataSize = MILTER_CHUNK_SIZE;
    statePtr->socketUid = statePtr->socketGid = -1;
    statePtr->logTail = &statePtr->logHead;
    statePtr->syslogFd = -1;
    while (strcmp(milterFacilityNames[statePtr->syslogFacility], "mail")) {
	statePtr->syslogFacility++;
    }
    statePtr->captureSize = DEFAULT_CAPTURE_SIZE;
    statePtr->captureBody = DEFAULT_CAPTURE_BODY;
    statePtr->captureAll = 1;
    statePtr->ownStats = MilterStatsNew();
    statePtr->stats = statePtr->ownStats;
    Tcl_SetAssocData(interp, "milter", DeleteState, statePtr);
    Tcl_CreateThreadExitHandler(ThreadExit, statePtr);
    return statePtr;
}

/*
 *----------------------------------------------------------------------
 *
 * DeleteState --
 *
 *	AssocData delete proc: the interpreter is deleted. Stops the milter
 *	hard (no more callbacks) and frees the state once nothing on the
 *	stack uses it any more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes every MTA connection of this milter.
 *
 *----------------------------------------------------------------------
 */

static void
DeleteState(
    ClientData clientData,	/* The milter state. */
    Tcl_Interp *interp)		/* Not used. */
{
    MilterState *statePtr = clientData;

    (void) interp;
    Tcl_DeleteThreadExitHandler(ThreadExit, statePtr);
    MilterShutdown(statePtr);
    statePtr->interp = NULL;
    Tcl_EventuallyFree(statePtr, FreeState);
}

/*
 *----------------------------------------------------------------------
 *
 * ThreadExit --
 *
 *	Thread exit handler: the interpreter's thread exits without deleting
 *	it. Stops the milter hard (no more callbacks); the state goes with
 *	the interpreter.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes every MTA connection of this milter.
 *
 *----------------------------------------------------------------------
 */

static void
ThreadExit(
    ClientData clientData)	/* The milter state. */
{
    MilterShutdown(clientData);
}

/*
 *----------------------------------------------------------------------
 *
 * FreeState --
 *
 *	Tcl_EventuallyFree proc of the state: nothing uses it any more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Releases the configuration's objects, the encoding, the statistics
 *	and the mutex; frees the state.
 *
 *----------------------------------------------------------------------
 */

static void
FreeState(
    char *blockPtr)		/* The milter state. */
{
    MilterState *statePtr = (MilterState *) blockPtr;
    int i;

    for (i = 0; i < MILTER_EV_COUNT; i++) {
	if (statePtr->callbacks[i] != NULL) {
	    Tcl_DecrRefCount(statePtr->callbacks[i]);
	}
    }
    Tcl_DecrRefCount(statePtr->nameObj);
    Tcl_DecrRefCount(statePtr->connectionObj);
    if (statePtr->workerInitObj != NULL) {
	Tcl_DecrRefCount(statePtr->workerInitObj);
    }
    if (statePtr->logCommandObj != NULL) {
	Tcl_DecrRefCount(statePtr->logCommandObj);
    }
    if (statePtr->signalsObj != NULL) {
	Tcl_DecrRefCount(statePtr->signalsObj);
    }
    if (statePtr->socketGroupObj != NULL) {
	Tcl_DecrRefCount(statePtr->socketGroupObj);
    }
    if (statePtr->socketOwnerObj != NULL) {
	Tcl_DecrRefCount(statePtr->socketOwnerObj);
    }
    if (statePtr->syslogIdentObj != NULL) {
	Tcl_DecrRefCount(statePtr->syslogIdentObj);
    }
    if (statePtr->metricsObj != NULL) {
	Tcl_DecrRefCount(statePtr->metricsObj);
    }
    if (statePtr->captureObj != NULL) {
	Tcl_DecrRefCount(statePtr->captureObj);
    }
    Tcl_FreeEncoding(statePtr->encoding);
    MilterCoroFree(statePtr);
    MilterStatsFree(statePtr->ownStats);
    Tcl_MutexFinalize(&statePtr->lock);
    ckfree(blockPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterRefuseInWorker --
 *
 *	The error for what only the owner may do: in a worker interpreter
 *	the configuration and the callbacks are the owner's, copied in
 *	(see milterWorker.c), and a change there would be overwritten.
 *
 * Results:
 *	TCL_ERROR, with errorCode MILTER STATE WORKER.
 *
 * Side effects:
 *	Sets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

int
MilterRefuseInWorker(
    Tcl_Interp *interp,		/* The worker's interpreter. */
    const char *what)		/* What it may not do: "register callbacks". */
{
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "a worker interpreter cannot %s: the owner does", what));
    Tcl_SetErrorCode(interp, "MILTER", "STATE", "WORKER", NULL);
    return TCL_ERROR;
}
