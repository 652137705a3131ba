/*
 * milterStatsCmd.c --
 *
 *	The commands milter stats, milter sessions and milter session, and
 *	the -metrics
 *	hook that gives the network thread the statistics text. The
 *	counting is in milterStats.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <stdio.h>
#include <string.h>

/*
 *----------------------------------------------------------------------
 *
 * HistDict --
 *
 *	A histogram as a dict: buckets (upper bound -> cumulative count,
 *	the last +Inf), count and sum (seconds).
 *
 * Results:
 *	A new object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
HistDict(
    MilterHist *histPtr)
{
    uint64_t cum[MILTER_STAT_BUCKETS + 1];
    Tcl_Obj *dictObj = Tcl_NewDictObj(), *bucketsObj = Tcl_NewDictObj();
    double sum;
    char bound[32];
    int i;

    MilterStatsReadHist(histPtr, cum, &sum);
    for (i = 0; i < MILTER_STAT_BUCKETS; i++) {
	snprintf(bound, sizeof(bound), "%g", milterStatBounds[i]);
	Tcl_DictObjPut(NULL, bucketsObj, Tcl_NewStringObj(bound, -1),
		Tcl_NewWideIntObj((Tcl_WideInt) cum[i]));
    }
    Tcl_DictObjPut(NULL, bucketsObj, Tcl_NewStringObj("+Inf", -1),
	    Tcl_NewWideIntObj((Tcl_WideInt) cum[MILTER_STAT_BUCKETS]));
    Tcl_DictObjPut(NULL, dictObj, Tcl_NewStringObj("buckets", -1),
	    bucketsObj);
    Tcl_DictObjPut(NULL, dictObj, Tcl_NewStringObj("count", -1),
	    Tcl_NewWideIntObj((Tcl_WideInt) cum[MILTER_STAT_BUCKETS]));
    Tcl_DictObjPut(NULL, dictObj, Tcl_NewStringObj("sum", -1),
	    Tcl_NewDoubleObj(sum));
    return dictObj;
}

/*
 *----------------------------------------------------------------------
 *
 * PutWide --
 *
 *	Puts an integer into a dict under a key.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the dict.
 *
 *----------------------------------------------------------------------
 */

static void
PutWide(
    Tcl_Obj *dictObj,
    const char *key,
    Tcl_WideInt value)
{
    Tcl_DictObjPut(NULL, dictObj, Tcl_NewStringObj(key, -1),
	    Tcl_NewWideIntObj(value));
}

/*
 *----------------------------------------------------------------------
 *
 * Extra --
 *
 *	The gauges read from the queues and the pool.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *extraPtr.
 *
 *----------------------------------------------------------------------
 */

static void
Extra(
    MilterState *statePtr,
    MilterStatsExtra *extraPtr)
{
    int conns;

    extraPtr->queued = 0;
    extraPtr->workers = 0;
    if (statePtr->queue != NULL) {
	extraPtr->queued += MilterQueueLength(statePtr->queue);
    }
    if (statePtr->pool != NULL) {
	extraPtr->workers = MilterPoolWorkers(statePtr->pool, &conns);
	extraPtr->queued += MilterPoolQueued(statePtr->pool);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsText --
 *
 *	The server's metrics hook (-metrics): the statistics of a milter
 *	(clientData, its MilterState) in the Prometheus text format. Runs
 *	on the network thread and touches no Tcl object: the queue and
 *	pool it reads outlive the network thread.
 *
 * Results:
 *	A MilterAlloc'ed text, its length in *lenPtr.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

char *
MilterStatsText(
    void *clientData,
    size_t *lenPtr)
{
    MilterState *statePtr = clientData;
    MilterStatsExtra extra;

    Extra(statePtr, &extra);
    return MilterStatsPrometheus(statePtr->stats, &extra, milterEventNames,
	    lenPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * NamedCounts --
 *
 *	A dict of counters by name: names[i] -> counts[i].
 *
 * Results:
 *	A new dict object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
NamedCounts(
    const char *const names[],	/* One name per counter. */
    uint64_t *counts,		/* The counters. */
    int count)			/* How many. */
{
    Tcl_Obj *dictObj = Tcl_NewDictObj();
    int i;

    for (i = 0; i < count; i++) {
	PutWide(dictObj, names[i], (Tcl_WideInt) MilterStatsGet(&counts[i]));
    }
    return dictObj;
}

/*
 *----------------------------------------------------------------------
 *
 * CountersDict --
 *
 *	The counters of milter stats: the simple ones, then
 *	message_verdicts, callback_verdicts (by event) and modifications.
 *
 * Results:
 *	A new dict object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
CountersDict(
    MilterStats *stats)
{
    Tcl_Obj *countersObj, *byEventObj = Tcl_NewDictObj();
    int i;

    countersObj = NamedCounts(milterStatCounterNames, stats->counters,
	    MILTER_STAT_RUNNING);	/* The gauges come after. */
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("message_verdicts", -1),
	    NamedCounts(milterStatOutcomeNames, stats->outcomes,
	    MILTER_STAT_OUTCOMES));
    for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	Tcl_DictObjPut(NULL, byEventObj,
		Tcl_NewStringObj(milterEventNames[i], -1),
		NamedCounts(milterStatVerdictNames, stats->verdicts[i],
		MILTER_STAT_VERDICTS));
    }
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("callback_verdicts", -1), byEventObj);
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("modifications", -1),
	    NamedCounts(milterStatModNames, stats->mods, MILTER_STAT_MODS));
    return countersObj;
}

