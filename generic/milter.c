/*
 * milter.c --
 *
 *	Package initialisation and the milter ensemble's configuration
 *	commands: milter configure, register, status and address. Running
 *	and stopping are in milterLoop.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <stdio.h>
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
    "SMFIS_CONTINUE", "SMFIS_REJECT", "SMFIS_DISCARD", "SMFIS_ACCEPT",
    "SMFIS_TEMPFAIL", "SMFIS_SKIP", NULL
};
const int milterCodeValues[] = {
    MILTER_CONTINUE, MILTER_REJECT, MILTER_DISCARD, MILTER_ACCEPT,
    MILTER_TEMPFAIL, MILTER_SKIP
};

/*
 * Options of milter configure. Those marked STATIC cannot change while the
 * milter is running.
 */

static const char *const optionNames[] = {
    "-backlog", "-connection", "-coroutines", "-debuglevel", "-defaultreply",
    "-draintimeout", "-encoding", "-leadingspace", "-logcommand",
    "-logdestination", "-maxconnections", "-maxdatasize", "-metrics",
    "-name",
    "-signals", "-socketgroup", "-socketmode", "-socketowner",
    "-syslogfacility", "-syslogident", "-timeout", "-workerinit",
    "-workers", NULL
};
enum Option {
    OPT_BACKLOG, OPT_CONNECTION, OPT_COROUTINES, OPT_DEBUGLEVEL,
    OPT_DEFAULTREPLY,
    OPT_DRAINTIMEOUT, OPT_ENCODING, OPT_LEADINGSPACE, OPT_LOGCOMMAND,
    OPT_LOGDESTINATION, OPT_MAXCONNECTIONS, OPT_MAXDATASIZE, OPT_METRICS,
    OPT_NAME,
    OPT_SIGNALS, OPT_SOCKETGROUP, OPT_SOCKETMODE, OPT_SOCKETOWNER,
    OPT_SYSLOGFACILITY, OPT_SYSLOGIDENT, OPT_TIMEOUT, OPT_WORKERINIT,
    OPT_WORKERS
};
static const int optionIsStatic[] = {
    1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1
};

/*
 * Values of -logdestination.
 */

static const char *const destinationNames[] = {"stderr", "syslog", NULL};

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
    Tcl_Interp *interp)
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
    statePtr->timeout = 7210;
    statePtr->encoding = Tcl_GetEncoding(NULL, "utf-8");
    statePtr->asciiCompatible = 1;
    statePtr->defaultReply = MILTER_TEMPFAIL;
    statePtr->drainTimeout = 5000;
    statePtr->socketMode = 0660;
    statePtr->maxDataSize = MILTER_CHUNK_SIZE;
    statePtr->socketUid = statePtr->socketGid = -1;
    statePtr->logTail = &statePtr->logHead;
    statePtr->syslogFd = -1;
    while (strcmp(milterFacilityNames[statePtr->syslogFacility], "mail")) {
	statePtr->syslogFacility++;
    }
    statePtr->ownStats = MilterStatsNew();
    statePtr->stats = statePtr->ownStats;
    Tcl_SetAssocData(interp, "milter", DeleteState, statePtr);
    Tcl_CreateThreadExitHandler(ThreadExit, statePtr);
    return statePtr;
}

/*
 *----------------------------------------------------------------------
 *
 * DeleteState, ThreadExit, FreeState --
 *
 *	The interpreter is deleted, or its thread exits without deleting
 *	it: stop the milter hard (no more callbacks) and free everything
 *	once nothing on the stack uses the state any more.
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
    ClientData clientData,
    Tcl_Interp *interp)		/* Not used. */
{
    MilterState *statePtr = clientData;

    (void) interp;
    Tcl_DeleteThreadExitHandler(ThreadExit, statePtr);
    MilterShutdown(statePtr);
    statePtr->interp = NULL;
    Tcl_EventuallyFree(statePtr, FreeState);
}

static void
ThreadExit(
    ClientData clientData)
{
    MilterShutdown(clientData);
}

