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

#include <stdio.h>
#include <string.h>

static const char *const subCommands[] = {
    "addheader", "addrcpt", "chgfrom", "chgheader", "delrcpt", "getpriv",
    "getsymval", "insheader", "progress", "quarantine", "replacebody",
    "setpriv", "setreply", "setsymlist", "unsetpriv", NULL
};
enum SubCommand {
    CTX_ADDHEADER, CTX_ADDRCPT, CTX_CHGFROM, CTX_CHGHEADER, CTX_DELRCPT,
    CTX_GETPRIV, CTX_GETSYMVAL, CTX_INSHEADER, CTX_PROGRESS, CTX_QUARANTINE,
    CTX_REPLACEBODY, CTX_SETPRIV, CTX_SETREPLY, CTX_SETSYMLIST, CTX_UNSETPRIV
};

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

    ctxPtr->nextPtr = statePtr->contexts;
    if (statePtr->contexts != NULL) {
	statePtr->contexts->prevPtr = ctxPtr;
    }
    statePtr->contexts = ctxPtr;

    MilterConnRetain(conn);
    MilterConnSetData(conn, ctxPtr);
    return ctxPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCtxDelete, MilterCtxPreserve, MilterCtxRelease --
 *
 *	Delete ends a context: its command, its private data and its hold
 *	on the connection. The memory goes when no callback still runs with
 *	it (Preserve/Release, owner thread only).
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
    if (ctxPtr->prevPtr != NULL) {
	ctxPtr->prevPtr->nextPtr = ctxPtr->nextPtr;
    } else {
	statePtr->contexts = ctxPtr->nextPtr;
    }
    if (ctxPtr->nextPtr != NULL) {
	ctxPtr->nextPtr->prevPtr = ctxPtr->prevPtr;
    }
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

void
MilterCtxPreserve(
    MilterCtx *ctxPtr)
{
    ctxPtr->refs++;
}

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
 * ClosedError --
 *
 *	Reports that the MTA can no longer be reached through this context:
 *	its session ended, or the MTA hung up while a callback ran.
 *
 * Results:
 *	TCL_ERROR.
 *
 * Side effects:
 *	Sets the interpreter's result and errorCode MILTER CONTEXT CLOSED.
 *
 *----------------------------------------------------------------------
 */

static int
ClosedError(
    Tcl_Interp *interp)
{
    Tcl_SetObjResult(interp, Tcl_NewStringObj(
	    "the MTA connection of this context is closed", -1));
    Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "CLOSED", NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * SessionError, ValueError --
 *
 *	Report an error from a session call: "cannot subcommand: msg" with
 *	errorCode MILTER CONTEXT STATE|ACTION|VALUE subcommand (always the
 *	full subcommand name, however it was abbreviated), or the CLOSED
 *	error.
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
SessionError(
    Tcl_Interp *interp,
    int subCmd,
    MilterSessionError err,
    const char *msg)
{
    static const char *const classes[] = {"NONE", "STATE", "ACTION", "VALUE"};

    if (err == MILTER_ERR_CLOSED) {
	return ClosedError(interp);
    }
    Tcl_SetObjResult(interp, Tcl_ObjPrintf("cannot %s: %s",
	    subCommands[subCmd], msg));
    Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", classes[err],
	    subCommands[subCmd], NULL);
    return TCL_ERROR;
}

