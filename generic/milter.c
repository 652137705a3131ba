/*
 * milter.c --
 *
 *	Package initialisation and the milter ensemble's configuration
 *	commands: milter configure, register, status and address. Running
 *	and stopping are in milterRun.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/*
 * Values of -logdestination.
 */

static const char *const destinationNames[] = {"stderr", "syslog", NULL};

/*
 * The length of "::milter::", which the commands' names begin with.
 */

#define NAMESPACE_LENGTH	(sizeof("::milter::") - 1)

/*
 * Milliseconds in a second: TYPE_SECONDS values are kept in
 * milliseconds.
 */

#define MS_PER_SECOND		1000

/*
 * What LookupId looks up, and the size of the buffer for the group or
 * user database entry.
 */

typedef enum IdKind {
    ID_USER,			/* A user name or a user id. */
    ID_GROUP			/* A group name or a group id. */
} IdKind;

#define ID_BUFFER_SIZE		16384

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
    const char *value,		/* A name or a number, or "". */
    IdKind kind,		/* ID_GROUP or ID_USER. */
    int *idPtr)			/* Gets the id. */
{
    char buf[ID_BUFFER_SIZE], *end;
    long number;

    *idPtr = -1;
    if (*value == '\0') {
	return 1;
    }
    if (*value >= '0' && *value <= '9') {
	number = strtol(value, &end, 10);
	if (*end != '\0' || number < 0 || number >= INT_MAX) {
	    return 0;
	}
	*idPtr = (int) number;
	return 1;
    }
    if (kind == ID_GROUP) {
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
 * The options of milter configure: one table, optionTable below, with an
 * entry per option: its name, whether it is static, the type of its
 * values, the fields of MilterState that keep it and, for a few, what
 * else must happen when it changes. A configure call checks every value
 * into a PendingValue first and applies them only when all are good.
 */

typedef enum OptionType {
    TYPE_INT,			/* An integer from min to max. */
    TYPE_BOOLEAN,		/* A boolean, kept as 0 or 1. */
    TYPE_SECONDS,		/* Seconds from min to max, kept in
				 * milliseconds. */
    TYPE_MODE,			/* An octal file mode from min to max. */
    TYPE_INDEX,			/* One of names (exactly), kept as its
				 * index. */
    TYPE_CODE,			/* A return code but SMFIS_SKIP, kept as its
				 * verdict. */
    TYPE_STRING,		/* Any string, kept as an object. */
    TYPE_COMMAND,		/* A command prefix; NULL when empty. */
    TYPE_ID,			/* A user or group name or id: the id in the
				 * int field, the value in the object field;
				 * -1 and NULL when empty. */
    TYPE_SOCKET,		/* A socket spec, kept as an object. */
    TYPE_ENCODING,		/* A known encoding: statePtr->encoding. */
    TYPE_SIGNALS		/* A dict of signals and actions, kept in
				 * canonical form; NULL when empty. */
} OptionType;

/*
 * Flag bits of OptionSpec.flags.
 */

enum OptionFlags {
    OPTION_STATIC = 1,		/* Cannot change while the milter runs. */
    OPTION_LOCKED = 2,		/* The int field is read by other threads:
				 * write it under statePtr->lock. */
    OPTION_GROUP = 4,		/* TYPE_ID: a group, not a user. */
    OPTION_EMPTY_IS_NULL = 8,	/* TYPE_STRING, TYPE_SOCKET: keep NULL
				 * for "". */
    OPTION_LISTEN_ONLY = 16	/* TYPE_SOCKET: no inherited socket
				 * (fd:N, systemd). */
};

/*
 * An entry of the option table. Immutable, shared by all threads.
 */

typedef struct OptionSpec {
    const char *name;		/* "-backlog"; first, for
				 * Tcl_GetIndexFromObjStruct. */
    int flags;			/* OPTION_* bits. */
    OptionType type;		/* What values are and how they are kept. */
    size_t intOffset;		/* The int field in MilterState, if any. */
    size_t objOffset;		/* The Tcl_Obj * field, if any. */
    int min, max;		/* The range of a number. */
    const char *expected;	/* What a value must be: "a boolean". */
    const char *const *names;	/* TYPE_INDEX: the value names. */
    void (*changedProc)(MilterState *statePtr);
				/* Called after a new value is kept, or
				 * NULL. */
} OptionSpec;

/*
 * One checked value, not yet applied. Owner thread only, on the C stack.
 */

typedef struct PendingValue {
    int set;			/* The option was given in this call. */
    int num;			/* The value as a number (most types). */
    Tcl_Obj *obj;		/* The value as given; not counted (objv). */
    Tcl_Encoding encoding;	/* TYPE_ENCODING: the encoding, held. */
    Tcl_Obj *dictObj;		/* TYPE_SIGNALS: the canonical dict,
				 * counted; NULL when empty. */
} PendingValue;

/*
 * The fields of MilterState an entry names.
 */

#define INT_FIELD(statePtr, optPtr) \
	((int *) ((char *) (statePtr) + (optPtr)->intOffset))
#define OBJ_FIELD(statePtr, optPtr) \
	((Tcl_Obj **) ((char *) (statePtr) + (optPtr)->objOffset))

/*
 *----------------------------------------------------------------------
 *
 * BadValue --
 *
 *	The error for a value an option does not accept.
 *
 * Results:
 *	TCL_ERROR.
 *
 * Side effects:
 *	Sets the interpreter's result, 'bad value "v" for -opt: must be
 *	...', and errorCode MILTER CONFIG VALUE -opt.
 *
 *----------------------------------------------------------------------
 */

static int
BadValue(
    Tcl_Interp *interp,		/* For the error. */
    const OptionSpec *optPtr,	/* The option. */
    Tcl_Obj *valueObj)		/* The value it refused. */
{
    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
	    "bad value \"%s\" for %s: must be %s", Tcl_GetString(valueObj),
	    optPtr->name, optPtr->expected));
    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE", optPtr->name,
	    NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * ParseNumber --
 *
 *	Checks a value of a numeric type (TYPE_INT, TYPE_BOOLEAN,
 *	TYPE_SECONDS, TYPE_MODE, TYPE_INDEX, TYPE_CODE) and converts it to
 *	the number kept.
 *
 * Results:
 *	1 with the number in *numPtr, or 0 if the value is not good.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
ParseNumber(
    const OptionSpec *optPtr,	/* The option. */
    Tcl_Obj *valueObj,		/* Its new value. */
    int *numPtr)		/* Gets the number kept. */
{
    const char *s;
    char *end;
    double seconds;
    long mode;

    switch (optPtr->type) {
    case TYPE_INT:
	return Tcl_GetIntFromObj(NULL, valueObj, numPtr) == TCL_OK
		&& *numPtr >= optPtr->min && *numPtr <= optPtr->max;
    case TYPE_BOOLEAN:
	return Tcl_GetBooleanFromObj(NULL, valueObj, numPtr) == TCL_OK;
    case TYPE_SECONDS:
	if (Tcl_GetDoubleFromObj(NULL, valueObj, &seconds) != TCL_OK
		|| seconds < optPtr->min || seconds > optPtr->max) {
	    return 0;
	}
	*numPtr = (int) (seconds * MS_PER_SECOND);
	return 1;
    case TYPE_MODE:
	s = Tcl_GetString(valueObj);
	mode = strtol(s, &end, 8);
	*numPtr = (int) mode;
	return *s != '\0' && *end == '\0' && mode >= optPtr->min
		&& mode <= optPtr->max;
    case TYPE_INDEX:
	return Tcl_GetIndexFromObj(NULL, valueObj, optPtr->names, "value",
		TCL_EXACT, numPtr) == TCL_OK;
    case TYPE_CODE:
	if (Tcl_GetIndexFromObjStruct(NULL, valueObj, milterCodeNames,
		sizeof(char *), "code", TCL_EXACT, numPtr) != TCL_OK
		|| milterCodeValues[*numPtr] == MILTER_SKIP) {
	    return 0;
	}
	*numPtr = milterCodeValues[*numPtr];
	return 1;
    default:
	return 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ParseValue --
 *
 *	Checks a new value of an option and keeps what it stands for in
 *	the pending value.
 *
 * Results:
 *	TCL_OK, or TCL_ERROR with a message and errorCode MILTER CONFIG
 *	VALUE option.
 *
 * Side effects:
 *	TYPE_ENCODING and TYPE_SIGNALS hold what they made in the pending
 *	value, replacing what an earlier instance of the option held; the
 *	caller releases it (ReleasePending). TYPE_ID reads the user or
 *	group database.
 *
 *----------------------------------------------------------------------
 */

static int
ParseValue(
    Tcl_Interp *interp,		/* For errors. */
    const OptionSpec *optPtr,	/* The option. */
    Tcl_Obj *valueObj,		/* Its new value. */
    PendingValue *pvPtr)	/* Gets what the value stands for. */
{
    Tcl_Size len;
    Tcl_Obj *dictObj;
    char err[400];

    switch (optPtr->type) {
    case TYPE_STRING:
	return TCL_OK;
    case TYPE_COMMAND:
	if (Tcl_ListObjLength(NULL, valueObj, &len) != TCL_OK) {
	    return BadValue(interp, optPtr, valueObj);
	}
	pvPtr->num = (int) len;
	return TCL_OK;
    case TYPE_ID:
	if (!LookupId(Tcl_GetString(valueObj), (optPtr->flags & OPTION_GROUP)
		? ID_GROUP : ID_USER, &pvPtr->num)) {
	    return BadValue(interp, optPtr, valueObj);
	}
	return TCL_OK;
    case TYPE_SOCKET:
	if ((optPtr->flags & OPTION_EMPTY_IS_NULL)
		&& Tcl_GetCharLength(valueObj) == 0) {
	    return TCL_OK;
	}
	if ((optPtr->flags & OPTION_LISTEN_ONLY)
		&& (strncmp(Tcl_GetString(valueObj), "fd:", 3) == 0
		|| strcmp(Tcl_GetString(valueObj), "systemd") == 0)) {
	    return BadValue(interp, optPtr, valueObj);
	}
	if (!MilterSocketCheckSpec(Tcl_GetString(valueObj), err,
		sizeof(err))) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad value for %s: %s",
		    optPtr->name, err));
	    Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "VALUE",
		    optPtr->name, NULL);
	    return TCL_ERROR;
	}
	return TCL_OK;
    case TYPE_ENCODING:
	if (pvPtr->encoding != NULL) {
	    Tcl_FreeEncoding(pvPtr->encoding);
	}
	pvPtr->encoding = Tcl_GetEncoding(NULL, Tcl_GetString(valueObj));
	if (pvPtr->encoding == NULL) {
	    return BadValue(interp, optPtr, valueObj);
	}
	return TCL_OK;
    case TYPE_SIGNALS:
	if (MilterSignalCheck(interp, valueObj, &dictObj) != TCL_OK) {
	    return TCL_ERROR;
	}
	if (dictObj != NULL) {
	    Tcl_IncrRefCount(dictObj);
	}
	if (pvPtr->dictObj != NULL) {
	    Tcl_DecrRefCount(pvPtr->dictObj);
	}
	pvPtr->dictObj = dictObj;
	return TCL_OK;
    default:
	if (!ParseNumber(optPtr, valueObj, &pvPtr->num)) {
	    return BadValue(interp, optPtr, valueObj);
	}
	return TCL_OK;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * GetValue --
 *
 *	An option's current value, as configure reports it.
 *
 * Results:
 *	An object: new, or the state's own.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
GetValue(
    MilterState *statePtr,	/* The interpreter's milter. */
    const OptionSpec *optPtr)	/* The option. */
{
    int i, num = 0;
    Tcl_Obj *objPtr;

    if (optPtr->intOffset != 0) {
	num = *INT_FIELD(statePtr, optPtr);
    }
    switch (optPtr->type) {
    case TYPE_SECONDS:
	return Tcl_NewDoubleObj(num / (double) MS_PER_SECOND);
    case TYPE_BOOLEAN:
	num = (num != 0);
	/* FALLTHRU */
    case TYPE_INT:
	return Tcl_NewIntObj(num);
    case TYPE_MODE:
	return Tcl_ObjPrintf("0%o", (unsigned) num);
    case TYPE_INDEX:
	return Tcl_NewStringObj(optPtr->names[num], -1);
    case TYPE_CODE:
	for (i = 0; milterCodeNames[i] != NULL; i++) {
	    if (milterCodeValues[i] == num) {
		break;
	    }
	}
	return Tcl_NewStringObj(milterCodeNames[i], -1);
    case TYPE_ENCODING:
	return Tcl_NewStringObj(Tcl_GetEncodingName(statePtr->encoding),
		-1);
    default:
	objPtr = *OBJ_FIELD(statePtr, optPtr);
	return objPtr != NULL ? objPtr : Tcl_NewObj();
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ReplaceObj --
 *
 *	Stores an object in a counted slot.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Counts the new object (if any); releases the old one (if any).
 *
 *----------------------------------------------------------------------
 */

static void
ReplaceObj(
    Tcl_Obj **slotPtr,		/* Holds a counted object or NULL. */
    Tcl_Obj *newObj)		/* What it holds from now on, or NULL. */
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
 * ApplyValue --
 *
 *	Keeps a checked value, then calls the option's changedProc.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the configuration; the encoding of the pending value
 *	passes to the state.
 *
 *----------------------------------------------------------------------
 */

static void
ApplyValue(
    MilterState *statePtr,	/* The interpreter's milter. */
    const OptionSpec *optPtr,	/* The option. */
    PendingValue *pvPtr)	/* Its checked value; what it holds may be
				 * taken over. */
{
    Tcl_Obj *obj = pvPtr->obj;

    switch (optPtr->type) {
    case TYPE_STRING:
    case TYPE_SOCKET:
	if ((optPtr->flags & OPTION_EMPTY_IS_NULL)
		&& Tcl_GetCharLength(obj) == 0) {
	    obj = NULL;
	}
	ReplaceObj(OBJ_FIELD(statePtr, optPtr), obj);
	break;
    case TYPE_COMMAND:
	ReplaceObj(OBJ_FIELD(statePtr, optPtr), pvPtr->num > 0 ? obj : NULL);
	break;
    case TYPE_ID:
	ReplaceObj(OBJ_FIELD(statePtr, optPtr), pvPtr->num >= 0 ? obj : NULL);
	*INT_FIELD(statePtr, optPtr) = pvPtr->num;
	break;
    case TYPE_ENCODING:
	MilterUseEncoding(statePtr, pvPtr->encoding);
	pvPtr->encoding = NULL;
	break;
    case TYPE_SIGNALS:
	ReplaceObj(OBJ_FIELD(statePtr, optPtr), pvPtr->dictObj);
	break;
    default:
	if (optPtr->flags & OPTION_LOCKED) {
	    Tcl_MutexLock(&statePtr->lock);
	}
	*INT_FIELD(statePtr, optPtr) = pvPtr->num;
	if (optPtr->flags & OPTION_LOCKED) {
	    Tcl_MutexUnlock(&statePtr->lock);
	}
	break;
    }
    if (optPtr->changedProc != NULL) {
	optPtr->changedProc(statePtr);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DebugLevelChanged --
 *
 *	-debuglevel changed: the running network thread takes it over.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets the server's debug level.
 *
 *----------------------------------------------------------------------
 */

static void
DebugLevelChanged(
    MilterState *statePtr)	/* The interpreter's milter. */
{
    if (statePtr->server != NULL) {
	MilterServerSetDebug(statePtr->server, statePtr->debugLevel);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * LogCopiesChanged --
 *
 *	-name, -syslogident or -logcommand changed: the threads that log
 *	read copies of them (the name, the ident or "", whether there is a
 *	log command); renew all three.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets statePtr->logName, syslogIdent and useLogCommand under the
 *	state's lock.
 *
 *----------------------------------------------------------------------
 */

static void
LogCopiesChanged(
    MilterState *statePtr)	/* The interpreter's milter. */
{
    Tcl_Obj *identObj = statePtr->syslogIdentObj;

    Tcl_MutexLock(&statePtr->lock);
    snprintf(statePtr->logName, sizeof(statePtr->logName), "%s",
	    Tcl_GetString(statePtr->nameObj));
    snprintf(statePtr->syslogIdent, sizeof(statePtr->syslogIdent), "%s",
	    identObj != NULL ? Tcl_GetString(identObj) : "");
    statePtr->useLogCommand = statePtr->logCommandObj != NULL;
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 * The option table, in the order of the names (configure lists them so,
 * and applies values so). NONE marks a field an entry does not use (the
 * offset of MilterState's first member, interp, which no option keeps).
 */

#define NONE		0
#define FIELD(f)	offsetof(MilterState, f)

static const OptionSpec optionTable[] = {
    {"-backlog", OPTION_STATIC, TYPE_INT, FIELD(backlog), NONE,
	    0, 65535, "an integer from 0 to 65535", NULL, NULL},
    {"-capture", OPTION_STATIC | OPTION_EMPTY_IS_NULL, TYPE_STRING,
	    NONE, FIELD(captureObj), 0, 0, NULL, NULL, NULL},
    {"-captureall", OPTION_STATIC, TYPE_BOOLEAN, FIELD(captureAll), NONE,
	    0, 0, "a boolean", NULL, NULL},
    {"-capturebody", OPTION_STATIC, TYPE_INT, FIELD(captureBody), NONE,
	    0, 64 * 1024 * 1024, "an integer from 0 to 67108864", NULL, NULL},
    {"-capturemask", OPTION_STATIC, TYPE_BOOLEAN, FIELD(captureMask), NONE,
	    0, 0, "a boolean", NULL, NULL},
    {"-capturesize", OPTION_STATIC, TYPE_INT, FIELD(captureSize), NONE,
	    4096, 1024 * 1024 * 1024, "an integer from 4096 to 1073741824",
	    NULL, NULL},
    {"-connection", OPTION_STATIC, TYPE_SOCKET, NONE, FIELD(connectionObj),
	    0, 0, NULL, NULL, NULL},
    {"-coroutines", 0, TYPE_BOOLEAN, FIELD(coroutines), NONE,
	    0, 0, "a boolean", NULL, NULL},
    {"-debuglevel", 0, TYPE_INT, FIELD(debugLevel), NONE,
	    0, 6, "an integer from 0 to 6", NULL, DebugLevelChanged},
    {"-defaultreply", 0, TYPE_CODE, FIELD(defaultReply), NONE,
	    0, 0, "SMFIS_CONTINUE, SMFIS_REJECT, SMFIS_DISCARD, "
	    "SMFIS_ACCEPT or SMFIS_TEMPFAIL", NULL, NULL},
    {"-draintimeout", OPTION_STATIC, TYPE_SECONDS, FIELD(drainTimeout), NONE,
	    0, 86400, "a number of seconds from 0 to 86400", NULL, NULL},
    {"-encoding", 0, TYPE_ENCODING, NONE, NONE,
	    0, 0, "a known encoding", NULL, NULL},
    {"-leadingspace", OPTION_STATIC, TYPE_BOOLEAN, FIELD(leadingSpace), NONE,
	    0, 0, "a boolean", NULL, NULL},
    {"-logcommand", 0, TYPE_COMMAND, NONE, FIELD(logCommandObj),
	    0, 0, "a command prefix", NULL, LogCopiesChanged},
    {"-logdestination", OPTION_LOCKED, TYPE_INDEX, FIELD(logSyslog), NONE,
	    0, 0, "stderr or syslog", destinationNames, NULL},
    {"-maxconnections", OPTION_STATIC, TYPE_INT, FIELD(maxConnections),
	    NONE, 0, 1000000, "an integer from 0 to 1000000", NULL, NULL},
    {"-maxdatasize", OPTION_STATIC, TYPE_INT, FIELD(maxDataSize), NONE,
	    MILTER_CHUNK_SIZE, 64 * 1024 * 1024,
	    "an integer from 65535 to 67108864", NULL, NULL},
    {"-metrics", OPTION_STATIC | OPTION_EMPTY_IS_NULL | OPTION_LISTEN_ONLY,
	    TYPE_SOCKET, NONE, FIELD(metricsObj), 0, 0,
	    "empty or an inet:, inet6: or unix: spec", NULL, NULL},
    {"-name", OPTION_STATIC, TYPE_STRING, NONE, FIELD(nameObj),
	    0, 0, NULL, NULL, LogCopiesChanged},
    {"-signals", 0, TYPE_SIGNALS, NONE, FIELD(signalsObj),
	    0, 0, NULL, NULL, MilterSignalUpdate},
    {"-socketgroup", OPTION_STATIC | OPTION_GROUP, TYPE_ID,
	    FIELD(socketGid), FIELD(socketGroupObj),
	    0, 0, "a known group name or a group id", NULL, NULL},
    {"-socketmode", OPTION_STATIC, TYPE_MODE, FIELD(socketMode), NONE,
	    0, 0777, "an octal file mode such as 0660", NULL, NULL},
    {"-socketowner", OPTION_STATIC, TYPE_ID,
	    FIELD(socketUid), FIELD(socketOwnerObj),
	    0, 0, "a known user name or a user id", NULL, NULL},
    {"-syslogfacility", OPTION_LOCKED, TYPE_INDEX, FIELD(syslogFacility),
	    NONE, 0, 0, "auth, authpriv, cron, daemon, ftp, kern, local0 to "
	    "local7, lpr, mail, news, syslog, user or uucp",
	    milterFacilityNames, NULL},
    {"-syslogident", OPTION_EMPTY_IS_NULL, TYPE_STRING,
	    NONE, FIELD(syslogIdentObj), 0, 0, NULL, NULL,
	    LogCopiesChanged},
    {"-timeout", OPTION_STATIC, TYPE_INT, FIELD(timeout), NONE,
	    0, 100000000, "a non-negative number of seconds", NULL, NULL},
    {"-workerinit", OPTION_EMPTY_IS_NULL, TYPE_STRING,
	    NONE, FIELD(workerInitObj), 0, 0, NULL, NULL, NULL},
    {"-workers", OPTION_STATIC, TYPE_INT, FIELD(workers), NONE,
	    0, 1024, "an integer from 0 to 1024", NULL, NULL},
    {NULL, 0, TYPE_INT, NONE, NONE, 0, 0, NULL, NULL, NULL}
};

#undef NONE
#undef FIELD

#define NUM_OPTIONS (sizeof(optionTable) / sizeof(optionTable[0]) - 1)

/*
 *----------------------------------------------------------------------
 *
 * ReleasePending --
 *
 *	Frees what the checked values of one configure call hold (what
 *	ApplyValue did not take over).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Releases encodings and objects.
 *
 *----------------------------------------------------------------------
 */

static void
ReleasePending(
    PendingValue pending[])	/* One per option (NUM_OPTIONS). */
{
    size_t i;

    for (i = 0; i < NUM_OPTIONS; i++) {
	if (pending[i].encoding != NULL) {
	    Tcl_FreeEncoding(pending[i].encoding);
	}
	if (pending[i].dictObj != NULL) {
	    Tcl_DecrRefCount(pending[i].dictObj);
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * GetOption --
 *
 *	Looks up an option name, with unique abbreviations.
 *
 * Results:
 *	TCL_OK with the index into optionTable in *indexPtr, or TCL_ERROR
 *	with 'bad option "x": must be ...' and errorCode MILTER CONFIG
 *	OPTION x.
 *
 * Side effects:
 *	Caches the lookup in the object.
 *
 *----------------------------------------------------------------------
 */

static int
GetOption(
    Tcl_Interp *interp,		/* For the error. */
    Tcl_Obj *nameObj,		/* The name, maybe abbreviated. */
    int *indexPtr)		/* Gets its index in optionTable. */
{
    if (Tcl_GetIndexFromObjStruct(interp, nameObj, optionTable,
	    sizeof(OptionSpec), "option", 0, indexPtr) != TCL_OK) {
	Tcl_SetErrorCode(interp, "MILTER", "CONFIG", "OPTION",
		Tcl_GetString(nameObj), NULL);
	return TCL_ERROR;
    }
    return TCL_OK;
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
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
{
    MilterState *statePtr = MilterGetState(interp);
    PendingValue pending[NUM_OPTIONS];
    const OptionSpec *optPtr;
    int i, option;

    (void) clientData;
    if (objc == 1) {
	Tcl_Obj *resultObj = Tcl_NewObj();

	for (optPtr = optionTable; optPtr->name != NULL; optPtr++) {
	    Tcl_ListObjAppendElement(NULL, resultObj,
		    Tcl_NewStringObj(optPtr->name, -1));
	    Tcl_ListObjAppendElement(NULL, resultObj,
		    GetValue(statePtr, optPtr));
	}
	Tcl_SetObjResult(interp, resultObj);
	return TCL_OK;
    }
    if (objc == 2) {
	if (GetOption(interp, objv[1], &option) != TCL_OK) {
	    return TCL_ERROR;
	}
	optPtr = &optionTable[option];
	Tcl_SetObjResult(interp, GetValue(statePtr, optPtr));
	return TCL_OK;
    }
    if (objc % 2 == 0) {
	Tcl_WrongNumArgs(interp, 1, objv, "?-option value ...?");
	return TCL_ERROR;
    }
    if (statePtr->workerPtr != NULL) {
	return MilterRefuseInWorker(interp, "change the configuration");
    }

    /*
     * Check every value, then apply them all in table order.
     */

    memset(pending, 0, sizeof(pending));
    for (i = 1; i < objc; i += 2) {
	if (GetOption(interp, objv[i], &option) != TCL_OK) {
	    goto error;
	}
	optPtr = &optionTable[option];
	if ((optPtr->flags & OPTION_STATIC)
		&& statePtr->status != MILTER_IDLE) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "cannot change %s while the milter is running",
		    optPtr->name));
	    Tcl_SetErrorCode(interp, "MILTER", "STATE", "RUNNING", NULL);
	    goto error;
	}
	pending[option].set = 1;
	pending[option].obj = objv[i+1];
	if (ParseValue(interp, optPtr, objv[i+1], &pending[option])
		!= TCL_OK) {
	    goto error;
	}
    }
    for (option = 0; option < (int) NUM_OPTIONS; option++) {
	if (pending[option].set) {
	    ApplyValue(statePtr, &optionTable[option], &pending[option]);
	}
    }
    MilterPoolSync(statePtr);
    ReleasePending(pending);
    return TCL_OK;

  error:
    ReleasePending(pending);
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
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
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
	return MilterRefuseInWorker(interp, "register callbacks");
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
 * StatusObjCmd --
 *
 *	milter status
 *	
 *	What the milter does: idle, running or draining.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	Notices a stop asked from another thread (running becomes
 *	draining).
 *
 *----------------------------------------------------------------------
 */

static int
StatusObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
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

/*
 *----------------------------------------------------------------------
 *
 * AddressObjCmd --
 *
 *	milter address ?-metrics?
 *	
 *	The spec actually listened on (with the real port when port 0 was
 *	configured), or "" when idle; with -metrics, the same for the
 *	-metrics socket ("" when there is none).
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER ADDRESS OPTION for an
 *	unknown option.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
AddressObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,		/* Current interpreter. */
    int objc,			/* Number of arguments. */
    Tcl_Obj *const objv[])	/* Argument objects. */
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
 *	main stop status address stats sessions session reload} and the
 *	ensemble ::milter.
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
    Tcl_Interp *interp)		/* The interpreter that loads TclMilter. */
{
    static const struct {
	const char *name;
	Tcl_ObjCmdProc *proc;
    } commands[] = {
	{"::milter::address", AddressObjCmd},
	{"::milter::configure", ConfigureObjCmd},
	{"::milter::main", MilterMainObjCmd},
	{"::milter::register", RegisterObjCmd},
	{"::milter::session", MilterSessionObjCmd},
	{"::milter::sessions", MilterSessionsObjCmd},
	{"::milter::start", MilterStartObjCmd},
	{"::milter::stats", MilterStatsObjCmd},
	{"::milter::reload", MilterReloadObjCmd},
	{"::milter::status", StatusObjCmd},
	{"::milter::stop", MilterStopObjCmd},
    };
    Tcl_Namespace *nsPtr;
    MilterState *statePtr;
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
     * in the same namespace and must not become subcommands. Each gets
     * the interpreter's milter state as its client data.
     */

    statePtr = MilterGetState(interp);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
	Tcl_CreateObjCommand(interp, commands[i].name, commands[i].proc,
		statePtr, NULL);
	if (Tcl_Export(interp, nsPtr, commands[i].name + NAMESPACE_LENGTH,
		0) != TCL_OK) {
	    return TCL_ERROR;
	}
    }
    Tcl_SetEnsembleFlags(interp, Tcl_CreateEnsemble(interp, "::milter",
	    nsPtr, TCL_ENSEMBLE_PREFIX), TCL_ENSEMBLE_PREFIX);
    MilterInitExitHandler();
    MilterRunInit();
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
 * Results:
 *	TCL_ERROR, with errorCode MILTER INIT SAFE.
 *
 * Side effects:
 *	Sets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

int
Milter_SafeInit(
    Tcl_Interp *interp)		/* A safe interpreter. */
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
    Tcl_Interp *interp,		/* The interpreter it leaves. */
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