/*
 *----------------------------------------------------------------------
 *
 * GaugesDict --
 *
 *	The gauges of milter stats.
 *
 * Results:
 *	A new dict object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
GaugesDict(
    MilterStats *stats,
    const MilterStatsExtra *extraPtr)	/* Read from queues and pool. */
{
    Tcl_Obj *gaugesObj = Tcl_NewDictObj();
    uint64_t *c = stats->counters;
    int64_t open, inFlight;

    MilterStatsGauges(stats, &open, &inFlight);
    PutWide(gaugesObj, "connections_open", open);
    PutWide(gaugesObj, "messages_in_flight", inFlight);
    PutWide(gaugesObj, "events_queued", extraPtr->queued);
    PutWide(gaugesObj, "callbacks_running",
	    (Tcl_WideInt) (int64_t) MilterStatsGet(&c[MILTER_STAT_RUNNING]));
    PutWide(gaugesObj, "workers", extraPtr->workers);
    PutWide(gaugesObj, "workers_busy", (Tcl_WideInt) (int64_t)
	    MilterStatsGet(&c[MILTER_STAT_WORKERS_BUSY]));
    return gaugesObj;
}

/*
 *----------------------------------------------------------------------
 *
 * HistogramsDict --
 *
 *	The histograms of milter stats: callback (by event) and message.
 *
 * Results:
 *	A new dict object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
HistogramsDict(
    MilterStats *stats)
{
    Tcl_Obj *histObj = Tcl_NewDictObj(), *byEventObj = Tcl_NewDictObj();
    int i;

    for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	Tcl_DictObjPut(NULL, byEventObj,
		Tcl_NewStringObj(milterEventNames[i], -1),
		HistDict(&stats->callback[i]));
    }
    Tcl_DictObjPut(NULL, histObj, Tcl_NewStringObj("callback", -1),
	    byEventObj);
    Tcl_DictObjPut(NULL, histObj, Tcl_NewStringObj("message", -1),
	    HistDict(&stats->message));
    return histObj;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsObjCmd --
 *
 *	milter stats ?-format dict|prometheus?
 *
 *	The statistics since the milter last started: a dict of counters,
 *	gauges and histograms, or the Prometheus text exposition format.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER STATS FORMAT for an unknown
 *	format.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterStatsObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    static const char *const formatNames[] = {"dict", "prometheus", NULL};
    static const char *const optNames[] = {"-format", NULL};
    enum { FORMAT_DICT, FORMAT_PROMETHEUS };
    MilterState *statePtr = MilterGetState(interp);
    MilterStats *stats = statePtr->stats;
    MilterStatsExtra extra;
    Tcl_Obj *resultObj;
    int format = FORMAT_DICT, index;

    (void) clientData;
    if (objc != 1 && objc != 3) {
	Tcl_WrongNumArgs(interp, 1, objv, "?-format format?");
	return TCL_ERROR;
    }
    if (objc == 3) {
	if (Tcl_GetIndexFromObj(interp, objv[1], optNames, "option", 0,
		&index) != TCL_OK) {
	    Tcl_SetErrorCode(interp, "MILTER", "STATS", "OPTION",
		    Tcl_GetString(objv[1]), NULL);
	    return TCL_ERROR;
	}
	if (Tcl_GetIndexFromObj(NULL, objv[2], formatNames, "format",
		TCL_EXACT, &format) != TCL_OK) {
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf(
		    "bad format \"%s\": must be dict or prometheus",
		    Tcl_GetString(objv[2])));
	    Tcl_SetErrorCode(interp, "MILTER", "STATS", "FORMAT",
		    Tcl_GetString(objv[2]), NULL);
	    return TCL_ERROR;
	}
    }
    Extra(statePtr, &extra);
    if (format == FORMAT_PROMETHEUS) {
	size_t len;
	char *text = MilterStatsPrometheus(stats, &extra, milterEventNames,
		&len);

	Tcl_SetObjResult(interp, Tcl_NewStringObj(text, (Tcl_Size) len));
	MilterFree(text);
	return TCL_OK;
    }
    resultObj = Tcl_NewDictObj();
    PutWide(resultObj, "started", (Tcl_WideInt) stats->started);
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("counters", -1),
	    CountersDict(stats));
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("gauges", -1),
	    GaugesDict(stats, &extra));
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("histograms", -1),
	    HistogramsDict(stats));
    Tcl_SetObjResult(interp, resultObj);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * SessionDict --
 *
 *	What milter sessions and milter session ID show of a connection:
 *	a dict with the keys id, client, address, stage, age (seconds),
 *	sender, recipients (of the open message), busy (an event is out
 *	for a callback's verdict), busytime (seconds it has been out) and
 *	worker (the number of the worker whose interpreter decides its
 *	events, 0 for the owner).
 *
 * Results:
 *	A new dict object.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static Tcl_Obj *
SessionDict(
    MilterState *statePtr,	/* For the encoding of the texts. */
    const MilterConnInfo *p)
{
    const MilterSessionInfo *sPtr = &p->session;
    Tcl_Obj *d = Tcl_NewDictObj();

    PutWide(d, "id", (Tcl_WideInt) p->id);
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("client", -1),
	    MilterNewTextObj(statePtr, sPtr->client, strlen(sPtr->client)));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("address", -1),
	    MilterNewTextObj(statePtr, sPtr->address, strlen(sPtr->address)));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("stage", -1),
	    Tcl_NewStringObj(sPtr->stage, -1));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("age", -1),
	    Tcl_NewDoubleObj(p->ageMs / 1000.0));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("sender", -1),
	    MilterNewTextObj(statePtr, sPtr->sender, strlen(sPtr->sender)));
    PutWide(d, "recipients", sPtr->recipients);
    PutWide(d, "busy", p->busy);
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("busytime", -1),
	    Tcl_NewDoubleObj(p->busyMs / 1000.0));
    PutWide(d, "worker", p->worker);
    return d;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionsObjCmd --
 *
 *	milter sessions
 *
 *	Lists the live MTA connections, oldest first, each a SessionDict.
 *
 * Results:
 *	A standard Tcl result.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSessionsObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    MilterState *statePtr = MilterGetState(interp);
    MilterConnInfo *infos;
    Tcl_Obj *listObj = Tcl_NewObj();
    int n, i;

    (void) clientData;
    if (objc != 1) {
	Tcl_WrongNumArgs(interp, 1, objv, NULL);
	return TCL_ERROR;
    }
    if (statePtr->server != NULL) {
	infos = MilterServerDescribe(statePtr->server, &n);
	for (i = 0; i < n; i++) {
	    Tcl_ListObjAppendElement(NULL, listObj,
		    SessionDict(statePtr, &infos[i]));
	}
	MilterFree(infos);
    }
    Tcl_SetObjResult(interp, listObj);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * NoSession --
 *
 *	The error for a session number that names no live connection.
 *
 * Results:
 *	TCL_ERROR, with errorCode MILTER SESSION UNKNOWN id.
 *
 * Side effects:
 *	Sets the interpreter's result.
 *
 *----------------------------------------------------------------------
 */

