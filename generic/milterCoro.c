/*
 * milterCoro.c --
 *
 *	Coroutine callbacks (milter configure -coroutines 1). Each callback
 *	runs in a coroutine of its own, so that it may yield (to wait for a
 *	socket, a timer or another process) while the milter serves other
 *	connections. Its connection stays busy until the coroutine returns;
 *	then the verdict goes to the MTA and the connection's next events
 *	are decided. A suspended callback is answered with -defaultreply,
 *	and its coroutine deleted, when a stop's -draintimeout has passed
 *	and at teardown.
 *
 *	Threads: owner thread only, except MilterCoroDeadline, the server
 *	hook, which runs on the network thread and only queues an event.
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
 * One callback run in a coroutine: a "call". Owner thread only. It lives
 * while anything below holds a reference (refs):
 *   - MilterCoroInvoke, until it returns;
 *   - the runner's NR callback (RunnerDone), until the callback returns
 *     or its coroutine is deleted;
 *   - the delete trace on the coroutine's command, set when the callback
 *     yields, until that command is deleted;
 *   - a pending DeferredEnd timer;
 *   - AnswerCall, while it works.
 * A suspended call is in MilterState.calls from the moment its callback
 * yields until its connection has the verdict.
 */

struct MilterCall {
    MilterState *statePtr;
    MilterConn *conn;		/* Waits for the verdict (the event's
				 * reference); NULL once given. */
    MilterCtx *ctxPtr;		/* Preserved while the call lives. */
    Tcl_Obj *cbObj;		/* Command prefix, for messages. */
    Tcl_Obj *nameObj;		/* The coroutine's command name. */
    Tcl_Command token;		/* That command; once the callback has
				 * yielded, NULL when it is deleted. */
    Tcl_TimerToken timer;	/* DeferredEnd, or NULL. */
    int type;			/* The event, a MILTER_EV_*. */
    int verdict;		/* Once the callback returned. */
    int flags;			/* CALL_* bits. */
    int refs;			/* See above. */
    MilterCall *prevPtr;	/* MilterState.calls links. */
    MilterCall *nextPtr;
    int objc;			/* The callback's words, referenced, for */
    Tcl_Obj *objv[1];		/* the runner (allocated to size). */
};

#define CALL_STARTED	0x01	/* The runner took the call. */
#define CALL_FINISHED	0x02	/* The callback returned or was wound
				 * down. */
#define CALL_SUSPENDED	0x04	/* It yielded: MilterCoroInvoke returned
				 * without a verdict. */
#define CALL_ANSWERED	0x08	/* Its connection got -defaultreply
				 * without it; whatever it returns is
				 * ignored. */
#define CALL_DELETED	0x10	/* Its coroutine's command was deleted
				 * before the callback returned. */
#define CALL_LINKED	0x20	/* In MilterState.calls. */
#define CALL_PRESERVED	0x40	/* Holds Tcl_Preserve(statePtr). */

/*
 * How AnswerCall answers a suspended call.
 */

typedef enum AnswerFlags {
    ANSWER_TEARDOWN = 0x01,	/* Every later command of the connection
				 * gets -defaultreply too. */
    ANSWER_DELETE_COROUTINE = 0x02
				/* Delete the call's coroutine first. */
} AnswerFlags;

/*
 * The event the deadline hook queues to the owner thread.
 */

typedef struct DeadlineEvent {
    Tcl_Event header;		/* Must be first. */
    MilterState *statePtr;
} DeadlineEvent;

/*
 * The runner command: the first command of every callback coroutine.
 */

#define RUNNER_NAME	"::milter::coro::callback"

static void		AnswerCall(MilterCall *callPtr, AnswerFlags flags);
static void		CallRelease(MilterCall *callPtr);
static void		Conclude(MilterCall *callPtr);
static void		CoroDeleted(ClientData clientData,
			    Tcl_Interp *interp, const char *oldName,
			    const char *newName, int flags);
static int		DeadlineEventProc(Tcl_Event *evPtr, int flags);
static void		DeferredEnd(ClientData clientData);
static void		DeleteCoroutine(MilterCall *callPtr);
static int		Outcome(MilterCall *callPtr, Tcl_Interp *interp,
			    int code);
