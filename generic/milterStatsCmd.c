/*
 * milterStatsCmd.c --
 *
 *	The commands milter stats and milter sessions, and the -metrics
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
    MilterState *statePtr = MilterGetState(interp);
    MilterStats *stats = statePtr->stats;
    MilterStatsExtra extra;
    Tcl_Obj *resultObj, *countersObj, *subObj, *gaugesObj, *histObj;
    uint64_t *c;
    int64_t open, inFlight;
    int format = 0, index, i, k;

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
    if (format == 1) {
	size_t len;
	char *text = MilterStatsPrometheus(stats, &extra, milterEventNames,
		&len);

	Tcl_SetObjResult(interp, Tcl_NewStringObj(text, (Tcl_Size) len));
	MilterFree(text);
	return TCL_OK;
    }

    c = stats->counters;
    countersObj = Tcl_NewDictObj();
    for (i = 0; milterStatCounterNames[i] != NULL; i++) {
	PutWide(countersObj, milterStatCounterNames[i],
		(Tcl_WideInt) MilterStatsGet(&c[i]));
    }
    subObj = Tcl_NewDictObj();
    for (i = 0; i < MILTER_STAT_OUTCOMES; i++) {
	PutWide(subObj, milterStatOutcomeNames[i],
		(Tcl_WideInt) MilterStatsGet(&stats->outcomes[i]));
    }
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("message_verdicts", -1),
	    subObj);
    subObj = Tcl_NewDictObj();
    for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	Tcl_Obj *kindsObj = Tcl_NewDictObj();

	for (k = 0; k < MILTER_STAT_VERDICTS; k++) {
	    PutWide(kindsObj, milterStatVerdictNames[k],
		    (Tcl_WideInt) MilterStatsGet(&stats->verdicts[i][k]));
	}
	Tcl_DictObjPut(NULL, subObj, Tcl_NewStringObj(milterEventNames[i],
		-1), kindsObj);
    }
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("callback_verdicts", -1),
	    subObj);
    subObj = Tcl_NewDictObj();
    for (i = 0; i < MILTER_STAT_MODS; i++) {
	PutWide(subObj, milterStatModNames[i],
		(Tcl_WideInt) MilterStatsGet(&stats->mods[i]));
    }
    Tcl_DictObjPut(NULL, countersObj,
	    Tcl_NewStringObj("modifications", -1), subObj);

    MilterStatsGauges(stats, &open, &inFlight);
    gaugesObj = Tcl_NewDictObj();
    PutWide(gaugesObj, "connections_open", open);
    PutWide(gaugesObj, "messages_in_flight", inFlight);
    PutWide(gaugesObj, "events_queued", extra.queued);
    PutWide(gaugesObj, "callbacks_running",
	    (Tcl_WideInt) (int64_t) MilterStatsGet(&c[MILTER_STAT_RUNNING]));
    PutWide(gaugesObj, "workers", extra.workers);
    PutWide(gaugesObj, "workers_busy", (Tcl_WideInt) (int64_t)
	    MilterStatsGet(&c[MILTER_STAT_WORKERS_BUSY]));

    histObj = Tcl_NewDictObj();
    subObj = Tcl_NewDictObj();
    for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	Tcl_DictObjPut(NULL, subObj, Tcl_NewStringObj(milterEventNames[i],
		-1), HistDict(&stats->callback[i]));
    }
    Tcl_DictObjPut(NULL, histObj, Tcl_NewStringObj("callback", -1),
	    subObj);
    Tcl_DictObjPut(NULL, histObj, Tcl_NewStringObj("message", -1),
	    HistDict(&stats->message));

    resultObj = Tcl_NewDictObj();
    PutWide(resultObj, "started", (Tcl_WideInt) stats->started);
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("counters", -1),
	    countersObj);
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("gauges", -1),
	    gaugesObj);
    Tcl_DictObjPut(NULL, resultObj, Tcl_NewStringObj("histograms", -1),
	    histObj);
    Tcl_SetObjResult(interp, resultObj);
    return TCL_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionsObjCmd --
 *
 *	milter sessions
 *
 *	Lists the live MTA connections, oldest first, each a dict: id,
 *	client, address, stage, age (seconds), sender, recipients (of the
 *	open message), busy (an event is out for a callback's verdict) and
 *	busytime (seconds it has been out).
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
    if (statePtr->server == NULL) {
	Tcl_SetObjResult(interp, listObj);
	return TCL_OK;
    }
    infos = MilterServerDescribe(statePtr->server, &n);
    for (i = 0; i < n; i++) {
	MilterConnInfo *p = &infos[i];
	Tcl_Obj *d = Tcl_NewDictObj();

	PutWide(d, "id", (Tcl_WideInt) p->id);
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("client", -1),
		MilterNewTextObj(statePtr, p->session.client,
		strlen(p->session.client)));
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("address", -1),
		MilterNewTextObj(statePtr, p->session.address,
		strlen(p->session.address)));
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("stage", -1),
		Tcl_NewStringObj(p->session.stage, -1));
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("age", -1),
		Tcl_NewDoubleObj(p->ageMs / 1000.0));
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("sender", -1),
		MilterNewTextObj(statePtr, p->session.sender,
		strlen(p->session.sender)));
	PutWide(d, "recipients", p->session.recipients);
	PutWide(d, "busy", p->busy);
	Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("busytime", -1),
		Tcl_NewDoubleObj(p->busyMs / 1000.0));
	Tcl_ListObjAppendElement(NULL, listObj, d);
    }
    MilterFree(infos);
    Tcl_SetObjResult(interp, listObj);
    return TCL_OK;
}