static int
NoSession(
    Tcl_Interp *interp,
    Tcl_Obj *idObj)
{
    Tcl_SetObjResult(interp, Tcl_ObjPrintf("no session \"%s\"",
	    Tcl_GetString(idObj)));
    Tcl_SetErrorCode(interp, "MILTER", "SESSION", "UNKNOWN",
	    Tcl_GetString(idObj), NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * ParseAbortReply --
 *
 *	The reply of milter session ID abort: tempfail, reject, or a list
 *	"rcode ?xcode? ?line ...?" read as $ctx setreply reads its
 *	arguments, whose code's class (4xx, 5xx) gives the verdict. The
 *	lines are converted to the -encoding into ds[]; the code itself
 *	is checked by MilterSessionSetReply when it is applied.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER SESSION REPLY for a reply
 *	that is neither.
 *
 * Side effects:
 *	Fills *replyPtr, lines[] and ds[] (*usedPtr of them to free).
 *
 *----------------------------------------------------------------------
 */

static int
ParseAbortReply(
    Tcl_Interp *interp,
    MilterState *statePtr,
    Tcl_Obj *replyObj,
    MilterAbortReply *replyPtr,	/* Out. */
    MilterStr lines[],		/* Out: MILTER_REPLY_LINES of them. */
    Tcl_DString ds[],		/* Out: where their bytes are kept. */
    int *usedPtr)		/* Out: how many ds to free. */
{
    static const char *const verdicts[] = {"tempfail", "reject", NULL};
    Tcl_Obj **elems;
    int n, i, first, which;

    *usedPtr = 0;
    memset(replyPtr, 0, sizeof(*replyPtr));
    replyPtr->verdict = MILTER_TEMPFAIL;
    if (replyObj == NULL) {
	return TCL_OK;
    }
    if (Tcl_GetIndexFromObjStruct(NULL, replyObj, verdicts,
	    sizeof(char *), "", TCL_EXACT, &which) == TCL_OK) {
	replyPtr->verdict = which == 0 ? MILTER_TEMPFAIL : MILTER_REJECT;
	return TCL_OK;
    }
    if (Tcl_ListObjGetElements(NULL, replyObj, &n, &elems) != TCL_OK
	    || n == 0 || (Tcl_GetString(elems[0])[0] != '4'
	    && Tcl_GetString(elems[0])[0] != '5')) {
	goto badReply;
    }
    replyPtr->verdict = Tcl_GetString(elems[0])[0] == '4'
	    ? MILTER_TEMPFAIL : MILTER_REJECT;
    replyPtr->rcode = Tcl_GetString(elems[0]);
    replyPtr->xcode = n > 2 ? Tcl_GetString(elems[1]) : "";
    first = n > 2 ? 2 : 1;
    replyPtr->count = n - first;
    if (replyPtr->count > MILTER_REPLY_LINES) {
	goto badReply;
    }
    for (i = 0; i < replyPtr->count; i++) {
	*usedPtr = i + 1;
	lines[i].ptr = MilterTextBytes(statePtr, elems[first + i], &ds[i],
		&lines[i].len);
	if (lines[i].ptr == NULL) {
	    goto badReply;
	}
    }
    replyPtr->lines = lines;
    return TCL_OK;

  badReply:
    Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad reply \"%s\": must be "
	    "tempfail, reject or a list {rcode ?xcode? ?line ...?} of a 4xx "
	    "or 5xx reply of at most %d lines", Tcl_GetString(replyObj),
	    MILTER_REPLY_LINES));
    Tcl_SetErrorCode(interp, "MILTER", "SESSION", "REPLY", NULL);
    return TCL_ERROR;
}

