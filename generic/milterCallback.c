/*
 * milterCallback.c --
 *
 *	Runs script callbacks for the events of a connection, on the owner
 *	thread: builds the arguments from the event's bytes, evaluates the
 *	registered command, maps its result to a verdict, and resumes the
 *	connection with it. Script faults become background errors and the
 *	-defaultreply verdict.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <arpa/inet.h>
#include <string.h>

/*
 * Callback names, in MilterEventType order.
 */

const char *const milterEventNames[] = {
    "negotiate", "connect", "helo", "envfrom", "envrcpt", "data", "header",
    "eoh", "body", "eom", "abort", "close", "unknown", NULL
};

/*
 * Return codes a callback may give, and their verdicts.
 */

const char *const milterCodeNames[] = {
    MILTER_CODES(MILTER_CODE_NAME) NULL		/* From milterSession.h. */
};
const int milterCodeValues[] = {
    MILTER_CODES(MILTER_CODE_VALUE)
};

/*
 * Names of the action and protocol bits for the negotiate callback,
 * expanded from the lists in milterWire.h.
 */

typedef struct FlagName {
    uint32_t bit;
    const char *name;
} FlagName;

#define FLAG_NAME(name, bit)	{(bit), #name},

static const FlagName actionBits[] = {
    MILTER_ACTION_BITS(FLAG_NAME) {0, NULL}
};
static const FlagName protocolBits[] = {
    MILTER_PROTOCOL_BITS(FLAG_NAME) {0, NULL}
};

/*
 * The most arguments a callback gets after its command prefix: the context
 * plus the envelope strings (64 at most, see milterSession.c).
 */

#define MAX_EVENT_ARGS	66

/*
 * Command prefixes of up to this many words are called with an array on
 * the stack.
 */

#define STACK_PREFIX_WORDS	8

/*
 *----------------------------------------------------------------------
 *
 * FlagList --
 *
 *	The names of the bits set in 'value'.
 *
 * Results:
 *	A new list object of the names, from 'names' (actionBits or
 *	protocolBits).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
FlagList(
    uint32_t value,		/* SMFIF_* or SMFIP_* bits. */
    const FlagName *names)	/* Ends with a NULL name. */
{
    Tcl_Obj *listObj = Tcl_NewObj();
    int i;

    for (i = 0; names[i].name != NULL; i++) {
	if (value & names[i].bit) {
	    Tcl_ListObjAppendElement(NULL, listObj,
		    Tcl_NewStringObj(names[i].name, -1));
	}
    }
    return listObj;
}

/*
 *----------------------------------------------------------------------
 *
 * AddressInfo --
 *
 *	The connect callback's addrInfo dictionary: family (inet, inet6,
 *	unix or unknown), address and port.
 *
 * Results:
 *	A new dictionary object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
AddressInfo(
    MilterState *statePtr,
    const MilterEvent *ev)
{
    Tcl_Obj *objv[6];
    int objc = 2;

    objv[0] = Tcl_NewStringObj("family", 6);
    switch (ev->family) {
    case '4':	objv[1] = Tcl_NewStringObj("inet", 4);		break;
    case '6':	objv[1] = Tcl_NewStringObj("inet6", 5);		break;
    case 'L':	objv[1] = Tcl_NewStringObj("unix", 4);		break;
    default:	objv[1] = Tcl_NewStringObj("unknown", 7);	break;
    }
    if (ev->family != 'U') {
	struct in6_addr in6;
	char text[INET6_ADDRSTRLEN];

	objv[2] = Tcl_NewStringObj("address", 7);
	if (ev->family == '6'
		&& inet_pton(AF_INET6, ev->argv[1].ptr, &in6) == 1
		&& inet_ntop(AF_INET6, &in6, text, sizeof(text)) != NULL) {
	    /*
	     * Sendmail may send the full form (0:0:0:0:0:0:0:1); give every
	     * MTA's client the same, compressed spelling (::1).
	     */

	    objv[3] = Tcl_NewStringObj(text, -1);
	} else {
	    objv[3] = MilterNewTextObj(statePtr, ev->argv[1].ptr,
		    ev->argv[1].len);
	}
	objv[4] = Tcl_NewStringObj("port", 4);
	objv[5] = Tcl_NewIntObj((int) ev->port);
	objc = 6;
    }
    return Tcl_NewListObj(objc, objv);
}