static void
FreeState(
    char *blockPtr)
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
    Tcl_FreeEncoding(statePtr->encoding);
    MilterCoroFree(statePtr);
    MilterStatsFree(statePtr->ownStats);
    Tcl_MutexFinalize(&statePtr->lock);
    ckfree(blockPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * Configuration helpers --
 *
 *	OptionValue returns an option's current value; a Pending record
 *	holds validated new values until all of them are known good.
 *
 *----------------------------------------------------------------------
 */

typedef struct Pending {
    int set[sizeof(optionIsStatic) / sizeof(int)];
    Tcl_Obj *obj[sizeof(optionIsStatic) / sizeof(int)];
    int num[sizeof(optionIsStatic) / sizeof(int)];
    Tcl_Encoding encoding;
    Tcl_Obj *signalsObj;	/* -signals, canonical; NULL when empty. */
} Pending;

/*
 * Maybe: an option whose value is an object or nothing.
 */

#define OBJ_OR_EMPTY(objPtr) ((objPtr) != NULL ? (objPtr) : Tcl_NewObj())

static Tcl_Obj *
OptionValue(
    MilterState *statePtr,
    int option)
{
    switch ((enum Option) option) {
    case OPT_BACKLOG:	return Tcl_NewIntObj(statePtr->backlog);
    case OPT_CONNECTION: return statePtr->connectionObj;
    case OPT_COROUTINES: return Tcl_NewBooleanObj(statePtr->coroutines);
    case OPT_DEBUGLEVEL: return Tcl_NewIntObj(statePtr->debugLevel);
    case OPT_DEFAULTREPLY: {
	int i;

	for (i = 0; milterCodeNames[i] != NULL; i++) {
	    if (milterCodeValues[i] == statePtr->defaultReply) {
		break;
	    }
	}
	return Tcl_NewStringObj(milterCodeNames[i], -1);
    }
    case OPT_DRAINTIMEOUT:
	return Tcl_NewDoubleObj(statePtr->drainTimeout / 1000.0);
    case OPT_ENCODING:
	return Tcl_NewStringObj(Tcl_GetEncodingName(statePtr->encoding), -1);
    case OPT_LEADINGSPACE: return Tcl_NewBooleanObj(statePtr->leadingSpace);
    case OPT_LOGCOMMAND: return OBJ_OR_EMPTY(statePtr->logCommandObj);
    case OPT_LOGDESTINATION:
	return Tcl_NewStringObj(destinationNames[statePtr->logSyslog], -1);
    case OPT_MAXCONNECTIONS: return Tcl_NewIntObj(statePtr->maxConnections);
    case OPT_MAXDATASIZE: return Tcl_NewIntObj(statePtr->maxDataSize);
    case OPT_METRICS:	return OBJ_OR_EMPTY(statePtr->metricsObj);
    case OPT_NAME:	return statePtr->nameObj;
    case OPT_SIGNALS:	return OBJ_OR_EMPTY(statePtr->signalsObj);
    case OPT_SOCKETGROUP: return OBJ_OR_EMPTY(statePtr->socketGroupObj);
    case OPT_SOCKETMODE:
	return Tcl_ObjPrintf("0%o", (unsigned) statePtr->socketMode);
    case OPT_SOCKETOWNER: return OBJ_OR_EMPTY(statePtr->socketOwnerObj);
    case OPT_SYSLOGFACILITY:
	return Tcl_NewStringObj(
		milterFacilityNames[statePtr->syslogFacility], -1);
    case OPT_SYSLOGIDENT: return OBJ_OR_EMPTY(statePtr->syslogIdentObj);
    case OPT_TIMEOUT:	return Tcl_NewIntObj(statePtr->timeout);
    case OPT_WORKERINIT:
	return statePtr->workerInitObj ? statePtr->workerInitObj
		: Tcl_NewObj();
    case OPT_WORKERS:	return Tcl_NewIntObj(statePtr->workers);
    }
    return Tcl_NewObj();
}

static int
BadValue(
    Tcl_Interp *interp,
    int option,
    Tcl_Obj *valueObj,
    const char *expected)
{
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "bad value \"%s\" for %s: must be %s", Tcl_GetString(valueObj),
	    optionNames[option], expected));
    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE",
	    optionNames[option], NULL);
    return TCL_ERROR;
}

