/*
 * milterCtx.c --
 *
 *	Context commands (::milter::ctxN): the Tcl face of one MTA session,
 *	passed to every callback. Private data, macros, the SMTP reply, and
 *	the end-of-message modifications. Owner thread only; the session is
 *	reached under its connection's lock.
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
 * Macro stage names for setsymlist, in SMFIM_* order.
 */

static const char *const stageNames[] = {
    "connect", "helo", "envfrom", "envrcpt", "data", "eom", "eoh", NULL
};

static int		CtxObjCmd(ClientData clientData, Tcl_Interp *interp,
			    int objc, Tcl_Obj *const objv[]);
static void		CtxCmdDeleted(ClientData clientData);

/*
 *----------------------------------------------------------------------
 *
 * MilterCtxNew --
 *
 *	Creates the context of a connection and its command.
 *
 * Results:
 *	The context.
 *
 * Side effects:
 *	Creates a command; references the connection; attaches the context
 *	to it, which makes the session hand out a close event.
 *
 *----------------------------------------------------------------------
 */

MilterCtx *
MilterCtxNew(
    MilterState *statePtr,
    MilterConn *conn)
{
    MilterCtx *ctxPtr = (MilterCtx *) ckalloc(sizeof(MilterCtx));
    char name[64];

    memset(ctxPtr, 0, sizeof(MilterCtx));
    ctxPtr->statePtr = statePtr;
    ctxPtr->conn = conn;
    ctxPtr->event = -1;
    Tcl_InitHashTable(&ctxPtr->priv, TCL_STRING_KEYS);
    snprintf(name, sizeof(name), "::milter::ctx%lu", ++statePtr->ctxCounter);
    ctxPtr->token = Tcl_CreateObjCommand(statePtr->interp, name, CtxObjCmd,
	    ctxPtr, CtxCmdDeleted);
    ctxPtr->nameObj = Tcl_NewObj();
    Tcl_IncrRefCount(ctxPtr->nameObj);
    Tcl_GetCommandFullName(statePtr->interp, ctxPtr->token, ctxPtr->nameObj);

    MILTER_LIST_PUSH(statePtr->contexts, ctxPtr);

    MilterConnRetain(conn);
    MilterConnSetData(conn, ctxPtr);
    return ctxPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCtxDelete --
 *
 *	Ends a context: its command, its private data and its hold on the
 *	connection. The memory goes when no callback still runs with it
 *	(MilterCtxPreserve/MilterCtxRelease, owner thread only).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Deletes the command; frees memory.
 *
 *----------------------------------------------------------------------
 */

void
MilterCtxDelete(
    MilterCtx *ctxPtr)
{
    MilterState *statePtr = ctxPtr->statePtr;
    Tcl_HashSearch search;
    Tcl_HashEntry *hPtr;

    if (ctxPtr->deleted) {
	return;
    }
    ctxPtr->deleted = 1;
    MILTER_LIST_REMOVE(statePtr->contexts, ctxPtr);
    if (ctxPtr->token != NULL && statePtr->interp != NULL) {
	Tcl_Command token = ctxPtr->token;

	ctxPtr->token = NULL;
	Tcl_DeleteCommandFromToken(statePtr->interp, token);
    }
    for (hPtr = Tcl_FirstHashEntry(&ctxPtr->priv, &search); hPtr != NULL;
	    hPtr = Tcl_NextHashEntry(&search)) {
	Tcl_DecrRefCount((Tcl_Obj *) Tcl_GetHashValue(hPtr));
    }
    Tcl_DeleteHashTable(&ctxPtr->priv);
    MilterConnSetData(ctxPtr->conn, NULL);
    MilterConnRelease(ctxPtr->conn);
    ctxPtr->conn = NULL;
    ctxPtr->refs++;
    MilterCtxRelease(ctxPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCtxPreserve --
 *
 *	Takes a reference on a context so that its memory outlives a
 *	deletion while a callback still runs with it. Owner thread only.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Increments the reference count.
 *
 *----------------------------------------------------------------------
 */

void
MilterCtxPreserve(
    MilterCtx *ctxPtr)
{
    ctxPtr->refs++;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCtxRelease --
 *
 *	Drops a reference taken by MilterCtxPreserve (or the context's
 *	own); the last one of a deleted context frees it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free the context and its name.
 *
 *----------------------------------------------------------------------
 */

void
MilterCtxRelease(
    MilterCtx *ctxPtr)
{
    if (--ctxPtr->refs == 0 && ctxPtr->deleted) {
	Tcl_DecrRefCount(ctxPtr->nameObj);
	ckfree(ctxPtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CtxCmdDeleted --
 *
 *	The command was deleted (renamed away, or the interpreter is going).
 *	The context itself lives on until the connection ends.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Forgets the command token.
 *
 *----------------------------------------------------------------------
 */

static void
CtxCmdDeleted(
    ClientData clientData)
{
    ((MilterCtx *) clientData)->token = NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * SessionResult --
 *
 *	The Tcl result of a session call: nothing when it succeeded, else
 *	"cannot subcommand: msg" with errorCode MILTER CONTEXT
 *	STATE|ACTION|VALUE subcommand (always the full subcommand name,
 *	however it was abbreviated), or for MILTER_ERR_CLOSED (the MTA
 *	can no longer be reached through this context: its session ended,
 *	or the MTA hung up while a callback ran) "the MTA connection of
 *	this context is closed" with errorCode MILTER CONTEXT CLOSED.
 *
 * Results:
 *	TCL_OK for MILTER_ERR_NONE, else TCL_ERROR.
 *
 * Side effects:
 *	On error, sets the interpreter's result and errorCode.
 *
 *----------------------------------------------------------------------
 */

static int
SessionResult(
    Tcl_Interp *interp,
    const char *subName,	/* The full subcommand name. */
    MilterSessionError err,
    const char *msg)		/* The session's message, for an error. */
{
    static const char *const classes[] = {	/* Not NONE, not CLOSED. */
	[MILTER_ERR_STATE] = "STATE",
	[MILTER_ERR_ACTION] = "ACTION",
	[MILTER_ERR_VALUE] = "VALUE"
    };

    if (err == MILTER_ERR_NONE) {
	return TCL_OK;
    }
    if (err == MILTER_ERR_CLOSED) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"the MTA connection of this context is closed", -1));
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "CLOSED", NULL);
    } else {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf("cannot %s: %s", subName,
		msg));
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", classes[err], subName,
		NULL);
    }
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * ValueError --
 *
 *	Reports a bad argument: "cannot subcommand: msg" with errorCode
 *	MILTER CONTEXT VALUE subcommand.
 *
 * Results:
 *	TCL_ERROR.
 *
 * Side effects:
 *	Sets the interpreter's result and errorCode.
 *
 *----------------------------------------------------------------------
 */

static int
ValueError(
    Tcl_Interp *interp,
    const char *subName,	/* The full subcommand name. */
    const char *msg)
{
    return SessionResult(interp, subName, MILTER_ERR_VALUE, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * LockSession --
 *
 *	MilterConnLock for a subcommand that would send something to the
 *	MTA: if nothing can reach the MTA any more, the session is told so
 *	first, and its action then fails with MILTER_ERR_CLOSED (after its
 *	own state, action and value checks, so that a call that is wrong
 *	anyway fails the same way whenever the MTA hangs up).
 *
 * Results:
 *	The session, locked; release it with MilterConnUnlock.
 *
 * Side effects:
 *	Locks the connection.
 *
 *----------------------------------------------------------------------
 */

static MilterSession *
LockSession(
    MilterCtx *ctxPtr)
{
    MilterSession *s = MilterConnLock(ctxPtr->conn);

    if (MilterConnPeerGone(ctxPtr->conn)) {
	MilterSessionSetPeerGone(s);
    }
    return s;
}

/*
 * How QuotedValue shows a value.
 */

#define QUOTE_MAX_CHARS	60	/* Longer values are cut, then "...". */
#define ASCII_DEL	0x7F

/*
 *----------------------------------------------------------------------
 *
 * QuotedValue --
 *
 *	A value as an error message quotes it: control characters written
 *	as \n, \r, \t or \xHH, so that the message stays one line, and at
 *	most 60 characters, then "...".
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
QuotedValue(
    Tcl_Obj *objPtr)
{
    Tcl_Size len;
    const char *p = Tcl_GetStringFromObj(objPtr, &len);
    const char *end = p + len;
    Tcl_Obj *resultPtr = Tcl_NewObj();
    int chars = 0;

    while (p < end) {
	Tcl_UniChar ch = 0;
	int n = Tcl_UtfToUniChar(p, &ch);

	if (++chars > QUOTE_MAX_CHARS) {
	    Tcl_AppendToObj(resultPtr, "...", 3);
	    break;
	}
	switch (ch) {
	case '\n':
	    Tcl_AppendToObj(resultPtr, "\\n", 2);
	    break;
	case '\r':
	    Tcl_AppendToObj(resultPtr, "\\r", 2);
	    break;
	case '\t':
	    Tcl_AppendToObj(resultPtr, "\\t", 2);
	    break;
	default:
	    if (ch < ' ' || ch == ASCII_DEL) {
		Tcl_AppendPrintfToObj(resultPtr, "\\x%02X", (unsigned) ch);
	    } else {
		Tcl_AppendToObj(resultPtr, p, n);
	    }
	    break;
	}
	p += n;
    }
    return resultPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * HeaderError --
 *
 *	Checks the encoded name and value of a header modification, the
 *	bytes that would be sent (see MilterHeaderNameProblem).
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with 'bad header name "...": ...' or 'bad
 *	header value "...": ...' and errorCode MILTER CONTEXT VALUE
 *	subcommand.
 *
 * Side effects:
 *	May set the interpreter's result and errorCode.
 *
 *----------------------------------------------------------------------
 */

static int
HeaderError(
    Tcl_Interp *interp,
    const char *subName,	/* The full subcommand name. */
    Tcl_Obj *const strObjs[],
    const MilterStr strs[])
{
    const char *problem, *what = "name";
    Tcl_Obj *badObj = strObjs[0], *quotedObj;

    problem = MilterHeaderNameProblem(strs[0].ptr, strs[0].len);
    if (problem == NULL) {
	problem = MilterHeaderValueProblem(strs[1].ptr, strs[1].len);
	what = "value";
	badObj = strObjs[1];
    }
    if (problem == NULL) {
	return TCL_OK;
    }
    quotedObj = QuotedValue(badObj);
    Tcl_IncrRefCount(quotedObj);
    Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad header %s \"%s\": %s", what,
	    Tcl_GetString(quotedObj), problem));
    Tcl_DecrRefCount(quotedObj);
    Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "VALUE",
	    subName, NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * EncodeStrings --
 *
 *	Converts string arguments with -encoding into the bytes to send.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with "cannot subcommand: problem" and
 *	errorCode MILTER CONTEXT VALUE subcommand for a string that would
 *	contain a NUL byte. In both cases *usedPtr tells how many of ds
 *	to free (FreeStrings).
 *
 * Side effects:
 *	Fills strs and ds.
 *
 *----------------------------------------------------------------------
 */

static int
EncodeStrings(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* The full subcommand name. */
    Tcl_Obj *const objs[],
    int count,
    const char *problem,	/* The message for a string refused. */
    MilterStr strs[],		/* Out: the bytes of each string. */
    Tcl_DString ds[],		/* Out: where they are kept. */
    int *usedPtr)		/* Out: the number of ds in use. */
{
    int i;

    for (i = 0; i < count; i++) {
	*usedPtr = i + 1;
	strs[i].ptr = MilterTextBytes(ctxPtr->statePtr, objs[i], &ds[i],
		&strs[i].len);
	if (strs[i].ptr == NULL) {
	    return ValueError(interp, subName, problem);
	}
    }
    *usedPtr = count;
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * FreeStrings --
 *
 *	Frees what EncodeStrings kept.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees the dynamic strings.
 *
 *----------------------------------------------------------------------
 */

static void
FreeStrings(
    Tcl_DString ds[],
    int used)			/* How many EncodeStrings filled. */
{
    int i;

    for (i = 0; i < used; i++) {
	Tcl_DStringFree(&ds[i]);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Modify --
 *
 *	Encodes string arguments and queues one modification packet;
 *	headers are checked first (HeaderError).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Grows the session's pending modifications.
 *
 *----------------------------------------------------------------------
 */

static int
Modify(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* The full subcommand name. */
    unsigned char cmd,		/* An SMFIR_* modification. */
    int useIndex,		/* Send the header index. */
    uint32_t index,		/* The header index, if sent. */
    Tcl_Obj *const strObjs[],
    int count)			/* Number of strObjs. */
{
    Tcl_DString ds[3];
    MilterStr strs[3];
    MilterSessionError err;
    const char *msg;
    int used, code;

    code = EncodeStrings(interp, ctxPtr, subName, strObjs, count,
	    "strings may not contain NUL", strs, ds, &used);
    if (code == TCL_OK && (cmd == SMFIR_ADDHEADER || cmd == SMFIR_INSHEADER
	    || cmd == SMFIR_CHGHEADER)) {
	code = HeaderError(interp, subName, strObjs, strs);
    }
    if (code == TCL_OK) {
	err = MilterSessionModify(LockSession(ctxPtr), cmd, useIndex,
		(uint32_t) index, strs, count, &msg);
	MilterConnUnlock(ctxPtr->conn, 0);
	code = SessionResult(interp, subName, err, msg);
    }
    FreeStrings(ds, used);
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * IndexedHeader --
 *
 *	insheader and chgheader: the arguments "name ?index? value", with a
 *	default index, and the modification. An index is an integer from 0
 *	to 4294967295.
 *
 * Results:
 *	A standard Tcl result. A bad index is 'bad header index "x": must
 *	be from 0 to 4294967295' with errorCode MILTER CONTEXT VALUE
 *	subcommand.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
IndexedHeader(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* The full subcommand name. */
    unsigned char cmd,		/* SMFIR_INSHEADER or SMFIR_CHGHEADER. */
    uint32_t index,		/* The index when none is given. */
    int objc,
    Tcl_Obj *const objv[])
{
    Tcl_Obj *strs[2];

    if (objc == 5) {
	Tcl_WideInt wide;

	if (Tcl_GetWideIntFromObj(NULL, objv[3], &wide) != TCL_OK
		|| wide < 0 || wide > 0xFFFFFFFFLL) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad header index \"%s\": must be from 0 to 4294967295",
		    Tcl_GetString(objv[3])));
	    Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "VALUE", subName,
		    NULL);
	    return TCL_ERROR;
	}
	index = (uint32_t) wide;
    }
    strs[0] = objv[2];
    strs[1] = objv[objc - 1];
    return Modify(interp, ctxPtr, subName, cmd, 1, index, strs, 2);
}

/*
 *----------------------------------------------------------------------
 *
 * ReadPriv --
 *
 *	Reads one private value, as [set name] does.
 *
 * Results:
 *	A standard Tcl result: the value, or 'can't read "name": no such
 *	private data' with errorCode MILTER CONTEXT PRIV name.
 *
 * Side effects:
 *	Sets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

static int
ReadPriv(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    Tcl_Obj *nameObj)
{
    Tcl_HashEntry *hPtr = Tcl_FindHashEntry(&ctxPtr->priv,
	    Tcl_GetString(nameObj));

    if (hPtr == NULL) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"can't read \"%s\": no such private data",
		Tcl_GetString(nameObj)));
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "PRIV",
		Tcl_GetString(nameObj), NULL);
	return TCL_ERROR;
    }
    Tcl_SetObjResult(interp, (Tcl_Obj *) Tcl_GetHashValue(hPtr));
    return TCL_OK;
}

/*
 * The subcommands of a context command, one procedure each, in the order
 * of the names. Each gets the full subcommand name (for its errorCode)
 * and the whole objv ("$ctx subcommand arg ..."), whose length CtxObjCmd
 * has checked against the table below.
 */

typedef int (CtxSubCmdProc)(Tcl_Interp *interp, MilterCtx *ctxPtr,
	const char *subName, int objc, Tcl_Obj *const objv[]);

/*
 *----------------------------------------------------------------------
 *
 * CtxGetPrivCmd --
 *
 *	$ctx getpriv ?name?
 *	The private value of that name; without a name, a dict of all of
 *	them.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
CtxGetPrivCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* Not used. */
    int objc,
    Tcl_Obj *const objv[])
{
    Tcl_HashTable *tablePtr = &ctxPtr->priv;
    Tcl_HashEntry *hPtr;
    Tcl_HashSearch search;
    Tcl_Obj *listObj;

    (void) subName;
    if (objc == 3) {
	return ReadPriv(interp, ctxPtr, objv[2]);
    }
    listObj = Tcl_NewObj();
    for (hPtr = Tcl_FirstHashEntry(tablePtr, &search); hPtr != NULL;
	    hPtr = Tcl_NextHashEntry(&search)) {
	Tcl_ListObjAppendElement(NULL, listObj, Tcl_NewStringObj(
		Tcl_GetHashKey(tablePtr, hPtr), -1));
	Tcl_ListObjAppendElement(NULL, listObj,
		(Tcl_Obj *) Tcl_GetHashValue(hPtr));
    }
    Tcl_SetObjResult(interp, listObj);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxSetPrivCmd --
 *
 *	$ctx setpriv name ?value?
 *	Sets a private value and returns it; without a value, reads it as
 *	getpriv does.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Holds the value in the context until it is unset or the context
 *	ends.
 *
 *----------------------------------------------------------------------
 */

static int
CtxSetPrivCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* Not used. */
    int objc,
    Tcl_Obj *const objv[])
{
    Tcl_HashEntry *hPtr;
    int isNew;

    (void) subName;
    if (objc == 3) {
	return ReadPriv(interp, ctxPtr, objv[2]);
    }
    hPtr = Tcl_CreateHashEntry(&ctxPtr->priv, Tcl_GetString(objv[2]),
	    &isNew);
    Tcl_IncrRefCount(objv[3]);
    if (!isNew) {
	Tcl_DecrRefCount((Tcl_Obj *) Tcl_GetHashValue(hPtr));
    }
    Tcl_SetHashValue(hPtr, objv[3]);
    Tcl_SetObjResult(interp, objv[3]);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxUnsetPrivCmd --
 *
 *	$ctx unsetpriv ?pattern?
 *	Removes the private values whose names match (all without a
 *	pattern), as [array unset] does.
 *
 * Results:
 *	TCL_OK, or a wrong # args error.
 *
 * Side effects:
 *	Releases the values.
 *
 *----------------------------------------------------------------------
 */

static int
CtxUnsetPrivCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* Not used. */
    int objc,
    Tcl_Obj *const objv[])
{
    Tcl_HashTable *tablePtr = &ctxPtr->priv;
    Tcl_HashEntry *hPtr;
    Tcl_HashSearch search;
    const char *pattern;

    (void) subName;
    pattern = objc == 3 ? Tcl_GetString(objv[2]) : NULL;
    for (hPtr = Tcl_FirstHashEntry(tablePtr, &search); hPtr != NULL;
	    hPtr = Tcl_NextHashEntry(&search)) {
	if (pattern == NULL || Tcl_StringMatch(
		Tcl_GetHashKey(tablePtr, hPtr), pattern)) {
	    Tcl_DecrRefCount((Tcl_Obj *) Tcl_GetHashValue(hPtr));
	    Tcl_DeleteHashEntry(hPtr);
	}
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxGetSymValCmd --
 *
 *	$ctx getsymval symbol
 *	The value of a macro the MTA sent ("" if none); x and {x} alike.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Locks the connection for a moment.
 *
 *----------------------------------------------------------------------
 */

static int
CtxGetSymValCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,	/* Not used. */
    int objc,
    Tcl_Obj *const objv[])
{
    MilterStr value;
    Tcl_Size len;
    const char *symbol;

    (void) subName;
    symbol = Tcl_GetStringFromObj(objv[2], &len);
    if (MilterSessionMacro(MilterConnLock(ctxPtr->conn), symbol,
	    (size_t) len, &value)) {
	Tcl_SetObjResult(interp, MilterNewTextObj(ctxPtr->statePtr,
		value.ptr, value.len));
    }
    MilterConnUnlock(ctxPtr->conn, 0);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxSetReplyCmd --
 *
 *	$ctx setreply rcode ?xcode? ?line ...?
 *	The SMTP reply for the next reject or tempfail of its class. With
 *	two arguments the second is the message; with three or more,
 *	xcode then one or more lines (a multi-line reply).
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER CONTEXT VALUE setreply for
 *	a bad code or line.
 *
 * Side effects:
 *	Sets the session's reply.
 *
 *----------------------------------------------------------------------
 */

static int
CtxSetReplyCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterStr lines[MILTER_REPLY_LINES];
    Tcl_DString ds[MILTER_REPLY_LINES];
    const char *msg, *xcode = "";
    MilterSessionError err;
    int first, count, used, code;

    if (objc == 4) {
	first = 3;
    } else {
	first = 4;
	if (objc > 4) {
	    xcode = Tcl_GetString(objv[3]);
	}
    }
    count = objc > first ? objc - first : 0;
    if (count > MILTER_REPLY_LINES) {
	return ValueError(interp, subName, "a reply has at most 32 lines");
    }
    code = EncodeStrings(interp, ctxPtr, subName, objv + first, count,
	    "a reply line may not contain CR, LF or NUL", lines, ds, &used);
    if (code == TCL_OK) {
	err = MilterSessionSetReply(LockSession(ctxPtr),
		Tcl_GetString(objv[2]), xcode, lines, count, &msg);
	MilterConnUnlock(ctxPtr->conn, 0);
	code = SessionResult(interp, subName, err, msg);
    }
    FreeStrings(ds, used);
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxAddHeaderCmd --
 *
 *	$ctx addheader name value
 *	Append a header (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxAddHeaderCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    return Modify(interp, ctxPtr, subName, SMFIR_ADDHEADER, 0, 0, objv + 2,
	    2);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxInsHeaderCmd --
 *
 *	$ctx insheader name ?index? value
 *	Insert a header before the index-th (0 = very top) (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxInsHeaderCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    return IndexedHeader(interp, ctxPtr, subName, SMFIR_INSHEADER, 0, objc,
	    objv);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxChgHeaderCmd --
 *
 *	$ctx chgheader name ?index? value
 *	Change the index-th (1-based) header of that name; an empty value
 *	deletes it; past the last one, the header is added (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxChgHeaderCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    return IndexedHeader(interp, ctxPtr, subName, SMFIR_CHGHEADER, 1, objc,
	    objv);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxAddRcptCmd --
 *
 *	$ctx addrcpt rcpt ?esmtpArgs?
 *	Add a recipient, with ESMTP arguments if given (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxAddRcptCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    if (objc == 4 && Tcl_GetCharLength(objv[3]) > 0) {
	return Modify(interp, ctxPtr, subName, SMFIR_ADDRCPT_PAR, 0, 0,
		objv + 2, 2);
    }
    return Modify(interp, ctxPtr, subName, SMFIR_ADDRCPT, 0, 0, objv + 2,
	    1);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxDelRcptCmd --
 *
 *	$ctx delrcpt rcpt
 *	Remove a recipient, written exactly as the MTA sent it (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxDelRcptCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    return Modify(interp, ctxPtr, subName, SMFIR_DELRCPT, 0, 0, objv + 2,
	    1);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxChgFromCmd --
 *
 *	$ctx chgfrom address ?esmtpArgs?
 *	Change the envelope sender (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxChgFromCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    return Modify(interp, ctxPtr, subName, SMFIR_CHGFROM, 0, 0, objv + 2,
	    objc == 4 && Tcl_GetCharLength(objv[3]) > 0 ? 2 : 1);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxQuarantineCmd --
 *
 *	$ctx quarantine reason
 *	Hold the message in the MTA's quarantine (eom only).
 *
 * Results:
 *	A standard Tcl result; an empty reason is an error (MILTER
 *	CONTEXT VALUE quarantine).
 *
 * Side effects:
 *	Queues the modification (Modify).
 *
 *----------------------------------------------------------------------
 */

static int
CtxQuarantineCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    if (Tcl_GetCharLength(objv[2]) == 0) {
	return ValueError(interp, subName, "the reason may not be empty");
    }
    return Modify(interp, ctxPtr, subName, SMFIR_QUARANTINE, 0, 0,
	    objv + 2, 1);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxReplaceBodyCmd --
 *
 *	$ctx replacebody data
 *	Append to the replacement body; calls add up (eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Grows the session's replacement body.
 *
 *----------------------------------------------------------------------
 */

static int
CtxReplaceBodyCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterSessionError err;
    Tcl_DString ds;
    const unsigned char *bytes;
    const char *msg;
    size_t len;

    bytes = MilterBodyBytes(ctxPtr->statePtr, objv[2], &ds, &len);
    err = MilterSessionReplaceBody(LockSession(ctxPtr), bytes, len, &msg);
    MilterConnUnlock(ctxPtr->conn, 0);
    Tcl_DStringFree(&ds);
    return SessionResult(interp, subName, err, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxProgressCmd --
 *
 *	$ctx progress
 *	Tell the MTA, now, that work goes on; it restarts its timeout
 *	(eom only).
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Sends a progress packet at once.
 *
 *----------------------------------------------------------------------
 */

static int
CtxProgressCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterSessionError err;
    const char *msg;

    err = MilterSessionProgress(LockSession(ctxPtr), &msg);
    MilterConnUnlock(ctxPtr->conn, 1);
    return SessionResult(interp, subName, err, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxSetSymListCmd --
 *
 *	$ctx setsymlist stage macroList
 *	Ask the MTA for exactly these macros at a stage (negotiate only).
 *
 * Results:
 *	A standard Tcl result. An unknown stage ('bad stage "x": must be
 *	...') or a macro list that is not a list is an error with
 *	errorCode MILTER CONTEXT VALUE setsymlist.
 *
 * Side effects:
 *	Sets the session's macro list for that stage.
 *
 *----------------------------------------------------------------------
 */

static int
CtxSetSymListCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterSessionError err;
    Tcl_Obj **elemv;
    Tcl_Size elemc, i, len;
    Tcl_DString list;
    const char *macro, *msg;
    int stage;

    if (Tcl_GetIndexFromObj(interp, objv[2], stageNames, "stage", 0,
	    &stage) != TCL_OK
	    || Tcl_ListObjGetElements(interp, objv[3], &elemc, &elemv)
	    != TCL_OK) {
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "VALUE", subName,
		NULL);
	return TCL_ERROR;
    }
    Tcl_DStringInit(&list);
    for (i = 0; i < elemc; i++) {
	if (i > 0) {
	    Tcl_DStringAppend(&list, " ", 1);
	}
	macro = Tcl_GetStringFromObj(elemv[i], &len);
	if (len > 1 && macro[0] != '{') {
	    /* Long macro names travel in braces: {auth_authen}. */
	    Tcl_DStringAppend(&list, "{", 1);
	    Tcl_DStringAppend(&list, macro, len);
	    Tcl_DStringAppend(&list, "}", 1);
	} else {
	    Tcl_DStringAppend(&list, macro, len);
	}
    }
    err = MilterSessionSetSymlist(LockSession(ctxPtr), stage,
	    Tcl_DStringValue(&list), &msg);
    MilterConnUnlock(ctxPtr->conn, 0);
    Tcl_DStringFree(&list);
    return SessionResult(interp, subName, err, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * CtxCaptureCmd --
 *
 *	$ctx capture ?boolean?
 *	Whether this session's capture file is written when it ends
 *	(milter configure -capture); the default is -captureall.
 *
 * Results:
 *	A standard Tcl result: the setting, 0 when the milter captures
 *	nothing. A value that is not a boolean is an error with errorCode
 *	MILTER CONTEXT VALUE capture; turning capture on without a
 *	-capture directory, MILTER CONTEXT STATE capture.
 *
 * Side effects:
 *	Changes the setting.
 *
 *----------------------------------------------------------------------
 */

static int
CtxCaptureCmd(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    const char *subName,
    int objc,
    Tcl_Obj *const objv[])
{
    int on = -1, result;

    if (objc == 3 && Tcl_GetBooleanFromObj(NULL, objv[2], &on) != TCL_OK) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"cannot %s: expected boolean value but got \"%s\"", subName,
		Tcl_GetString(objv[2])));
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "VALUE", subName,
		NULL);
	return TCL_ERROR;
    }
    result = MilterConnCapture(ctxPtr->conn, on);
    if (result < 0 && on == 1) {
	return SessionResult(interp, subName, MILTER_ERR_STATE,
		"no -capture directory is configured");
    }
    Tcl_SetObjResult(interp, Tcl_NewBooleanObj(result > 0));
    return TCL_OK;
}

/*
 * The subcommand table: names in alphabetical order (the order the error
 * message lists them in) and their procedures.
 */

typedef struct CtxSubCmd {
    const char *name;		/* First, for Tcl_GetIndexFromObjStruct. */
    CtxSubCmdProc *proc;	/* Called with objc checked. */
    int minObjc, maxObjc;	/* The words allowed, counting "$ctx sub";
				 * maxObjc -1: any number. */
    const char *usage;		/* The arguments, for "wrong # args". */
} CtxSubCmd;

static const CtxSubCmd subCommands[] = {
    {"addheader",   CtxAddHeaderCmd,	4, 4,  "name value"},
    {"addrcpt",	    CtxAddRcptCmd,	3, 4,  "rcpt ?esmtpArgs?"},
    {"capture",	    CtxCaptureCmd,	2, 3,  "?boolean?"},
    {"chgfrom",	    CtxChgFromCmd,	3, 4,  "address ?esmtpArgs?"},
    {"chgheader",   CtxChgHeaderCmd,	4, 5,  "name ?index? value"},
    {"delrcpt",	    CtxDelRcptCmd,	3, 3,  "rcpt"},
    {"getpriv",	    CtxGetPrivCmd,	2, 3,  "?name?"},
    {"getsymval",   CtxGetSymValCmd,	3, 3,  "symbol"},
    {"insheader",   CtxInsHeaderCmd,	4, 5,  "name ?index? value"},
    {"progress",    CtxProgressCmd,	2, 2,  NULL},
    {"quarantine",  CtxQuarantineCmd,	3, 3,  "reason"},
    {"replacebody", CtxReplaceBodyCmd,	3, 3,  "data"},
    {"setpriv",	    CtxSetPrivCmd,	3, 4,  "name ?value?"},
    {"setreply",    CtxSetReplyCmd,	3, -1, "rcode ?xcode? ?line ...?"},
    {"setsymlist",  CtxSetSymListCmd,	4, 4,  "stage macroList"},
    {"unsetpriv",   CtxUnsetPrivCmd,	2, 3,  "?pattern?"},
    {NULL,	    NULL,		0, 0,  NULL}
};

/*
 *----------------------------------------------------------------------
 *
 * CtxObjCmd --
 *
 *	$ctx subcommand ?arg ...?
 *	Looks the subcommand up (unique abbreviations allowed), checks the
 *	number of arguments and calls its procedure with the full name.
 *
 * Results:
 *	A standard Tcl result. An unknown or ambiguous subcommand is 'bad
 *	subcommand "x": must be ...' (or 'ambiguous subcommand ...') with
 *	errorCode MILTER CONTEXT SUBCOMMAND x; any subcommand of a context
 *	whose connection ended is MILTER CONTEXT CLOSED.
 *
 * Side effects:
 *	See the subcommands.
 *
 *----------------------------------------------------------------------
 */

static int
CtxObjCmd(
    ClientData clientData,	/* The context. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterCtx *ctxPtr = clientData;
    const CtxSubCmd *cmdPtr;
    int index;

    if (objc < 2) {
	Tcl_WrongNumArgs(interp, 1, objv, "subcommand ?arg ...?");
	return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObjStruct(interp, objv[1], subCommands,
	    sizeof(CtxSubCmd), "subcommand", 0, &index) != TCL_OK) {
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "SUBCOMMAND",
		Tcl_GetString(objv[1]), NULL);
	return TCL_ERROR;
    }
    cmdPtr = &subCommands[index];
    if (ctxPtr->deleted || ctxPtr->conn == NULL) {
	return SessionResult(interp, cmdPtr->name, MILTER_ERR_CLOSED, NULL);
    }
    if (objc < cmdPtr->minObjc
	    || (cmdPtr->maxObjc >= 0 && objc > cmdPtr->maxObjc)) {
	Tcl_WrongNumArgs(interp, 2, objv, cmdPtr->usage);
	return TCL_ERROR;
    }
    return cmdPtr->proc(interp, ctxPtr, cmdPtr->name, objc, objv);
}