/*
 *----------------------------------------------------------------------
 *
 * EventArgs --
 *
 *	Builds the arguments that follow the context for an event.
 *
 * Results:
 *	The number of arguments stored in objv.
 *
 * Side effects:
 *	Creates objects (refcount 0).
 *
 *----------------------------------------------------------------------
 */

static int
EventArgs(
    MilterState *statePtr,
    const MilterEvent *ev,
    Tcl_Obj **objv)
{
    int i;

    switch (ev->type) {
    case MILTER_EV_NEGOTIATE:
	objv[0] = FlagList(ev->offered.actions, actionBits);
	objv[1] = FlagList(ev->offered.protocol, protocolBits);
	return 2;
    case MILTER_EV_CONNECT:
	objv[0] = MilterNewTextObj(statePtr, ev->argv[0].ptr, ev->argv[0].len);
	objv[1] = AddressInfo(statePtr, ev);
	return 2;
    case MILTER_EV_HELO:
    case MILTER_EV_UNKNOWN:
	objv[0] = MilterNewTextObj(statePtr, ev->argv[0].ptr, ev->argv[0].len);
	return 1;
    case MILTER_EV_ENVFROM:
    case MILTER_EV_ENVRCPT: {
	Tcl_Obj *listObj = Tcl_NewListObj(0, NULL);

	for (i = 0; i < ev->argc; i++) {
	    Tcl_ListObjAppendElement(NULL, listObj, MilterNewTextObj(statePtr,
		    ev->argv[i].ptr, ev->argv[i].len));
	}
	objv[0] = listObj;
	return 1;
    }
    case MILTER_EV_HEADER:
	objv[0] = MilterNewTextObj(statePtr, ev->argv[0].ptr, ev->argv[0].len);
	objv[1] = MilterNewTextObj(statePtr, ev->argv[1].ptr, ev->argv[1].len);
	return 2;
    case MILTER_EV_BODY:
	objv[0] = Tcl_NewByteArrayObj(ev->data, (Tcl_Size) ev->len);
	return 1;
    default:
	return 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CodeAllowed --
 *
 *	Whether a callback of this event may return this verdict: negotiate
 *	only continue, reject or tempfail; body any; the others any but
 *	skip.
 *
 * Results:
 *	1 if allowed, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
CodeAllowed(
    int type,			/* MILTER_EV_* */
    int verdict)		/* A MILTER_* value. */
{
    switch (type) {
    case MILTER_EV_NEGOTIATE:
	return verdict == MILTER_CONTINUE || verdict == MILTER_REJECT
		|| verdict == MILTER_TEMPFAIL;
    case MILTER_EV_BODY:
	return 1;
    default:
	return verdict != MILTER_SKIP;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * AllowedCodes --
 *
 *	The return codes a callback of this event may give, for a message:
 *	"SMFIS_CONTINUE, SMFIS_REJECT or SMFIS_TEMPFAIL".
 *
 * Results:
 *	A new object (refcount 0).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
AllowedCodes(
    int type)			/* MILTER_EV_* */
{
    Tcl_Obj *textObj = Tcl_NewObj();
    const char *last = NULL;
    int i;

    for (i = 0; milterCodeNames[i] != NULL; i++) {
	if (!CodeAllowed(type, milterCodeValues[i])) {
	    continue;
	}
	if (last != NULL) {
	    if (Tcl_GetCharLength(textObj) > 0) {
		Tcl_AppendToObj(textObj, ", ", -1);
	    }
	    Tcl_AppendToObj(textObj, last, -1);
	}
	last = milterCodeNames[i];
    }
    Tcl_AppendStringsToObj(textObj, " or ", last, NULL);
    return textObj;
}

/*
 *----------------------------------------------------------------------
 *
 * ResultToVerdict --
 *
 *	Maps a callback's result to a verdict, checking that the event
 *	allows it.
 *
 * Results:
 *	TCL_OK with *verdictPtr set, or TCL_ERROR with a message in the
 *	interpreter naming the callback and the value.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
ResultToVerdict(
    Tcl_Interp *interp,
    int type,			/* MILTER_EV_* */
    Tcl_Obj *cbObj,
    int *verdictPtr)
{
    Tcl_Obj *resultObj = Tcl_GetObjResult(interp);
    Tcl_Obj *expectedObj;
    int index;

    if (Tcl_GetIndexFromObjStruct(NULL, resultObj, milterCodeNames,
	    sizeof(char *), "code", TCL_EXACT, &index) == TCL_OK
	    && CodeAllowed(type, milterCodeValues[index])) {
	*verdictPtr = milterCodeValues[index];
	return TCL_OK;
    }
    expectedObj = AllowedCodes(type);
    Tcl_IncrRefCount(expectedObj);
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "milter \"%s\" callback \"%s\" returned \"%s\": must be %s",
	    milterEventNames[type], Tcl_GetString(cbObj),
	    Tcl_GetString(resultObj), Tcl_GetString(expectedObj)));
    Tcl_DecrRefCount(expectedObj);
    Tcl_SetErrorCode(interp, "MILTER", "CALLBACK", "RESULT",
	    milterEventNames[type], NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCallbackVerdict --
 *
 *	Owner thread, right after a callback's script finished (in Invoke,
 *	or in milterCoro.c when a coroutine callback ends): maps its
 *	completion code and result to a verdict.
 *
 * Results:
 *	The verdict: the callback's, or -defaultreply after a fault (a
 *	refused negotiation after a negotiate fault). Results of abort and
 *	close are ignored.
 *
 * Side effects:
 *	A fault becomes a background error, and at eom drops the
 *	callback's modifications. Resets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

int
MilterCallbackVerdict(
    MilterState *statePtr,
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    Tcl_Obj *cbObj,		/* The command prefix, for messages. */
    int type,			/* MILTER_EV_* */
    int code)			/* The script's completion code. */
{
    int verdict = MILTER_CONTINUE;

    if (code == TCL_OK) {
	if (type != MILTER_EV_ABORT && type != MILTER_EV_CLOSE) {
	    code = ResultToVerdict(interp, type, cbObj, &verdict);
	}
    } else if (code != TCL_ERROR) {
	Tcl_Obj *codeObj = code == TCL_BREAK ? Tcl_NewStringObj("break", -1)
		: code == TCL_CONTINUE ? Tcl_NewStringObj("continue", -1)
		: code == TCL_RETURN ? Tcl_NewStringObj("return", -1)
		: Tcl_NewIntObj(code);

	Tcl_IncrRefCount(codeObj);
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"milter \"%s\" callback \"%s\" returned with code %s",
		milterEventNames[type], Tcl_GetString(cbObj),
		Tcl_GetString(codeObj)));
	Tcl_DecrRefCount(codeObj);
	Tcl_SetErrorCode(interp, "MILTER", "CALLBACK", "CODE",
		milterEventNames[type], NULL);
	code = TCL_ERROR;
    }
    if (code != TCL_OK) {
	Tcl_AddErrorInfo(interp, "\n    (milter \"");
	Tcl_AddErrorInfo(interp, milterEventNames[type]);
	Tcl_AddErrorInfo(interp, "\" callback)");
	Tcl_BackgroundException(interp, code);
	verdict = type == MILTER_EV_NEGOTIATE ? MILTER_REJECT
		: statePtr->defaultReply;
	MilterStatsCount(statePtr->stats, MILTER_STAT_CALLBACK_ERRORS, 1);
	if (type != MILTER_EV_NEGOTIATE && type != MILTER_EV_ABORT
		&& type != MILTER_EV_CLOSE) {
	    MilterStatsCount(statePtr->stats, MILTER_STAT_DEFAULT_REPLIES, 1);
	}
	if (type == MILTER_EV_EOM && ctxPtr->conn != NULL) {
	    MilterSessionDiscardModifications(MilterConnLock(ctxPtr->conn));
	    MilterConnUnlock(ctxPtr->conn, 0);
	}
    }
    Tcl_ResetResult(interp);
    return verdict;
}