static int
GetIntInRange(
    Tcl_Interp *interp,
    int option,
    Tcl_Obj *valueObj,
    int min,
    int max,
    const char *expected,
    int *valuePtr)
{
    if (Tcl_GetIntFromObj(NULL, valueObj, valuePtr) != TCL_OK
	    || *valuePtr < min || *valuePtr > max) {
	return BadValue(interp, option, valueObj, expected);
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * LookupId --
 *
 *	A -socketgroup or -socketowner value as a group or user id: a
 *	decimal number as it is, else the id of that group or user name.
 *
 * Results:
 *	1 with the id in *idPtr (-1 for an empty value); 0 if the name is
 *	unknown or the number out of range.
 *
 * Side effects:
 *	Reads the group or user database.
 *
 *----------------------------------------------------------------------
 */

static int
LookupId(
    const char *value,
    int isGroup,
    int *idPtr)
{
    char buf[16384], *end;
    long number;

    *idPtr = -1;
    if (*value == '\0') {
	return 1;
    }
    if (*value >= '0' && *value <= '9') {
	number = strtol(value, &end, 10);
	if (*end != '\0' || number < 0 || number >= 0x7fffffffL) {
	    return 0;
	}
	*idPtr = (int) number;
	return 1;
    }
    if (isGroup) {
	struct group gr, *grPtr = NULL;

	if (getgrnam_r(value, &gr, buf, sizeof(buf), &grPtr) != 0
		|| grPtr == NULL) {
	    return 0;
	}
	*idPtr = (int) grPtr->gr_gid;
    } else {
	struct passwd pw, *pwPtr = NULL;

	if (getpwnam_r(value, &pw, buf, sizeof(buf), &pwPtr) != 0
		|| pwPtr == NULL) {
	    return 0;
	}
	*idPtr = (int) pwPtr->pw_uid;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * ValidateOption --
 *
 *	Checks one option value and stores it in the Pending record.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with a message and errorCode
 *	MILTER CONFIG VALUE option.
 *
 * Side effects:
 *	May get an encoding (released by the caller on error).
 *
 *----------------------------------------------------------------------
 */

static int
ValidateOption(
    Tcl_Interp *interp,
    int option,
    Tcl_Obj *valueObj,
    Pending *pPtr)
{
    int *nPtr = &pPtr->num[option];
    double seconds;

    pPtr->set[option] = 1;
    pPtr->obj[option] = valueObj;
    switch ((enum Option) option) {
    case OPT_BACKLOG:
	return GetIntInRange(interp, option, valueObj, 0, 65535,
		"an integer from 0 to 65535", nPtr);
    case OPT_CONNECTION: {
	char err[400];

	if (!MilterSocketCheckSpec(Tcl_GetString(valueObj), err,
		sizeof(err))) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad value for -connection: %s", err));
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE",
		    "-connection", NULL);
	    return TCL_ERROR;
	}
	return TCL_OK;
    }
    case OPT_COROUTINES:
	if (Tcl_GetBooleanFromObj(NULL, valueObj, nPtr) != TCL_OK) {
	    return BadValue(interp, option, valueObj, "a boolean");
	}
	return TCL_OK;
    case OPT_DEBUGLEVEL:
	return GetIntInRange(interp, option, valueObj, 0, 6,
		"an integer from 0 to 6", nPtr);
    case OPT_DEFAULTREPLY: {
	int index;

	if (Tcl_GetIndexFromObjStruct(NULL, valueObj, milterCodeNames,
		sizeof(char *), "code", TCL_EXACT, &index) != TCL_OK
		|| milterCodeValues[index] == MILTER_SKIP) {
	    return BadValue(interp, option, valueObj, "SMFIS_CONTINUE, "
		    "SMFIS_REJECT, SMFIS_DISCARD, SMFIS_ACCEPT or "
		    "SMFIS_TEMPFAIL");
	}
	*nPtr = milterCodeValues[index];
	return TCL_OK;
    }
    case OPT_DRAINTIMEOUT:
	if (Tcl_GetDoubleFromObj(NULL, valueObj, &seconds) != TCL_OK
		|| seconds < 0 || seconds > 86400) {
	    return BadValue(interp, option, valueObj,
		    "a number of seconds from 0 to 86400");
	}
	*nPtr = (int) (seconds * 1000);
	return TCL_OK;
    case OPT_ENCODING:
	if (pPtr->encoding != NULL) {
	    Tcl_FreeEncoding(pPtr->encoding);
	}
	pPtr->encoding = Tcl_GetEncoding(NULL, Tcl_GetString(valueObj));
	if (pPtr->encoding == NULL) {
	    return BadValue(interp, option, valueObj, "a known encoding");
	}
	return TCL_OK;
    case OPT_LEADINGSPACE:
	if (Tcl_GetBooleanFromObj(NULL, valueObj, nPtr) != TCL_OK) {
	    return BadValue(interp, option, valueObj, "a boolean");
	}
	return TCL_OK;
    case OPT_LOGCOMMAND: {
	Tcl_Size len;

	if (Tcl_ListObjLength(NULL, valueObj, &len) != TCL_OK) {
	    return BadValue(interp, option, valueObj, "a command prefix");
	}
	*nPtr = len;
	return TCL_OK;
    }
    case OPT_LOGDESTINATION:
	if (Tcl_GetIndexFromObj(NULL, valueObj, destinationNames,
		"destination", TCL_EXACT, nPtr) != TCL_OK) {
	    return BadValue(interp, option, valueObj, "stderr or syslog");
	}
	return TCL_OK;
    case OPT_MAXCONNECTIONS:
	return GetIntInRange(interp, option, valueObj, 0, 1000000,
		"an integer from 0 to 1000000", nPtr);
    case OPT_MAXDATASIZE:
	return GetIntInRange(interp, option, valueObj, MILTER_CHUNK_SIZE,
		64 * 1024 * 1024, "an integer from 65535 to 67108864", nPtr);
    case OPT_METRICS: {
	const char *spec = Tcl_GetString(valueObj);
	char err[400];

	if (*spec == '\0') {
	    return TCL_OK;
	}
	if (strncmp(spec, "fd:", 3) == 0 || strcmp(spec, "systemd") == 0) {
	    return BadValue(interp, option, valueObj,
		    "empty or an inet:, inet6: or unix: spec");
	}
	if (!MilterSocketCheckSpec(spec, err, sizeof(err))) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad value for -metrics: %s", err));
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE",
		    "-metrics", NULL);
	    return TCL_ERROR;
	}
	return TCL_OK;
    }
    case OPT_NAME:
	return TCL_OK;
    case OPT_SIGNALS: {
	Tcl_Obj *dictObj;

	if (MilterSignalCheck(interp, valueObj, &dictObj) != TCL_OK) {
	    return TCL_ERROR;
	}
	if (dictObj != NULL) {
	    Tcl_IncrRefCount(dictObj);
	}
	if (pPtr->signalsObj != NULL) {
	    Tcl_DecrRefCount(pPtr->signalsObj);
	}
	pPtr->signalsObj = dictObj;
	return TCL_OK;
    }
    case OPT_SOCKETGROUP:
	if (!LookupId(Tcl_GetString(valueObj), 1, nPtr)) {
	    return BadValue(interp, option, valueObj,
		    "a known group name or a group id");
	}
	return TCL_OK;
    case OPT_SOCKETOWNER:
	if (!LookupId(Tcl_GetString(valueObj), 0, nPtr)) {
	    return BadValue(interp, option, valueObj,
		    "a known user name or a user id");
	}
	return TCL_OK;
    case OPT_SYSLOGFACILITY:
	if (Tcl_GetIndexFromObj(NULL, valueObj, milterFacilityNames,
		"facility", TCL_EXACT, nPtr) != TCL_OK) {
	    return BadValue(interp, option, valueObj, "auth, authpriv, "
		    "cron, daemon, ftp, kern, local0 to local7, lpr, mail, "
		    "news, syslog, user or uucp");
	}
	return TCL_OK;
    case OPT_SYSLOGIDENT:
	return TCL_OK;
    case OPT_SOCKETMODE: {
	const char *s = Tcl_GetString(valueObj);
	char *end;
	long mode = strtol(s, &end, 8);

	if (*s == '\0' || *end != '\0' || mode < 0 || mode > 0777) {
	    return BadValue(interp, option, valueObj,
		    "an octal file mode such as 0660");
	}
	*nPtr = (int) mode;
	return TCL_OK;
    }
    case OPT_TIMEOUT:
	return GetIntInRange(interp, option, valueObj, 0, 100000000,
		"a non-negative number of seconds", nPtr);
    case OPT_WORKERINIT:
	return TCL_OK;
    case OPT_WORKERS:
	return GetIntInRange(interp, option, valueObj, 0, 1024,
		"an integer from 0 to 1024", nPtr);
    }
    return TCL_OK;
}