static int
ValueError(
    Tcl_Interp *interp,
    int subCmd,
    const char *msg)
{
    return SessionError(interp, subCmd, MILTER_ERR_VALUE, msg);
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

	if (++chars > 60) {
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
	    if (ch < 0x20 || ch == 0x7F) {
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
    int subCmd,
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
	    subCommands[subCmd], NULL);
    return TCL_ERROR;
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
    int subCmd,
    unsigned char cmd,
    int useIndex,
    uint32_t index,
    Tcl_Obj *const strObjs[],
    int count)
{
    Tcl_DString ds[3];
    MilterStr strs[3];
    MilterSessionError err = MILTER_ERR_NONE;
    const char *msg = NULL;
    int i, code = TCL_OK;

    for (i = 0; i < count; i++) {
	strs[i].ptr = MilterTextBytes(ctxPtr->statePtr, strObjs[i], &ds[i],
		&strs[i].len);
	if (strs[i].ptr == NULL) {
	    count = i + 1;
	    code = ValueError(interp, subCmd, "strings may not contain NUL");
	    goto done;
	}
    }
    if ((cmd == SMFIR_ADDHEADER || cmd == SMFIR_INSHEADER
	    || cmd == SMFIR_CHGHEADER)
	    && HeaderError(interp, subCmd, strObjs, strs) != TCL_OK) {
	code = TCL_ERROR;
	goto done;
    }
    err = MilterSessionModify(LockSession(ctxPtr), cmd, useIndex,
	    (uint32_t) index, strs, count, &msg);
    MilterConnUnlock(ctxPtr->conn, 0);
    if (err != MILTER_ERR_NONE) {
	code = SessionError(interp, subCmd, err, msg);
    }

  done:
    for (i = 0; i < count; i++) {
	Tcl_DStringFree(&ds[i]);
    }
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * HeaderArgs --
 *
 *	The arguments "name ?index? value" of insheader and chgheader, with
 *	a default index.
 *
 * Results:
 *	A standard Tcl result; the index and the name and value objects.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
HeaderArgs(
    Tcl_Interp *interp,
    int subCmd,
    int objc,
    Tcl_Obj *const objv[],
    uint32_t defaultIndex,
    uint32_t *indexPtr,
    Tcl_Obj **strs)
{
    if (objc != 4 && objc != 5) {
	Tcl_WrongNumArgs(interp, 2, objv, "name ?index? value");
	return TCL_ERROR;
    }
    *indexPtr = defaultIndex;
    if (objc == 5) {
	Tcl_WideInt wide;

	if (Tcl_GetWideIntFromObj(interp, objv[3], &wide) != TCL_OK) {
	    return TCL_ERROR;
	}
	*indexPtr = (uint32_t) wide;
	if (wide < 0 || wide > 0xFFFFFFFFLL) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad header index \"%s\": must be from 0 to 4294967295",
		    Tcl_GetString(objv[3])));
	    Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "VALUE",
		    subCommands[subCmd], NULL);
	    return TCL_ERROR;
	}
    }
    strs[0] = objv[2];
    strs[1] = objv[objc - 1];
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * PrivCommand --
 *
 *	getpriv ?name?, setpriv name ?value?, unsetpriv ?pattern?: a
 *	per-connection table of Tcl values, used like [set] and
 *	[array unset].
 *
 *----------------------------------------------------------------------
 */

static int
PrivCommand(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    int subCmd,
    int objc,
    Tcl_Obj *const objv[])
{
    Tcl_HashTable *tablePtr = &ctxPtr->priv;
    Tcl_HashEntry *hPtr;
    Tcl_HashSearch search;
    int isNew;

    switch (subCmd) {
    case CTX_GETPRIV:
	if (objc > 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "?name?");
	    return TCL_ERROR;
	}
	if (objc == 2) {
	    Tcl_Obj *listObj = Tcl_NewObj();

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
	break;
    case CTX_SETPRIV:
	if (objc != 3 && objc != 4) {
	    Tcl_WrongNumArgs(interp, 2, objv, "name ?value?");
	    return TCL_ERROR;
	}
	if (objc == 4) {
	    hPtr = Tcl_CreateHashEntry(tablePtr, Tcl_GetString(objv[2]),
		    &isNew);
	    Tcl_IncrRefCount(objv[3]);
	    if (!isNew) {
		Tcl_DecrRefCount((Tcl_Obj *) Tcl_GetHashValue(hPtr));
	    }
	    Tcl_SetHashValue(hPtr, objv[3]);
	    Tcl_SetObjResult(interp, objv[3]);
	    return TCL_OK;
	}
	break;
    case CTX_UNSETPRIV: {
	const char *pattern;

	if (objc > 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "?pattern?");
	    return TCL_ERROR;
	}
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
    }

    /*
     * Read one value, as [set name] does.
     */

    hPtr = Tcl_FindHashEntry(tablePtr, Tcl_GetString(objv[2]));
    if (hPtr == NULL) {
	Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		"can't read \"%s\": no such private data",
		Tcl_GetString(objv[2])));
	Tcl_SetErrorCode(interp, "MILTER", "CONTEXT", "PRIV",
		Tcl_GetString(objv[2]), NULL);
	return TCL_ERROR;
    }
    Tcl_SetObjResult(interp, (Tcl_Obj *) Tcl_GetHashValue(hPtr));
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * SetReply --
 *
 *	setreply rcode ?xcode? ?line ...?: with two arguments the second is
 *	the message; with three or more, xcode then one or more lines (a
 *	multi-line reply).
 *
 *----------------------------------------------------------------------
 */