/*
 *----------------------------------------------------------------------
 *
 * Invoke --
 *
 *	Evaluates a callback: its command prefix, the context command, and
 *	the event's arguments, at global level; with -coroutines, inside a
 *	coroutine of its own (MilterCoroInvoke).
 *
 * Results:
 *	The verdict (see MilterCallbackVerdict), or MILTER_SUSPENDED when
 *	the callback's coroutine yielded: its verdict comes later.
 *
 * Side effects:
 *	Runs the script; faults become background errors.
 *
 *----------------------------------------------------------------------
 */

static int
Invoke(
    MilterState *statePtr,
    MilterConn *conn,
    MilterCtx *ctxPtr,
    Tcl_Obj *cbObj,
    const MilterEvent *ev)
{
    Tcl_Interp *interp = statePtr->interp;
    Tcl_Obj *stackObjv[STACK_PREFIX_WORDS + MAX_EVENT_ARGS];
    Tcl_Obj **objv = stackObjv;
    Tcl_Obj **prefixv;
    Tcl_Size prefixc;
    int objc, i, code, verdict;
    int type = ev->type;	/* The event may be gone once the script ran
				 * (MilterAnswerPending). */
    int64_t began;		/* Stats: when the script started. */

    Tcl_IncrRefCount(cbObj);
    Tcl_ListObjGetElements(NULL, cbObj, &prefixc, &prefixv);
    if (prefixc > STACK_PREFIX_WORDS) {
	objv = (Tcl_Obj **) ckalloc(sizeof(Tcl_Obj *)
		* (prefixc + MAX_EVENT_ARGS));
    }
    memcpy(objv, prefixv, sizeof(Tcl_Obj *) * prefixc);
    objv[prefixc] = ctxPtr->nameObj;
    objc = prefixc + 1 + EventArgs(statePtr, ev, objv + prefixc + 1);
    for (i = 0; i < objc; i++) {
	Tcl_IncrRefCount(objv[i]);
    }

    Tcl_Preserve(interp);
    /* Stats: callbacks running, time in script. */
    MilterStatsCount(statePtr->stats, MILTER_STAT_RUNNING, 1);
    if (statePtr->workerPtr != NULL) {
	MilterStatsCount(statePtr->stats, MILTER_STAT_WORKERS_BUSY, 1);
    }
    began = MilterStatsNow();
    if (statePtr->coroutines) {
	verdict = MilterCoroInvoke(statePtr, conn, ctxPtr, cbObj, type, objc,
		objv);
    } else {
	MilterCtxPreserve(ctxPtr);
	ctxPtr->event = type;
	code = Tcl_EvalObjv(interp, objc, objv, TCL_EVAL_GLOBAL);
	ctxPtr->event = -1;
	MilterCtxRelease(ctxPtr);
	verdict = MilterCallbackVerdict(statePtr, interp, ctxPtr, cbObj, type,
		code);
    }
    MilterStatsCallback(statePtr->stats, type, MilterStatsNow() - began);
    if (statePtr->workerPtr != NULL) {
	MilterStatsCount(statePtr->stats, MILTER_STAT_WORKERS_BUSY, -1);
    }
    MilterStatsCount(statePtr->stats, MILTER_STAT_RUNNING, -1);
    Tcl_Release(interp);

    for (i = 0; i < objc; i++) {
	Tcl_DecrRefCount(objv[i]);
    }
    if (objv != stackObjv) {
	ckfree(objv);
    }
    Tcl_DecrRefCount(cbObj);
    return verdict;
}