static void
ReplaceObj(
    Tcl_Obj **slotPtr,
    Tcl_Obj *newObj)
{
    if (newObj != NULL) {
	Tcl_IncrRefCount(newObj);
    }
    if (*slotPtr != NULL) {
	Tcl_DecrRefCount(*slotPtr);
    }
    *slotPtr = newObj;
}

/*
 *----------------------------------------------------------------------
 *
 * ApplyPending --
 *
 *	Commits validated option values.
 *
 *----------------------------------------------------------------------
 */

static void
ApplyPending(
    MilterState *statePtr,
    Pending *pPtr)
{
    int option;

    for (option = 0; optionNames[option] != NULL; option++) {
	int n = pPtr->num[option];

	if (!pPtr->set[option]) {
	    continue;
	}
	switch ((enum Option) option) {
	case OPT_BACKLOG:	statePtr->backlog = n;		break;
	case OPT_CONNECTION:
	    ReplaceObj(&statePtr->connectionObj, pPtr->obj[option]);
	    break;
	case OPT_COROUTINES:	statePtr->coroutines = n;	break;
	case OPT_DEBUGLEVEL:
	    statePtr->debugLevel = n;
	    if (statePtr->server != NULL) {
		MilterServerSetDebug(statePtr->server, n);
	    }
	    break;
	case OPT_DEFAULTREPLY:	statePtr->defaultReply = n;	break;
	case OPT_DRAINTIMEOUT:	statePtr->drainTimeout = n;	break;
	case OPT_ENCODING:
	    MilterUseEncoding(statePtr, pPtr->encoding);
	    pPtr->encoding = NULL;
	    break;
	case OPT_LEADINGSPACE:	statePtr->leadingSpace = n;	break;
	case OPT_LOGCOMMAND:
	    ReplaceObj(&statePtr->logCommandObj,
		    n > 0 ? pPtr->obj[option] : NULL);
	    Tcl_MutexLock(&statePtr->lock);
	    statePtr->useLogCommand = n > 0;
	    Tcl_MutexUnlock(&statePtr->lock);
	    break;
	case OPT_LOGDESTINATION:
	    Tcl_MutexLock(&statePtr->lock);
	    statePtr->logSyslog = n;
	    Tcl_MutexUnlock(&statePtr->lock);
	    break;
	case OPT_MAXCONNECTIONS: statePtr->maxConnections = n;	break;
	case OPT_MAXDATASIZE:	statePtr->maxDataSize = n;	break;
	case OPT_METRICS:
	    ReplaceObj(&statePtr->metricsObj,
		    Tcl_GetCharLength(pPtr->obj[option]) > 0
		    ? pPtr->obj[option] : NULL);
	    break;
	case OPT_NAME:
	    ReplaceObj(&statePtr->nameObj, pPtr->obj[option]);
	    Tcl_MutexLock(&statePtr->lock);
	    snprintf(statePtr->logName, sizeof(statePtr->logName), "%s",
		    Tcl_GetString(statePtr->nameObj));
	    Tcl_MutexUnlock(&statePtr->lock);
	    break;
	case OPT_SIGNALS:
	    ReplaceObj(&statePtr->signalsObj, pPtr->signalsObj);
	    MilterSignalUpdate(statePtr);
	    break;
	case OPT_SOCKETGROUP:
	    ReplaceObj(&statePtr->socketGroupObj,
		    n >= 0 ? pPtr->obj[option] : NULL);
	    statePtr->socketGid = n;
	    break;
	case OPT_SOCKETMODE:	statePtr->socketMode = n;	break;
	case OPT_SOCKETOWNER:
	    ReplaceObj(&statePtr->socketOwnerObj,
		    n >= 0 ? pPtr->obj[option] : NULL);
	    statePtr->socketUid = n;
	    break;
	case OPT_SYSLOGFACILITY:
	    Tcl_MutexLock(&statePtr->lock);
	    statePtr->syslogFacility = n;
	    Tcl_MutexUnlock(&statePtr->lock);
	    break;
	case OPT_SYSLOGIDENT:
	    ReplaceObj(&statePtr->syslogIdentObj,
		    Tcl_GetCharLength(pPtr->obj[option]) > 0
		    ? pPtr->obj[option] : NULL);
	    Tcl_MutexLock(&statePtr->lock);
	    snprintf(statePtr->syslogIdent, sizeof(statePtr->syslogIdent),
		    "%s", Tcl_GetString(pPtr->obj[option]));
	    Tcl_MutexUnlock(&statePtr->lock);
	    break;
	case OPT_TIMEOUT:	statePtr->timeout = n;		break;
	case OPT_WORKERINIT:
	    ReplaceObj(&statePtr->workerInitObj,
		    Tcl_GetCharLength(pPtr->obj[option]) > 0
		    ? pPtr->obj[option] : NULL);
	    break;
	case OPT_WORKERS:	statePtr->workers = n;		break;
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * RefuseInWorker --
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

static int
RefuseInWorker(
    Tcl_Interp *interp,
    const char *what)
{
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "a worker interpreter cannot %s: the owner does", what));
    Tcl_SetErrorCode(interp, "MILTER", "STATE", "WORKER", NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * ConfigureObjCmd --
 *
 *	milter configure ?-option ?value? ...?
 *
 *	No arguments: every option and its value. One option: its value.
 *	Pairs: all values are checked before any is set.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Changes the configuration.
 *
 *----------------------------------------------------------------------
 */

static int
ConfigureObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    Pending pending;
    int i, option;

    (void) clientData;
    if (objc == 1) {
	Tcl_Obj *resultObj = Tcl_NewObj();

	for (option = 0; optionNames[option] != NULL; option++) {
	    Tcl_ListObjAppendElement(NULL, resultObj,
		    Tcl_NewStringObj(optionNames[option], -1));
	    Tcl_ListObjAppendElement(NULL, resultObj,
		    OptionValue(statePtr, option));
	}
	Tcl_SetObjResult(interp, resultObj);
	return TCL_OK;
    }
    if (objc == 2) {
	if (Tcl_GetIndexFromObj(interp, objv[1], optionNames, "option", 0,
		&option) != TCL_OK) {
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "OPTION",
		    Tcl_GetString(objv[1]), NULL);
	    return TCL_ERROR;
	}
	Tcl_SetObjResult(interp, OptionValue(statePtr, option));
	return TCL_OK;
    }
    if (objc % 2 == 0) {
	Tcl_WrongNumArgs(interp, 1, objv, "?-option value ...?");
	return TCL_ERROR;
    }
    if (statePtr->workerPtr != NULL) {
	return RefuseInWorker(interp, "change the configuration");
    }

    memset(&pending, 0, sizeof(pending));
    for (i = 1; i < objc; i += 2) {
	if (Tcl_GetIndexFromObj(interp, objv[i], optionNames, "option", 0,
		&option) != TCL_OK) {
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "OPTION",
		    Tcl_GetString(objv[i]), NULL);
	    goto error;
	}
	if (optionIsStatic[option] && statePtr->status != MILTER_IDLE) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "cannot change %s while the milter is running",
		    optionNames[option]));
	    Tcl_SetErrorCode(interp, "MILTER", "STATE", "RUNNING", NULL);
	    goto error;
	}
	if (ValidateOption(interp, option, objv[i+1], &pending) != TCL_OK) {
	    goto error;
	}
    }
    ApplyPending(statePtr, &pending);
    MilterPoolSync(statePtr);
    if (pending.signalsObj != NULL) {
	Tcl_DecrRefCount(pending.signalsObj);
    }
    return TCL_OK;

  error:
    if (pending.encoding != NULL) {
	Tcl_FreeEncoding(pending.encoding);
    }
    if (pending.signalsObj != NULL) {
	Tcl_DecrRefCount(pending.signalsObj);
    }
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * RegisterObjCmd --
 *
 *	milter register EVENT ?COMMAND?
 *
 *	Sets (or with "" removes) the callback for an event, or returns it.
 *	Callbacks may change at any time; connections already negotiated
 *	keep the events they asked the MTA for.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Changes the callback table and the events new connections ask for.
 *
 *----------------------------------------------------------------------
 */