static int
SetReply(
    Tcl_Interp *interp,
    MilterCtx *ctxPtr,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterStr lines[33];
    Tcl_DString ds[33];
    const char *msg, *xcode = "";
    MilterSessionError err;
    int first, count, i, code = TCL_OK;

    if (objc < 3) {
	Tcl_WrongNumArgs(interp, 2, objv, "rcode ?xcode? ?line ...?");
	return TCL_ERROR;
    }
    if (objc == 4) {
	first = 3;
    } else {
	first = 4;
	if (objc > 4) {
	    xcode = Tcl_GetString(objv[3]);
	}
    }
    count = objc > first ? objc - first : 0;
    if (count > 32) {
	return ValueError(interp, CTX_SETREPLY, "a reply has at most 32 lines");
    }
    for (i = 0; i < count; i++) {
	lines[i].ptr = MilterTextBytes(ctxPtr->statePtr, objv[first + i],
		&ds[i], &lines[i].len);
	if (lines[i].ptr == NULL) {
	    count = i + 1;
	    code = ValueError(interp, CTX_SETREPLY,
		    "a reply line may not contain CR, LF or NUL");
	    goto done;
	}
    }
    err = MilterSessionSetReply(LockSession(ctxPtr),
	    Tcl_GetString(objv[2]), xcode, lines, count, &msg);
    MilterConnUnlock(ctxPtr->conn, 0);
    if (err != MILTER_ERR_NONE) {
	code = SessionError(interp, CTX_SETREPLY, err, msg);
    }

  done:
    for (i = 0; i < count; i++) {
	Tcl_DStringFree(&ds[i]);
    }
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * CtxObjCmd --
 *
 *	$ctx subcommand ?arg ...?
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	See the subcommands.
 *
 *----------------------------------------------------------------------
 */

static int
CtxObjCmd(
    ClientData clientData,
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterCtx *ctxPtr = clientData;
    MilterState *statePtr = ctxPtr->statePtr;
    MilterSessionError err;
    const char *msg;
    Tcl_Obj *strs[2];
    uint32_t index;
    int subCmd;

    if (objc < 2) {
	Tcl_WrongNumArgs(interp, 1, objv, "subcommand ?arg ...?");
	return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[1], subCommands, "subcommand", 0,
	    &subCmd) != TCL_OK) {
	return TCL_ERROR;
    }
    if (ctxPtr->deleted || ctxPtr->conn == NULL) {
	return ClosedError(interp);
    }

    switch ((enum SubCommand) subCmd) {
    case CTX_GETPRIV:
    case CTX_SETPRIV:
    case CTX_UNSETPRIV:
	return PrivCommand(interp, ctxPtr, subCmd, objc, objv);

    /*
     * $ctx getsymval symbol
     *	The value of a macro the MTA sent ("" if none); x and {x} alike.
     */

    case CTX_GETSYMVAL: {
	MilterStr value;
	Tcl_Size len;
	const char *name;

	if (objc != 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "symbol");
	    return TCL_ERROR;
	}
	name = Tcl_GetStringFromObj(objv[2], &len);
	if (MilterSessionMacro(MilterConnLock(ctxPtr->conn), name,
		(size_t) len, &value)) {
	    Tcl_SetObjResult(interp, MilterNewTextObj(statePtr, value.ptr,
		    value.len));
	}
	MilterConnUnlock(ctxPtr->conn, 0);
	return TCL_OK;
    }

    /*
     * $ctx setreply rcode ?xcode? ?line ...?
     *	The SMTP reply for the next reject or tempfail of its class.
     */

    case CTX_SETREPLY:
	return SetReply(interp, ctxPtr, objc, objv);

    /*
     * $ctx addheader name value
     *	Append a header (eom only).
     */

    case CTX_ADDHEADER:
	if (objc != 4) {
	    Tcl_WrongNumArgs(interp, 2, objv, "name value");
	    return TCL_ERROR;
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_ADDHEADER, 0, 0, objv + 2,
		2);

    /*
     * $ctx insheader name ?index? value
     *	Insert a header before the index-th (0 = very top) (eom only).
     */

    case CTX_INSHEADER:
	if (HeaderArgs(interp, subCmd, objc, objv, 0, &index, strs) != TCL_OK) {
	    return TCL_ERROR;
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_INSHEADER, 1, index, strs,
		2);

    /*
     * $ctx chgheader name ?index? value
     *	Change the index-th (1-based) header of that name; an empty value
     *	deletes it; past the last one, the header is added (eom only).
     */

    case CTX_CHGHEADER:
	if (HeaderArgs(interp, subCmd, objc, objv, 1, &index, strs) != TCL_OK) {
	    return TCL_ERROR;
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_CHGHEADER, 1, index, strs,
		2);

    /*
     * $ctx addrcpt rcpt ?esmtpArgs?
     *	Add a recipient, with ESMTP arguments if given (eom only).
     */

    case CTX_ADDRCPT:
	if (objc != 3 && objc != 4) {
	    Tcl_WrongNumArgs(interp, 2, objv, "rcpt ?esmtpArgs?");
	    return TCL_ERROR;
	}
	if (objc == 4 && Tcl_GetCharLength(objv[3]) > 0) {
	    return Modify(interp, ctxPtr, subCmd, SMFIR_ADDRCPT_PAR, 0, 0,
		    objv + 2, 2);
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_ADDRCPT, 0, 0, objv + 2, 1);

    /*
     * $ctx delrcpt rcpt
     *	Remove a recipient, written exactly as the MTA sent it (eom only).
     */

    case CTX_DELRCPT:
	if (objc != 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "rcpt");
	    return TCL_ERROR;
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_DELRCPT, 0, 0, objv + 2, 1);

    /*
     * $ctx chgfrom address ?esmtpArgs?
     *	Change the envelope sender (eom only).
     */

    case CTX_CHGFROM:
	if (objc != 3 && objc != 4) {
	    Tcl_WrongNumArgs(interp, 2, objv, "address ?esmtpArgs?");
	    return TCL_ERROR;
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_CHGFROM, 0, 0, objv + 2,
		objc == 4 && Tcl_GetCharLength(objv[3]) > 0 ? 2 : 1);

    /*
     * $ctx quarantine reason
     *	Hold the message in the MTA's quarantine (eom only).
     */

    case CTX_QUARANTINE:
	if (objc != 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "reason");
	    return TCL_ERROR;
	}
	if (Tcl_GetCharLength(objv[2]) == 0) {
	    return ValueError(interp, subCmd, "the reason may not be empty");
	}
	return Modify(interp, ctxPtr, subCmd, SMFIR_QUARANTINE, 0, 0,
		objv + 2, 1);

    /*
     * $ctx replacebody data
     *	Append to the replacement body; calls add up (eom only).
     */

    case CTX_REPLACEBODY: {
	Tcl_DString ds;
	const unsigned char *bytes;
	size_t len;

	if (objc != 3) {
	    Tcl_WrongNumArgs(interp, 2, objv, "data");
	    return TCL_ERROR;
	}
	bytes = MilterBodyBytes(statePtr, objv[2], &ds, &len);
	err = MilterSessionReplaceBody(LockSession(ctxPtr), bytes,
		len, &msg);
	MilterConnUnlock(ctxPtr->conn, 0);
	Tcl_DStringFree(&ds);
	if (err != MILTER_ERR_NONE) {
	    return SessionError(interp, subCmd, err, msg);
	}
	return TCL_OK;
    }

    /*
     * $ctx progress
     *	Tell the MTA, now, that work goes on; it restarts its timeout
     *	(eom only).
     */

    case CTX_PROGRESS:
	if (objc != 2) {
	    Tcl_WrongNumArgs(interp, 2, objv, NULL);
	    return TCL_ERROR;
	}
	err = MilterSessionProgress(LockSession(ctxPtr), &msg);
	MilterConnUnlock(ctxPtr->conn, 1);
	if (err != MILTER_ERR_NONE) {
	    return SessionError(interp, subCmd, err, msg);
	}
	return TCL_OK;

    /*
     * $ctx setsymlist stage macroList
     *	Ask the MTA for exactly these macros at a stage (negotiate only).
     */

    case CTX_SETSYMLIST: {
	Tcl_Obj **elemv;
	Tcl_Size elemc, i, len;
	Tcl_DString list;
	const char *name;
	int stage;

	if (objc != 4) {
	    Tcl_WrongNumArgs(interp, 2, objv, "stage macroList");
	    return TCL_ERROR;
	}
	if (Tcl_GetIndexFromObj(interp, objv[2], stageNames, "stage", 0,
		&stage) != TCL_OK
		|| Tcl_ListObjGetElements(interp, objv[3], &elemc, &elemv)
		!= TCL_OK) {
	    return TCL_ERROR;
	}
	Tcl_DStringInit(&list);
	for (i = 0; i < elemc; i++) {
	    if (i > 0) {
		Tcl_DStringAppend(&list, " ", 1);
	    }
	    name = Tcl_GetStringFromObj(elemv[i], &len);
	    if (len > 1 && name[0] != '{') {
		/* Long macro names travel in braces: {auth_authen}. */
		Tcl_DStringAppend(&list, "{", 1);
		Tcl_DStringAppend(&list, name, len);
		Tcl_DStringAppend(&list, "}", 1);
	    } else {
		Tcl_DStringAppend(&list, name, len);
	    }
	}
	err = MilterSessionSetSymlist(LockSession(ctxPtr), stage,
		Tcl_DStringValue(&list), &msg);
	MilterConnUnlock(ctxPtr->conn, 0);
	Tcl_DStringFree(&list);
	if (err != MILTER_ERR_NONE) {
	    return SessionError(interp, subCmd, err, msg);
	}
	return TCL_OK;
    }
    }
    return TCL_OK;
}