/*
 *----------------------------------------------------------------------
 *
 * RunEvent --
 *
 *	Decides one event: makes the context on first need, runs the
 *	callback if one is registered, and deletes the context at close.
 *
 * Results:
 *	The verdict, or MILTER_SUSPENDED (see Invoke); then the close
 *	of a suspended close callback is finished by MilterCallbackFinished.
 *
 * Side effects:
 *	See Invoke.
 *
 *----------------------------------------------------------------------
 */

static int
RunEvent(
    MilterState *statePtr,
    MilterConn *conn,
    const MilterEvent *ev)
{
    MilterCtx *ctxPtr = MilterConnGetData(conn);
    int verdict = MILTER_CONTINUE, type = ev->type;
    Tcl_Obj *cbObj = statePtr->callbacks[type];

    if (statePtr->shutDown || statePtr->interp == NULL) {
	MilterStatsCount(statePtr->stats, MILTER_STAT_DEFAULT_REPLIES, 1);
	return statePtr->defaultReply;
    }
    if (MilterConnExpired(conn) && type != MILTER_EV_ABORT
	    && type != MILTER_EV_CLOSE) {
	/*
	 * Past the milter stop deadline: answer without running the
	 * script, so the stop is not held up by a queue of callbacks.
	 */

	MilterStatsCount(statePtr->stats, MILTER_STAT_DEFAULT_REPLIES, 1);
	return statePtr->defaultReply;
    }
    if (ctxPtr == NULL) {
	if (cbObj == NULL) {
	    return MILTER_CONTINUE;
	}
	ctxPtr = MilterCtxNew(statePtr, conn);
    }
    MilterCtxPreserve(ctxPtr);
    if (cbObj != NULL) {
	verdict = Invoke(statePtr, conn, ctxPtr, cbObj, ev);
    }
    if (type == MILTER_EV_CLOSE && verdict != MILTER_SUSPENDED
	    && !ctxPtr->deleted) {
	MilterCtxDelete(ctxPtr);
    }
    MilterCtxRelease(ctxPtr);
    return verdict;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterRunConn --
 *
 *	Owner thread. Decides the events of one connection until it needs
 *	input from the MTA again, resuming it after each verdict, or until
 *	a callback's coroutine yields: that coroutine resumes the
 *	connection when it finishes (MilterCallbackFinished).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Runs callbacks; writes replies to the MTA.
 *
 *----------------------------------------------------------------------
 */

void
MilterRunConn(
    MilterState *statePtr,
    MilterConn *conn,
    MilterEvent *ev)
{
    MilterCallbackFrame frame;

    Tcl_Preserve(statePtr);
    frame.conn = conn;
    frame.answered = 0;
    frame.nextPtr = statePtr->frames;
    statePtr->frames = &frame;
    while (ev != NULL) {
	int verdict;

	frame.type = ev->type;
	verdict = RunEvent(statePtr, conn, ev);
	if (frame.answered || verdict == MILTER_SUSPENDED) {
	    break;		/* MilterAnswerPending did it, or the
				 * callback's coroutine will. */
	}
	ev = MilterConnResume(conn, verdict);
    }
    statePtr->frames = frame.nextPtr;
    Tcl_Release(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCallbackFinished --
 *
 *	Owner thread. A callback whose coroutine had yielded has finished
 *	with this verdict: what RunEvent and MilterRunConn would have done
 *	next. A close callback's context is deleted; the connection is
 *	resumed, and its following events are decided.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; runs callbacks.
 *
 *----------------------------------------------------------------------
 */

void
MilterCallbackFinished(
    MilterState *statePtr,
    MilterConn *conn,		/* Its event's reference is still held. */
    MilterCtx *ctxPtr,
    int type,			/* MILTER_EV_* */
    int verdict)		/* A MILTER_* value. */
{
    MilterEvent *ev;

    Tcl_Preserve(statePtr);
    if (type == MILTER_EV_CLOSE && !ctxPtr->deleted) {
	MilterCtxDelete(ctxPtr);
    }
    ev = MilterConnResume(conn, verdict);
    if (ev != NULL) {
	MilterRunConn(statePtr, conn, ev);
    }
    Tcl_Release(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterAnswerPending --
 *
 *	Owner thread, at teardown (interpreter deleted, thread or process
 *	exiting). Every connection whose event a callback further up the
 *	stack is still deciding (that callback deleted the interpreter or
 *	called exit) gets the -defaultreply now, without that callback's
 *	modifications, and so does every later command already read from
 *	it; the callback's own verdict, when it returns, is ignored. So do
 *	the connections whose callbacks' coroutines are suspended
 *	(MilterCoroAnswerAll). The MTA then sees the close.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; frees the events being decided (callers keep only
 *	the event type).
 *
 *----------------------------------------------------------------------
 */

void
MilterAnswerPending(
    MilterState *statePtr)
{
    MilterCallbackFrame *framePtr;

    for (framePtr = statePtr->frames; framePtr != NULL;
	    framePtr = framePtr->nextPtr) {
	MilterConn *conn = framePtr->conn;
	MilterEvent *ev;

	if (framePtr->answered) {
	    continue;
	}
	framePtr->answered = 1;
	if (framePtr->type == MILTER_EV_EOM) {
	    MilterSessionDiscardModifications(MilterConnLock(conn));
	    MilterConnUnlock(conn, 0);
	}
	ev = MilterConnResume(conn, framePtr->type == MILTER_EV_NEGOTIATE
		? MILTER_REJECT : statePtr->defaultReply);
	while (ev != NULL) {
	    ev = MilterConnResume(conn, statePtr->defaultReply);
	}
    }
    MilterCoroAnswerAll(statePtr);
}