static int
RegisterObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    int event;
    Tcl_Size len;

    (void) clientData;
    if (objc != 2 && objc != 3) {
	Tcl_WrongNumArgs(interp, 1, objv, "event ?command?");
	return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[1], milterEventNames, "event", 0,
	    &event) != TCL_OK) {
	Tcl_SetErrorCode(interp, "MILTER", "REGISTER", "EVENT",
		Tcl_GetString(objv[1]), NULL);
	return TCL_ERROR;
    }
    if (objc == 2) {
	if (statePtr->callbacks[event] != NULL) {
	    Tcl_SetObjResult(interp, statePtr->callbacks[event]);
	}
	return TCL_OK;
    }
    if (statePtr->workerPtr != NULL) {
	return RefuseInWorker(interp, "register callbacks");
    }
    if (Tcl_ListObjLength(interp, objv[2], &len) != TCL_OK) {
	return TCL_ERROR;
    }
    ReplaceObj(&statePtr->callbacks[event], len > 0 ? objv[2] : NULL);
    if (len > 0) {
	statePtr->wanted |= MILTER_EVBIT(event);
    } else {
	statePtr->wanted &= ~MILTER_EVBIT(event);
    }
    if (statePtr->server != NULL) {
	MilterServerSetWanted(statePtr->server, statePtr->wanted);
    }
    MilterPoolSync(statePtr);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * StatusObjCmd, AddressObjCmd --
 *
 *	milter status: idle, running or draining.
 *	milter address ?-metrics?: the spec actually listened on (with the
 *	real port when port 0 was configured), or "" when idle; with
 *	-metrics, the same for the -metrics socket ("" when there is none).
 *
 *----------------------------------------------------------------------
 */