/*
 *----------------------------------------------------------------------
 *
 * SessionAbort --
 *
 *	milter session ID abort ?reply?: ends one session from outside its
 *	callbacks (MilterServerAbort).
 *
 * Results:
 *	A standard Tcl result: empty, or an error with errorCode MILTER
 *	SESSION UNKNOWN id (no such session, or it is already ending) or
 *	MILTER SESSION REPLY (a bad reply).
 *
 * Side effects:
 *	Answers the MTA and ends the session.
 *
 *----------------------------------------------------------------------
 */

static int
SessionAbort(
    Tcl_Interp *interp,
    MilterState *statePtr,
    Tcl_Obj *idObj,
    Tcl_WideInt id,
    Tcl_Obj *replyObj)		/* NULL for tempfail. */
{
    MilterStr lines[MILTER_REPLY_LINES];
    Tcl_DString ds[MILTER_REPLY_LINES];
    MilterAbortReply reply;
    const char *msg = NULL;
    int used, code = TCL_OK;

    if (ParseAbortReply(interp, statePtr, replyObj, &reply, lines, ds,
	    &used) != TCL_OK) {
	code = TCL_ERROR;
    } else {
	switch (MilterServerAbort(statePtr->server, (unsigned long) id,
		&reply, &msg)) {
	case MILTER_ABORT_DONE:
	    break;
	case MILTER_ABORT_NOSUCH:
	case MILTER_ABORT_ENDING:
	    code = NoSession(interp, idObj);
	    break;
	case MILTER_ABORT_BADREPLY:
	    Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad reply \"%s\": %s",
		    Tcl_GetString(replyObj), msg));
	    Tcl_SetErrorCode(interp, "MILTER", "SESSION", "REPLY", NULL);
	    code = TCL_ERROR;
	    break;
	}
    }
    for (; used > 0; used--) {
	Tcl_DStringFree(&ds[used - 1]);
    }
    return code;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionObjCmd --
 *
 *	milter session ID ?abort ?reply??
 *
 *	One live connection: without more arguments its SessionDict; with
 *	abort, ends its session (SessionAbort). Only the owner sees the
 *	connections.
 *
 * Results:
 *	A standard Tcl result; errorCode MILTER SESSION UNKNOWN id for a
 *	number that names no live session.
 *
 * Side effects:
 *	See SessionAbort.
 *
 *----------------------------------------------------------------------
 */