static int		RunnerDone(ClientData data[], Tcl_Interp *interp,
			    int code);
static void		RunnerDeleted(ClientData clientData);
static int		RunnerNRCmd(ClientData clientData, Tcl_Interp *interp,
			    int objc, Tcl_Obj *const objv[]);
static int		RunnerObjCmd(ClientData clientData,
			    Tcl_Interp *interp, int objc,
			    Tcl_Obj *const objv[]);

/*
 *----------------------------------------------------------------------
 *
 * Link --
 *
 *	Adds a suspended call to MilterState.calls.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the list.
 *
 *----------------------------------------------------------------------
 */

static void
Link(
    MilterCall *callPtr)
{
    MILTER_LIST_PUSH(callPtr->statePtr->calls, callPtr);
    callPtr->flags |= CALL_LINKED;
}

/*
 *----------------------------------------------------------------------
 *
 * Unlink --
 *
 *	Takes a call out of MilterState.calls, if it is there.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the list.
 *
 *----------------------------------------------------------------------
 */

static void
Unlink(
    MilterCall *callPtr)
{
    if (callPtr->flags & CALL_LINKED) {
	MILTER_LIST_REMOVE(callPtr->statePtr->calls, callPtr);
	callPtr->flags &= ~CALL_LINKED;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CallRelease --
 *
 *	Drops one reference to a call; the last one frees it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free the call, release its context and the milter state.
 *
 *----------------------------------------------------------------------
 */

static void
CallRelease(
    MilterCall *callPtr)
{
    MilterState *statePtr = callPtr->statePtr;
    int i;

    if (--callPtr->refs > 0) {
	return;
    }
    Unlink(callPtr);
    for (i = 0; i < callPtr->objc; i++) {
	Tcl_DecrRefCount(callPtr->objv[i]);
    }
    Tcl_DecrRefCount(callPtr->cbObj);
    Tcl_DecrRefCount(callPtr->nameObj);
    MilterCtxRelease(callPtr->ctxPtr);
    if (callPtr->flags & CALL_PRESERVED) {
	Tcl_Release(statePtr);
    }
    ckfree(callPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * LogCall --
 *
 *	A notice (from -debuglevel 1) about a call answered without its
 *	callback.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May evaluate the -logcommand.
 *
 *----------------------------------------------------------------------
 */

static void
LogCall(
    MilterCall *callPtr,
    MilterConn *conn,
    const char *what)
{
    MilterState *statePtr = callPtr->statePtr;
    char msg[200];

    if (statePtr->debugLevel < 1 || statePtr->interp == NULL) {
	return;
    }
    snprintf(msg, sizeof(msg), "connection %lu: suspended \"%s\" callback "
	    "%s", MilterConnId(conn), milterEventNames[callPtr->type], what);
    MilterLog(statePtr, MILTER_LOG_NOTICE, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * EnsureRunner --
 *
 *	Creates the runner command and the words of the [coroutine] call
 *	that starts each callback, the first time a callback runs in a
 *	coroutine.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May create ::milter::coro::callback and two shared objects.
 *
 *----------------------------------------------------------------------
 */

static void
EnsureRunner(
    MilterState *statePtr)
{
    if (statePtr->runnerToken == NULL) {
	statePtr->runnerToken = Tcl_NRCreateCommand(statePtr->interp,
		RUNNER_NAME, RunnerObjCmd, RunnerNRCmd, statePtr,
		RunnerDeleted);
    }
    if (statePtr->coroutineCmdObj == NULL) {
	statePtr->coroutineCmdObj = Tcl_NewStringObj("::coroutine", -1);
	Tcl_IncrRefCount(statePtr->coroutineCmdObj);
	statePtr->runnerNameObj = Tcl_NewStringObj(RUNNER_NAME, -1);
	Tcl_IncrRefCount(statePtr->runnerNameObj);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * NewCall --
 *
 *	Makes the call record of one callback about to run in the new
 *	coroutine ::milter::coroN, holding its words; the caller fills in
 *	the rest.
 *
 * Results:
 *	The call, zeroed but for its state, words and name, holding one
 *	reference (the caller's).
 *
 * Side effects:
 *	Allocates memory; takes references on the words.
 *
 *----------------------------------------------------------------------
 */

static MilterCall *
NewCall(
    MilterState *statePtr,
    int objc,			/* The callback's words: prefix, context */
    Tcl_Obj *const objv[])	/* and arguments. */
{
    MilterCall *callPtr;
    int i;

    callPtr = (MilterCall *) ckalloc(sizeof(MilterCall)
	    + sizeof(Tcl_Obj *) * (objc > 0 ? objc - 1 : 0));
    memset(callPtr, 0, sizeof(MilterCall));
    callPtr->statePtr = statePtr;
    callPtr->refs = 1;			/* The caller's. */
    callPtr->objc = objc;
    for (i = 0; i < objc; i++) {
	callPtr->objv[i] = objv[i];
	Tcl_IncrRefCount(objv[i]);
    }
    callPtr->nameObj = Tcl_ObjPrintf("::milter::coro%lu",
	    ++statePtr->coroCounter);
    Tcl_IncrRefCount(callPtr->nameObj);
    return callPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * Suspend --
 *
 *	The callback of a call yielded: traces the deletion of its
 *	coroutine and lets the connection wait for the verdict, unless the
 *	connection is past a stop's deadline: then the coroutine is deleted
 *	at once and the connection gets -defaultreply.
 *
 * Results:
 *	MILTER_SUSPENDED, or the verdict past the deadline.
 *
 * Side effects:
 *	Preserves the state; may link the call, set a command trace, or
 *	delete the coroutine and discard an eom's modifications.
 *
 *----------------------------------------------------------------------
 */

static int
Suspend(
    MilterCall *callPtr,
    MilterConn *conn)
{
    MilterState *statePtr = callPtr->statePtr;
    Tcl_Interp *interp = statePtr->interp;
    int type = callPtr->type;

    callPtr->flags |= CALL_SUSPENDED | CALL_PRESERVED;
    Tcl_Preserve(statePtr);
    if (callPtr->token != NULL) {
	/*
	 * Under its current name: the callback may have renamed it.
	 */

	Tcl_Obj *nameObj = Tcl_NewObj();

	Tcl_IncrRefCount(nameObj);
	Tcl_GetCommandFullName(interp, callPtr->token, nameObj);
	if (Tcl_TraceCommand(interp, Tcl_GetString(nameObj),
		TCL_TRACE_DELETE, CoroDeleted, callPtr) == TCL_OK) {
	    callPtr->refs++;	/* The trace's. */
	} else {
	    callPtr->token = NULL;
	}
	Tcl_DecrRefCount(nameObj);
    }
    if (!MilterConnExpired(conn)) {
	Link(callPtr);
	return MILTER_SUSPENDED;
    }

    /*
     * Past the stop deadline nothing may wait: as in DeadlineEventProc,
     * but the caller resumes the connection.
     */

    callPtr->flags |= CALL_ANSWERED;
    callPtr->conn = NULL;
    LogCall(callPtr, conn, "deleted after the milter stop deadline");
    DeleteCoroutine(callPtr);
    if (type == MILTER_EV_EOM) {
	MilterSessionDiscardModifications(MilterConnLock(conn));
	MilterConnUnlock(conn, 0);
    }
    return type == MILTER_EV_NEGOTIATE ? MILTER_REJECT
	    : statePtr->defaultReply;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCoroInvoke --
 *
 *	Owner thread, from Invoke with -coroutines 1: runs a callback in a
 *	new coroutine, ::milter::coroN, whose first command is the runner
 *	::milter::coro::callback. If the callback returns without yielding, its
 *	verdict is used at once, as without coroutines. If it yields, the
 *	connection waits: RunnerDone gives the verdict when the coroutine
 *	ends. If the connection is past a stop's deadline, a callback that
 *	yields is deleted at once and answered with -defaultreply.
 *
 * Results:
 *	The verdict, or MILTER_SUSPENDED.
 *
 * Side effects:
 *	Runs the script; may create the runner command; faults become
 *	background errors.
 *
 *----------------------------------------------------------------------
 */

int
MilterCoroInvoke(
    MilterState *statePtr,
    MilterConn *conn,		/* Its event's reference is held. */
    MilterCtx *ctxPtr,
    Tcl_Obj *cbObj,		/* The command prefix. */
    int type,			/* MILTER_EV_* */
    int objc,			/* The callback's words: prefix, context */
    Tcl_Obj *const objv[])	/* and arguments. */
{
    Tcl_Interp *interp = statePtr->interp;
    MilterCall *callPtr;
    Tcl_Obj *cmdv[3];
    int code, verdict;

    EnsureRunner(statePtr);
    callPtr = NewCall(statePtr, objc, objv);
    callPtr->conn = conn;
    callPtr->ctxPtr = ctxPtr;
    MilterCtxPreserve(ctxPtr);
    callPtr->cbObj = cbObj;
    Tcl_IncrRefCount(cbObj);
    callPtr->type = type;
    cmdv[0] = statePtr->coroutineCmdObj;
    cmdv[1] = callPtr->nameObj;
    cmdv[2] = statePtr->runnerNameObj;
    ctxPtr->event = type;
    statePtr->startingCall = callPtr;
    code = Tcl_EvalObjv(interp, 3, cmdv, TCL_EVAL_GLOBAL);
    statePtr->startingCall = NULL;

    if (!(callPtr->flags & CALL_STARTED)) {
	/*
	 * No coroutine could be made (someone replaced [coroutine] or the
	 * runner): a fault of this callback.
	 */

	ctxPtr->event = -1;
	verdict = MilterCallbackVerdict(statePtr, interp, ctxPtr, cbObj,
		type, code == TCL_OK ? TCL_ERROR : code);
    } else if (callPtr->flags & CALL_FINISHED) {
	verdict = callPtr->verdict;	/* RunnerDone mapped it. */
	Tcl_ResetResult(interp);
    } else {
	Tcl_ResetResult(interp);
	verdict = Suspend(callPtr, conn);
    }
    CallRelease(callPtr);
    return verdict;
}

/*
 *----------------------------------------------------------------------
 *
 * RunnerObjCmd --
 *
 *	::milter::coro::callback, the command each callback coroutine starts
 *	with. It hands over to RunnerNRCmd through the non-recursive engine.
 *
 * Results:
 *	A standard Tcl result; an error (MILTER CALLBACK RUNNER) when a
 *	script calls the command itself.
 *
 * Side effects:
 *	Runs the callback.
 *
 *----------------------------------------------------------------------
 */

static int
RunnerObjCmd(
    ClientData clientData,
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    return Tcl_NRCallObjProc(interp, RunnerNRCmd, clientData, objc, objv);
}

/*
 *----------------------------------------------------------------------
 *
 * RunnerNRCmd --
 *
 *	The body of ::milter::coro::callback: takes the call
 *	MilterCoroInvoke is starting and evaluates the callback's words
 *	non-recursively, so that the callback may yield; RunnerDone sees
 *	how it ends.
 *
 * Results:
 *	A standard Tcl result; an error (MILTER CALLBACK RUNNER) when a
 *	script calls the command itself.
 *
 * Side effects:
 *	Runs the callback; takes a reference on the call for RunnerDone.
 *
 *----------------------------------------------------------------------
 */

static int
RunnerNRCmd(
    ClientData clientData,
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = clientData;
    MilterCall *callPtr = statePtr->startingCall;

    (void) objv;
    if (callPtr == NULL || objc != 1) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"::milter::coro::callback only starts the milter's "
		"coroutines", -1));
	Tcl_SetErrorCode(interp, "MILTER", "CALLBACK", "RUNNER", NULL);
	return TCL_ERROR;
    }
    statePtr->startingCall = NULL;
    callPtr->flags |= CALL_STARTED;
    callPtr->token = Tcl_FindCommand(interp, Tcl_GetString(callPtr->nameObj),
	    NULL, TCL_GLOBAL_ONLY);
    callPtr->refs++;			/* RunnerDone's. */
    Tcl_NRAddCallback(interp, RunnerDone, callPtr, NULL, NULL, NULL);
    return Tcl_NREvalObjv(interp, callPtr->objc, callPtr->objv,
	    TCL_EVAL_GLOBAL);
}

/*
 *----------------------------------------------------------------------
 *
 * RunnerDeleted --
 *
 *	The runner command is gone (the ::milter namespace or the
 *	interpreter is deleted); the next coroutine callback makes it anew.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Forgets the token.
 *
 *----------------------------------------------------------------------
 */

static void
RunnerDeleted(
    ClientData clientData)
{
    ((MilterState *) clientData)->runnerToken = NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * Outcome --
 *
 *	The verdict of a callback that ended with this completion code;
 *	one whose coroutine was deleted before it returned is a fault
 *	(MILTER CALLBACK DELETED).
 *
 * Results:
 *	The verdict.
 *
 * Side effects:
 *	See MilterCallbackVerdict.
 *
 *----------------------------------------------------------------------
 */

static int
Outcome(
    MilterCall *callPtr,
    Tcl_Interp *interp,
    int code)			/* The callback's completion code. */
{
    if ((callPtr->flags & CALL_DELETED) && code != TCL_OK) {
	/*
	 * Wound down by the deletion: the result is not the callback's.
	 */

	Tcl_ResetResult(interp);
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"milter \"%s\" callback \"%s\" was deleted before it "
		"returned: coroutine \"%s\"", milterEventNames[callPtr->type],
		Tcl_GetString(callPtr->cbObj),
		Tcl_GetString(callPtr->nameObj)));
	Tcl_SetErrorCode(interp, "MILTER", "CALLBACK", "DELETED",
		milterEventNames[callPtr->type], NULL);
	code = TCL_ERROR;
    }
    return MilterCallbackVerdict(callPtr->statePtr, interp, callPtr->ctxPtr,
	    callPtr->cbObj, callPtr->type, code);
}

/*
 *----------------------------------------------------------------------
 *
 * RunnerDone --
 *
 *	NR callback, inside the coroutine: the callback has returned, or
 *	its coroutine is being deleted. Before MilterCoroInvoke returned,
 *	the verdict is just noted. Later, it goes to the connection, whose
 *	next events are decided here (Conclude), except after a deletion,
 *	which winds the coroutine down: that is finished from a timer
 *	(DeferredEnd), once the deletion is over. At teardown the
 *	connection gets -defaultreply.
 *
 * Results:
 *	TCL_OK with an empty result: the coroutine's own result, which
 *	whoever resumed it gets.
 *
 * Side effects:
 *	Writes replies, runs callbacks, reports faults.
 *
 *----------------------------------------------------------------------
 */

static int
RunnerDone(
    ClientData data[],
    Tcl_Interp *interp,
    int code)			/* The callback's completion code. */
{
    MilterCall *callPtr = data[0];
    MilterState *statePtr = callPtr->statePtr;

    /*
     * The coroutine's command (kept until the coroutine is cleaned up,
     * after this) has no name any more when it was deleted while it ran,
     * as a callback that deletes its own coroutine before it yields.
     */

    if (callPtr->token != NULL && !(callPtr->flags & CALL_DELETED)
	    && *Tcl_GetCommandName(interp, callPtr->token) == '\0') {
	callPtr->flags |= CALL_DELETED;
    }
    callPtr->flags |= CALL_FINISHED;
    callPtr->ctxPtr->event = -1;
    if (callPtr->flags & CALL_ANSWERED) {
	/* Answered without it. */
    } else if (!(callPtr->flags & CALL_SUSPENDED)) {
	callPtr->verdict = Outcome(callPtr, interp, code);
    } else if (statePtr->shutDown || statePtr->interp == NULL
	    || Tcl_InterpDeleted(interp)) {
	AnswerCall(callPtr, ANSWER_TEARDOWN);
    } else {
	Tcl_Preserve(interp);
	callPtr->verdict = Outcome(callPtr, interp, code);
	if (callPtr->flags & CALL_DELETED) {
	    callPtr->refs++;		/* The timer's. */
	    callPtr->timer = Tcl_CreateTimerHandler(0, DeferredEnd, callPtr);
	} else {
	    Conclude(callPtr);
	}
	Tcl_Release(interp);
    }
    Tcl_ResetResult(interp);
    CallRelease(callPtr);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * Conclude --
 *
 *	A suspended callback has its verdict: give it to the connection and
 *	decide the connection's next events.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; runs callbacks.
 *
 *----------------------------------------------------------------------
 */

static void
Conclude(
    MilterCall *callPtr)
{
    MilterConn *conn = callPtr->conn;

    Unlink(callPtr);
    callPtr->conn = NULL;
    if (conn != NULL) {
	MilterCallbackFinished(callPtr->statePtr, conn, callPtr->ctxPtr,
		callPtr->type, callPtr->verdict);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DeferredEnd --
 *
 *	Timer handler: concludes a call whose coroutine was deleted,
 *	outside the deletion that caused it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; runs callbacks; drops the timer's reference.
 *
 *----------------------------------------------------------------------
 */

static void
DeferredEnd(
    ClientData clientData)
{
    MilterCall *callPtr = clientData;

    callPtr->timer = NULL;
    if (!(callPtr->flags & CALL_ANSWERED)) {
	Conclude(callPtr);
    }
    CallRelease(callPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * CoroDeleted --
 *
 *	Command trace: a suspended callback's coroutine command is deleted,
 *	either because the coroutine ended or because something deleted it
 *	(the milter, the interpreter's deletion, or a script).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Drops the trace's reference.
 *
 *----------------------------------------------------------------------
 */

static void
CoroDeleted(
    ClientData clientData,
    Tcl_Interp *interp,		/* Not used. */
    const char *oldName,	/* Not used. */
    const char *newName,	/* Not used. */
    int flags)			/* Not used. */
{
    MilterCall *callPtr = clientData;

    (void) interp;
    (void) oldName;
    (void) newName;
    (void) flags;
    callPtr->token = NULL;
    if (!(callPtr->flags & CALL_FINISHED)) {
	callPtr->flags |= CALL_DELETED;
    }
    CallRelease(callPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * DeleteCoroutine --
 *
 *	Deletes a suspended call's coroutine; Tcl winds it down at once
 *	(or, if it is running, when it next yields), and RunnerDone, seeing
 *	the call answered, does nothing more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Deletes a command.
 *
 *----------------------------------------------------------------------
 */

static void
DeleteCoroutine(
    MilterCall *callPtr)
{
    Tcl_Interp *interp = callPtr->statePtr->interp;
    Tcl_Command token = callPtr->token;

    if (token == NULL || interp == NULL || Tcl_InterpDeleted(interp)) {
	return;
    }
    callPtr->refs++;
    Tcl_DeleteCommandFromToken(interp, token);
    CallRelease(callPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * AnswerCall --
 *
 *	Gives a suspended call's connection -defaultreply (a refused
 *	negotiation for negotiate) without waiting for the callback, whose
 *	modifications are dropped and whose result will be ignored. With
 *	ANSWER_DELETE_COROUTINE, its coroutine is deleted first. With
 *	ANSWER_TEARDOWN every later command of the connection gets
 *	-defaultreply too; otherwise (the stop deadline) they are decided as
 *	usual.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; may run callbacks and delete the coroutine.
 *
 *----------------------------------------------------------------------
 */

static void
AnswerCall(
    MilterCall *callPtr,
    AnswerFlags flags)		/* ANSWER_* bits. */
{
    MilterState *statePtr = callPtr->statePtr;
    MilterConn *conn = callPtr->conn;
    MilterEvent *ev;
    int verdict;

    if ((callPtr->flags & CALL_ANSWERED) || conn == NULL) {
	Unlink(callPtr);
	return;
    }
    callPtr->flags |= CALL_ANSWERED;
    callPtr->conn = NULL;
    Unlink(callPtr);
    callPtr->refs++;
    if (callPtr->timer != NULL) {
	Tcl_DeleteTimerHandler(callPtr->timer);
	callPtr->timer = NULL;
	callPtr->refs--;		/* The timer's; ours remains. */
    }
    if (flags & ANSWER_DELETE_COROUTINE) {
	DeleteCoroutine(callPtr);
    }
    verdict = callPtr->type == MILTER_EV_NEGOTIATE ? MILTER_REJECT
	    : statePtr->defaultReply;
    if (callPtr->type == MILTER_EV_EOM) {
	MilterSessionDiscardModifications(MilterConnLock(conn));
	MilterConnUnlock(conn, 0);
    }
    if (flags & ANSWER_TEARDOWN) {
	ev = MilterConnResume(conn, verdict);
	while (ev != NULL) {
	    ev = MilterConnResume(conn, statePtr->defaultReply);
	}
    } else {
	MilterCallbackFinished(statePtr, conn, callPtr->ctxPtr,
		callPtr->type, verdict);
    }
    CallRelease(callPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * DeleteDeadlineEvent --
 *
 *	Tcl_DeleteEvents predicate: our queued deadline events.
 *
 * Results:
 *	1 for a deadline event of this milter, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
DeleteDeadlineEvent(
    Tcl_Event *evPtr,
    ClientData clientData)
{
    return evPtr->proc == DeadlineEventProc
	    && ((DeadlineEvent *) evPtr)->statePtr == clientData;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCoroAnswerAll --
 *
 *	Owner thread, at teardown (from MilterAnswerPending): every
 *	connection waiting for a suspended callback gets -defaultreply, as
 *	do its later commands. Once the milter is shut down (not on a mere
 *	exit, which ends everything anyway) the coroutines are deleted and
 *	no deadline event may come any more.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; deletes coroutines.
 *
 *----------------------------------------------------------------------
 */

void
MilterCoroAnswerAll(
    MilterState *statePtr)
{
    int shutDown = statePtr->shutDown;

    if (shutDown) {
	Tcl_MutexLock(&statePtr->lock);
	statePtr->coroClosed = 1;
	Tcl_MutexUnlock(&statePtr->lock);
	Tcl_DeleteEvents(DeleteDeadlineEvent, statePtr);
    }
    while (statePtr->calls != NULL) {
	AnswerCall(statePtr->calls, ANSWER_TEARDOWN
		| (shutDown ? ANSWER_DELETE_COROUTINE : 0));
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCoroDeadline --
 *
 *	Server hook "deadline", on the network thread: a stop's
 *	-draintimeout has passed. Queues DeadlineEventProc to the owner.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Queues an event and wakes the owner thread.
 *
 *----------------------------------------------------------------------
 */

void
MilterCoroDeadline(
    void *clientData)
{
    MilterState *statePtr = clientData;
    DeadlineEvent *evPtr;

    Tcl_MutexLock(&statePtr->lock);
    if (!statePtr->dead && !statePtr->coroClosed) {
	evPtr = (DeadlineEvent *) ckalloc(sizeof(DeadlineEvent));
	evPtr->header.proc = DeadlineEventProc;
	evPtr->statePtr = statePtr;
	Tcl_ThreadQueueEvent(statePtr->owner, (Tcl_Event *) evPtr,
		TCL_QUEUE_TAIL);
	Tcl_ThreadAlert(statePtr->owner);
    }
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * DeadlineEventProc --
 *
 *	Owner thread, serviced with file events: the stop deadline has
 *	passed. Every suspended callback is deleted and its connection
 *	answered with -defaultreply; the connections then end as usual
 *	(abort and close callbacks run), so that milter main can return.
 *
 * Results:
 *	1 when handled; 0 to stay queued when file events are not being
 *	serviced.
 *
 * Side effects:
 *	Deletes coroutines, writes replies, runs callbacks.
 *
 *----------------------------------------------------------------------
 */

static int
DeadlineEventProc(
    Tcl_Event *evPtr,
    int flags)
{
    MilterState *statePtr = ((DeadlineEvent *) evPtr)->statePtr;
    MilterCall *callPtr;

    if (!(flags & TCL_FILE_EVENTS)) {
	return 0;
    }
    if (statePtr->shutDown) {
	return 1;
    }
    Tcl_Preserve(statePtr);
    while ((callPtr = statePtr->calls) != NULL && !statePtr->shutDown) {
	if (callPtr->conn != NULL) {
	    LogCall(callPtr, callPtr->conn,
		    "deleted at the milter stop deadline");
	}
	AnswerCall(callPtr, ANSWER_DELETE_COROUTINE);
    }
    Tcl_Release(statePtr);
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCoroFree --
 *
 *	Frees what this file keeps in the milter state (FreeState).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Releases objects.
 *
 *----------------------------------------------------------------------
 */

void
MilterCoroFree(
    MilterState *statePtr)
{
    if (statePtr->coroutineCmdObj != NULL) {
	Tcl_DecrRefCount(statePtr->coroutineCmdObj);
	Tcl_DecrRefCount(statePtr->runnerNameObj);
	statePtr->coroutineCmdObj = statePtr->runnerNameObj = NULL;
    }
}