static int
StatusObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    static const char *const names[] = {"idle", "running", "draining"};
    MilterState *statePtr = MilterGetState(interp);

    (void) clientData;
    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    if (statePtr->status == MILTER_RUNNING
	    && MilterServerStopping(statePtr->server)) {
	statePtr->status = MILTER_DRAINING;	/* Stopped from elsewhere. */
    }
    Tcl_SetObjResult(interp, Tcl_NewStringObj(names[statePtr->status], -1));
    return TCL_OK;
}

static int
AddressObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    static const char *const addressOptions[] = {"-metrics", NULL};
    MilterState *statePtr = MilterGetState(interp);
    int index;

    (void) clientData;
    if (objc != 1 && objc != 2) {
	Tcl_WrongNumArgs(interp, 1, objv, "?-metrics?");
	return TCL_ERROR;
    }
    if (objc == 2 && Tcl_GetIndexFromObj(interp, objv[1], addressOptions,
	    "option", 0, &index) != TCL_OK) {
	Tcl_SetErrorCode(interp, "MILTER", "ADDRESS", "OPTION",
		Tcl_GetString(objv[1]), NULL);
	return TCL_ERROR;
    }
    if (statePtr->server != NULL) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(objc == 2
		? MilterServerMetricsAddress(statePtr->server)
		: MilterServerAddress(statePtr->server), -1));
    }
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * Milter_Init --
 *
 *	Package entry point: creates ::milter::{configure register start
 *	main stop status address stats sessions} and the ensemble
 *	::milter.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Creates commands; registers a process exit handler once.
 *
 *----------------------------------------------------------------------
 */