int
MilterSessionObjCmd(
    ClientData clientData,	/* Not used. */
    Tcl_Interp *interp,
    int objc,
    Tcl_Obj *const objv[])
{
    static const char *const actions[] = {"abort", NULL};
    MilterState *statePtr = MilterGetState(interp);
    MilterConnInfo *infos;
    Tcl_WideInt id;
    int n, i, action;

    (void) clientData;
    if (objc < 2 || objc > 4) {
	Tcl_WrongNumArgs(interp, 1, objv, "id ?abort ?reply??");
	return TCL_ERROR;
    }
    if (statePtr->workerPtr != NULL) {
	return MilterRefuseInWorker(interp, "see the sessions");
    }
    if (Tcl_GetWideIntFromObj(NULL, objv[1], &id) != TCL_OK || id < 1
	    || statePtr->server == NULL) {
	return NoSession(interp, objv[1]);
    }
    if (objc > 2) {
	if (Tcl_GetIndexFromObjStruct(interp, objv[2], actions,
		sizeof(char *), "action", TCL_EXACT, &action) != TCL_OK) {
	    Tcl_SetErrorCode(interp, "MILTER", "SESSION", "ACTION",
		    Tcl_GetString(objv[2]), NULL);
	    return TCL_ERROR;
	}
	return SessionAbort(interp, statePtr, objv[1], id,
		objc == 4 ? objv[3] : NULL);
    }
    infos = MilterServerDescribe(statePtr->server, &n);
    for (i = 0; i < n && infos[i].id != (unsigned long) id; i++) {
	/* Look for it. */
    }
    if (i < n) {
	Tcl_SetObjResult(interp, SessionDict(statePtr, &infos[i]));
    }
    MilterFree(infos);
    return i < n ? TCL_OK : NoSession(interp, objv[1]);
}