int
Milter_Init(
    Tcl_Interp *interp)
{
    static const struct {
	const char *name;
	Tcl_ObjCmdProc *proc;
    } commands[] = {
	{"::milter::address", AddressObjCmd},
	{"::milter::configure", ConfigureObjCmd},
	{"::milter::main", MilterMainObjCmd},
	{"::milter::register", RegisterObjCmd},
	{"::milter::sessions", MilterSessionsObjCmd},
	{"::milter::start", MilterStartObjCmd},
	{"::milter::stats", MilterStatsObjCmd},
	{"::milter::reload", MilterReloadObjCmd},
	{"::milter::status", StatusObjCmd},
	{"::milter::stop", MilterStopObjCmd},
    };
    Tcl_Namespace *nsPtr;
    size_t i;

    if (Tcl_InitStubs(interp, "8.6", 0) == NULL) {
	return TCL_ERROR;
    }
    if (Tcl_GetVar2Ex(interp, "tcl_platform", "threaded",
	    TCL_GLOBAL_ONLY) == NULL) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"TclMilter needs a Tcl built with threads", -1));
	Tcl_SetErrorCode(interp, "MILTER", "INIT", "THREADS", NULL);
	return TCL_ERROR;
    }
    nsPtr = Tcl_FindNamespace(interp, "::milter", NULL, TCL_GLOBAL_ONLY);
    if (nsPtr == NULL) {
	nsPtr = Tcl_CreateNamespace(interp, "::milter", NULL, NULL);
	if (nsPtr == NULL) {
	    return TCL_ERROR;
	}
    }

    /*
     * Export the commands by name: context commands (::milter::ctxN) live
     * in the same namespace and must not become subcommands.
     */

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
	Tcl_CreateObjCommand(interp, commands[i].name, commands[i].proc,
		NULL, NULL);
	if (Tcl_Export(interp, nsPtr, commands[i].name + 10, 0) != TCL_OK) {
	    return TCL_ERROR;
	}
    }
    Tcl_SetEnsembleFlags(interp, Tcl_CreateEnsemble(interp, "::milter",
	    nsPtr, TCL_ENSEMBLE_PREFIX), TCL_ENSEMBLE_PREFIX);
    MilterUnixChanInit(interp);
    MilterGetState(interp);
    MilterInitExitHandler();
    return Tcl_PkgProvideEx(interp, PACKAGE_NAME, PACKAGE_VERSION, NULL);
}

/*
 *----------------------------------------------------------------------
 *
 * Milter_SafeInit --
 *
 *	A milter opens sockets and starts threads: not for safe
 *	interpreters.
 *
 *----------------------------------------------------------------------
 */

int
Milter_SafeInit(
    Tcl_Interp *interp)
{
    Tcl_SetObjResult(interp, Tcl_NewStringObj(
	    "TclMilter cannot be loaded into a safe interpreter", -1));
    Tcl_SetErrorCode(interp, "MILTER", "INIT", "SAFE", NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * Milter_Unload --
 *
 *	[unload]: refuses while the interpreter's milter runs (its network
 *	thread and callbacks run our code); otherwise removes the commands
 *	and the milter state. When the library leaves the process, also
 *	removes the process exit handler, refusing if any milter of the
 *	process still runs.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with errorCode MILTER STATE RUNNING.
 *
 * Side effects:
 *	Deletes the ::milter namespace and the interpreter's milter state.
 *
 *----------------------------------------------------------------------
 */

int
Milter_Unload(
    Tcl_Interp *interp,
    int flags)			/* TCL_UNLOAD_DETACH_FROM_INTERP or
				 * TCL_UNLOAD_DETACH_FROM_PROCESS. */
{
    MilterState *statePtr = Tcl_GetAssocData(interp, "milter", NULL);
    Tcl_Namespace *nsPtr;

    if ((statePtr != NULL && statePtr->status != MILTER_IDLE)
	    || ((flags & TCL_UNLOAD_DETACH_FROM_PROCESS)
		&& !MilterDeleteExitHandler())) {
	Tcl_SetObjResult(interp, Tcl_NewStringObj(
		"cannot unload TclMilter while the milter is running", -1));
	Tcl_SetErrorCode(interp, "MILTER", "STATE", "RUNNING", NULL);
	return TCL_ERROR;
    }
    nsPtr = Tcl_FindNamespace(interp, "::milter", NULL, TCL_GLOBAL_ONLY);
    if (nsPtr != NULL) {
	Tcl_DeleteNamespace(nsPtr);
    }
    Tcl_DeleteAssocData(interp, "milter");
    return TCL_OK;
}
