/*
 * milterStats.c --
 *
 *	The statistics of a milter: counting (any thread, atomic additions,
 *	no lock) and the Prometheus text exposition format (version 0.0.4).
 *	No Tcl here, so that any thread may count and report, and the
 *	session's fuzz targets link it alone; the commands are in
 *	milterStatsCmd.c.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#define MILTER_STATS_DEFINE	/* The real functions, even without
				 * counting (see milterStats.h). */
#include "milterStats.h"
#include "milterSession.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Atomics, in the one style of unix/milterServerInt.h (which this file,
 * linked alone into the fuzz targets, does not include): every counter is
 * read and written only through these.
 */

#ifndef ATOMIC_GET
#define ATOMIC_GET(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ATOMIC_ADD(p, v)	__atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define ATOMIC_FENCE()		__atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

/*
 * Clock units.
 */

#define US_PER_S	1000000
#define NS_PER_US	1000

/*
 * Names of the kinds, in index order.
 */

/*
 * Indices into the kinds that are not values of their own: skip among the
 * verdicts (the others are their MILTER_* value), the final verdicts of a
 * message, and the modifications.
 */

#define VERDICT_SKIP_INDEX	5

enum OutcomeIndex {
    OUTCOME_ACCEPT, OUTCOME_REJECT, OUTCOME_DISCARD, OUTCOME_TEMPFAIL,
    OUTCOME_ABORTED
};

static const int outcomeVerdicts[MILTER_STAT_OUTCOMES] = {
    MILTER_ACCEPT, MILTER_REJECT, MILTER_DISCARD, MILTER_TEMPFAIL,
    MILTER_STAT_ABORTED
};

enum ModIndex {
    MOD_ADDHEADER, MOD_CHGHEADER, MOD_INSHEADER, MOD_ADDRCPT, MOD_DELRCPT,
    MOD_CHGFROM, MOD_REPLBODY, MOD_QUARANTINE
};

const char *const milterStatVerdictNames[] = {
    "continue", "reject", "discard", "accept", "tempfail", "skip", NULL
};
const char *const milterStatOutcomeNames[] = {
    "accept", "reject", "discard", "tempfail", "aborted", NULL
};
const char *const milterStatModNames[] = {
    "addheader", "chgheader", "insheader", "addrcpt", "delrcpt",
    "chgfrom", "replbody", "quarantine", NULL
};

/*
 * Upper bounds of the histogram buckets, in seconds; +Inf follows.
 */

const double milterStatBounds[MILTER_STAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};
static const int64_t boundMicros[MILTER_STAT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000
};

const char *const milterStatCounterNames[] = {
    "connections_accepted", "connections_refused", "connections_closed",
    "sessions", "messages", "callback_errors", "default_replies",
    "protocol_errors", "timeouts", NULL
};

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsNew --
 *
 *	Makes a zeroed statistics block.
 *
 * Results:
 *	The block, to be released with MilterStatsFree.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

MilterStats *
MilterStatsNew(void)
{
    MilterStats *stats = MilterAlloc(sizeof(MilterStats));

    MilterStatsReset(stats);
    return stats;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsFree --
 *
 *	Releases a statistics block.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees memory.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsFree(
    MilterStats *stats)
{
    MilterFree(stats);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsReset --
 *
 *	Zeroes every counter and histogram of a block and notes the
 *	time.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the block; sets its start time.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsReset(
    MilterStats *stats)
{
    memset(stats, 0, sizeof(MilterStats));
    stats->started = (int64_t) time(NULL);
    ATOMIC_FENCE();
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsNow --
 *
 *	The monotonic clock.
 *
 * Results:
 *	Microseconds.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int64_t
MilterStatsNow(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * US_PER_S + ts.tv_nsec / NS_PER_US;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsCount --
 *
 *	Adds to a simple counter or gauge (a MILTER_STAT_*). A NULL block
 *	counts nothing.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the counter.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsCount(
    MilterStats *stats,
    int which,			/* A MILTER_STAT_* counter. */
    int delta)			/* Negative for a gauge going down. */
{
    if (stats != NULL) {
	ATOMIC_ADD(&stats->counters[which], (uint64_t) (int64_t) delta);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * VerdictIndex --
 *
 *	The index of a verdict (a MILTER_* value) among the kinds.
 *
 * Results:
 *	The index; 0 (continue) for anything unknown.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
VerdictIndex(
    int verdict)		/* A MILTER_* value. */
{
    if (verdict == MILTER_SKIP) {
	return VERDICT_SKIP_INDEX;
    }
    if (verdict < 0 || verdict > MILTER_TEMPFAIL) {
	return 0;
    }
    return verdict;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsVerdict --
 *
 *	Counts a callback's verdict (a MILTER_* value) for an event. A
 *	NULL block counts nothing.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the counter.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsVerdict(
    MilterStats *stats,
    int event,			/* A MILTER_EV_* event. */
    int verdict)		/* A MILTER_* value. */
{
    if (stats != NULL && event >= 0 && event < MILTER_STAT_EVENTS) {
	ATOMIC_ADD(&stats->verdicts[event][VerdictIndex(verdict)], 1);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Observe --
 *
 *	Adds one observation to a histogram.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the histogram.
 *
 *----------------------------------------------------------------------
 */

static void
Observe(
    MilterHist *histPtr,
    int64_t micros)
{
    int i = 0;

    if (micros < 0) {
	micros = 0;
    }
    while (i < MILTER_STAT_BUCKETS && micros > boundMicros[i]) {
	i++;
    }
    ATOMIC_ADD(&histPtr->buckets[i], 1);
    ATOMIC_ADD(&histPtr->sumMicros, (uint64_t) micros);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsMessage --
 *
 *	A message ended with this final verdict (MILTER_STAT_ABORTED when
 *	the MTA gave it up; MILTER_CONTINUE at end of message counts as
 *	accept), having begun at startMicros (MilterStatsNow).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the counters and histograms.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsMessage(
    MilterStats *stats,
    int verdict,		/* MILTER_* or MILTER_STAT_ABORTED. */
    int64_t startMicros)	/* MilterStatsNow() at its start. */
{
    int index, i;

    if (stats == NULL) {
	return;
    }
    index = OUTCOME_ACCEPT;		/* Also continue. */
    for (i = 0; i < MILTER_STAT_OUTCOMES; i++) {
	if (outcomeVerdicts[i] == verdict) {
	    index = i;
	}
    }
    ATOMIC_ADD(&stats->outcomes[index], 1);
    Observe(&stats->message, MilterStatsNow() - startMicros);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsCallback --
 *
 *	A callback of this event ran for so many microseconds.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the event's histogram.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsCallback(
    MilterStats *stats,
    int event,			/* A MILTER_EV_* event. */
    int64_t micros)		/* Time the script ran. */
{
    if (stats != NULL && event >= 0 && event < MILTER_STAT_EVENTS) {
	Observe(&stats->callback[event], micros);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsModifications --
 *
 *	Counts the modification packets (as queued for the MTA: 4-byte
 *	length, command, data) about to be sent at end of message.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the counters.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsModifications(
    MilterStats *stats,
    const unsigned char *packets,
    size_t len)
{
    size_t pos = 0;
    int replbody = 0;

    if (stats == NULL) {
	return;
    }
    while (pos + MILTER_LEN_BYTES + 1 <= len) {
	uint32_t size = MilterWireGet32(packets + pos);
	int index = -1;

	switch (packets[pos + MILTER_LEN_BYTES]) {
	case SMFIR_ADDHEADER:	index = MOD_ADDHEADER;	break;
	case SMFIR_CHGHEADER:	index = MOD_CHGHEADER;	break;
	case SMFIR_INSHEADER:	index = MOD_INSHEADER;	break;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:	index = MOD_ADDRCPT;	break;
	case SMFIR_DELRCPT:	index = MOD_DELRCPT;	break;
	case SMFIR_CHGFROM:	index = MOD_CHGFROM;	break;
	case SMFIR_REPLBODY:	replbody = 1;		break;
	case SMFIR_QUARANTINE:	index = MOD_QUARANTINE;	break;
	}
	if (index >= 0) {
	    ATOMIC_ADD(&stats->mods[index], 1);
	}
	if (size == 0) {
	    break;
	}
	pos += MILTER_LEN_BYTES + (size_t) size;
    }
    if (replbody) {
	ATOMIC_ADD(&stats->mods[MOD_REPLBODY], 1);
				/* One per message, not chunk. */
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsGet --
 *
 *	Reads one number.
 *
 * Results:
 *	Its value.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

uint64_t
MilterStatsGet(
    const uint64_t *counterPtr)
{
    return ATOMIC_GET(counterPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsGauges --
 *
 *	The gauges derived from the counters: open connections and
 *	messages in flight.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *openPtr and *inFlightPtr.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsGauges(
    MilterStats *stats,
    int64_t *openPtr,
    int64_t *inFlightPtr)
{
    int64_t ended = 0;
    int i;

    for (i = 0; i < MILTER_STAT_OUTCOMES; i++) {
	ended += (int64_t) ATOMIC_GET(&stats->outcomes[i]);
    }
    *inFlightPtr = (int64_t) ATOMIC_GET(&stats->counters[MILTER_STAT_MESSAGES])
	    - ended;
    *openPtr = (int64_t) ATOMIC_GET(&stats->counters[MILTER_STAT_ACCEPTED])
	    - (int64_t) ATOMIC_GET(&stats->counters[MILTER_STAT_CLOSED]);
    if (*inFlightPtr < 0) {
	*inFlightPtr = 0;	/* Read between the two counters. */
    }
    if (*openPtr < 0) {
	*openPtr = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsReadHist --
 *
 *	A snapshot of a histogram: cumulative bucket counts (the last is
 *	the count of all observations) and the sum in seconds.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills cum[] and *sumPtr.
 *
 *----------------------------------------------------------------------
 */

void
MilterStatsReadHist(
    MilterHist *histPtr,
    uint64_t cum[MILTER_STAT_BUCKETS + 1],
    double *sumPtr)
{
    uint64_t total = 0;
    int i;

    for (i = 0; i <= MILTER_STAT_BUCKETS; i++) {
	total += ATOMIC_GET(&histPtr->buckets[i]);
	cum[i] = total;
    }
    *sumPtr = ATOMIC_GET(&histPtr->sumMicros) / 1e6;
}

/*
 *----------------------------------------------------------------------
 *
 * Out --
 *
 *	printf onto a growing buffer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the buffer.
 *
 *----------------------------------------------------------------------
 */

static void
Out(
    MilterBuf *bufPtr,
    const char *format,
    ...)
{
    char line[512];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    if (n > 0) {
	MilterBufAppend(bufPtr, line,
		(size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * OutHist --
 *
 *	One histogram (its buckets, sum and count lines) in the text
 *	format.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the buffer.
 *
 *----------------------------------------------------------------------
 */

static void
OutHist(
    MilterBuf *bufPtr,
    const char *name,		/* Without the "tclmilter_" prefix. */
    const char *label,		/* 'event="helo",' or "". */
    MilterHist *histPtr)
{
    uint64_t cum[MILTER_STAT_BUCKETS + 1];
    double sum;
    int i;

    MilterStatsReadHist(histPtr, cum, &sum);
    for (i = 0; i < MILTER_STAT_BUCKETS; i++) {
	Out(bufPtr, "tclmilter_%s_bucket{%sle=\"%g\"} %llu\n", name, label,
		milterStatBounds[i], (unsigned long long) cum[i]);
    }
    Out(bufPtr, "tclmilter_%s_bucket{%sle=\"+Inf\"} %llu\n", name, label,
	    (unsigned long long) cum[MILTER_STAT_BUCKETS]);
    if (*label != '\0') {
	char plain[64];

	snprintf(plain, sizeof(plain), "{%.*s}", (int) strlen(label) - 1,
		label);
	Out(bufPtr, "tclmilter_%s_sum%s %.6f\ntclmilter_%s_count%s %llu\n",
		name, plain, sum, name, plain,
		(unsigned long long) cum[MILTER_STAT_BUCKETS]);
    } else {
	Out(bufPtr, "tclmilter_%s_sum %.6f\ntclmilter_%s_count %llu\n",
		name, sum, name,
		(unsigned long long) cum[MILTER_STAT_BUCKETS]);
    }
}

/*
 * The metrics of the text format, in the order they are written: each is
 * a HELP and a TYPE line, then the values that 'source' says where to
 * find (MetricValues).
 */

typedef enum MetricSource {
    SRC_COUNTER,		/* counters[index], unsigned. */
    SRC_GAUGE,			/* counters[index], a signed gauge. */
    SRC_OPEN,			/* Connections open now. */
    SRC_IN_FLIGHT,		/* Messages begun and not ended. */
    SRC_QUEUED,			/* MilterStatsExtra.queued. */
    SRC_WORKERS,		/* MilterStatsExtra.workers. */
    SRC_STARTED,		/* MilterStats.started. */
    SRC_OUTCOMES,		/* One value per final verdict. */
    SRC_VERDICTS,		/* One value per event and verdict. */
    SRC_MODS,			/* One value per kind of modification. */
    SRC_CALLBACK_HIST,		/* One histogram per event. */
    SRC_MESSAGE_HIST		/* The message duration histogram. */
} MetricSource;

typedef struct Metric {
    const char *name;		/* Without the "tclmilter_" prefix. */
    const char *type;		/* counter, gauge or histogram. */
    const char *help;
    MetricSource source;
    int index;			/* MILTER_STAT_* for SRC_COUNTER and
				 * SRC_GAUGE. */
} Metric;

static const Metric metrics[] = {
    {"connections_total", "counter", "MTA connections accepted.",
	    SRC_COUNTER, MILTER_STAT_ACCEPTED},
    {"connections_refused_total", "counter",
	    "MTA connections refused at -maxconnections.",
	    SRC_COUNTER, MILTER_STAT_REFUSED},
    {"connections_closed_total", "counter", "MTA connections closed.",
	    SRC_COUNTER, MILTER_STAT_CLOSED},
    {"sessions_total", "counter", "SMTP sessions (connect commands).",
	    SRC_COUNTER, MILTER_STAT_SESSIONS},
    {"messages_started_total", "counter", "Messages begun.",
	    SRC_COUNTER, MILTER_STAT_MESSAGES},
    {"messages_total", "counter", "Messages ended, by final verdict.",
	    SRC_OUTCOMES, 0},
    {"verdicts_total", "counter", "Callback verdicts, by event and verdict.",
	    SRC_VERDICTS, 0},
    {"modifications_total", "counter",
	    "Modifications sent to the MTA, by kind.", SRC_MODS, 0},
    {"callback_errors_total", "counter",
	    "Callbacks that raised an error or returned a bad result.",
	    SRC_COUNTER, MILTER_STAT_CALLBACK_ERRORS},
    {"default_replies_total", "counter",
	    "Verdicts that were the -defaultreply.",
	    SRC_COUNTER, MILTER_STAT_DEFAULT_REPLIES},
    {"protocol_errors_total", "counter",
	    "Malformed or misplaced input from the MTA.",
	    SRC_COUNTER, MILTER_STAT_PROTOCOL_ERRORS},
    {"timeouts_total", "counter", "Connections ended past -timeout.",
	    SRC_COUNTER, MILTER_STAT_TIMEOUTS},
    {"connections_open", "gauge", "MTA connections open now.",
	    SRC_OPEN, 0},
    {"messages_in_flight", "gauge", "Messages begun and not ended.",
	    SRC_IN_FLIGHT, 0},
    {"events_queued", "gauge", "Events waiting for an interpreter.",
	    SRC_QUEUED, 0},
    {"callbacks_running", "gauge", "Callbacks running now.",
	    SRC_GAUGE, MILTER_STAT_RUNNING},
    {"workers", "gauge", "Worker interpreters serving.", SRC_WORKERS, 0},
    {"workers_busy", "gauge", "Worker interpreters running a callback now.",
	    SRC_GAUGE, MILTER_STAT_WORKERS_BUSY},
    {"start_time_seconds", "gauge",
	    "When the milter last started, seconds since the epoch.",
	    SRC_STARTED, 0},
    {"callback_duration_seconds", "histogram",
	    "Time in script per callback, by event.", SRC_CALLBACK_HIST, 0},
    {"message_duration_seconds", "histogram",
	    "Time from a message's first command to its final verdict.",
	    SRC_MESSAGE_HIST, 0}
};

#define METRIC_COUNT	((int) (sizeof(metrics) / sizeof(metrics[0])))

/*
 *----------------------------------------------------------------------
 *
 * OutLabelled --
 *
 *	The value lines of a counter with one label, one line per name:
 *	tclmilter_NAME{KEY="name"} value.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the buffer.
 *
 *----------------------------------------------------------------------
 */

static void
OutLabelled(
    MilterBuf *bufPtr,
    const char *name,		/* Without the "tclmilter_" prefix. */
    const char *key,		/* The label. */
    const char *const labels[],	/* Its values, NULL-terminated. */
    uint64_t *counters)		/* One per label value. */
{
    int i;

    for (i = 0; labels[i] != NULL; i++) {
	Out(bufPtr, "tclmilter_%s{%s=\"%s\"} %llu\n", name, key, labels[i],
		(unsigned long long) ATOMIC_GET(&counters[i]));
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MetricValues --
 *
 *	The value lines of one metric (those after its HELP and TYPE
 *	lines) in the text format.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the buffer.
 *
 *----------------------------------------------------------------------
 */

static void
MetricValues(
    MilterBuf *bufPtr,
    const Metric *mPtr,
    MilterStats *stats,
    const MilterStatsExtra *extraPtr,
    const char *const eventNames[])	/* MILTER_STAT_EVENTS names. */
{
    const char *name = mPtr->name;
    uint64_t *c = stats->counters;
    int64_t open, inFlight;
    long long value = 0;
    char label[64];
    int i, k;

    MilterStatsGauges(stats, &open, &inFlight);
    switch (mPtr->source) {
    case SRC_COUNTER:
	Out(bufPtr, "tclmilter_%s %llu\n", name,
		(unsigned long long) ATOMIC_GET(&c[mPtr->index]));
	return;
    case SRC_GAUGE:
	value = (long long) (int64_t) ATOMIC_GET(&c[mPtr->index]);
	break;
    case SRC_OPEN:
	value = (long long) open;
	break;
    case SRC_IN_FLIGHT:
	value = (long long) inFlight;
	break;
    case SRC_QUEUED:
	value = (long long) extraPtr->queued;
	break;
    case SRC_WORKERS:
	value = (long long) extraPtr->workers;
	break;
    case SRC_STARTED:
	value = (long long) stats->started;
	break;
    case SRC_OUTCOMES:
	OutLabelled(bufPtr, name, "verdict", milterStatOutcomeNames,
		stats->outcomes);
	return;
    case SRC_VERDICTS:
	for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	    for (k = 0; k < MILTER_STAT_VERDICTS; k++) {
		Out(bufPtr, "tclmilter_%s{event=\"%s\",verdict=\"%s\"}"
			" %llu\n", name, eventNames[i],
			milterStatVerdictNames[k],
			(unsigned long long)
			ATOMIC_GET(&stats->verdicts[i][k]));
	    }
	}
	return;
    case SRC_MODS:
	OutLabelled(bufPtr, name, "kind", milterStatModNames, stats->mods);
	return;
    case SRC_CALLBACK_HIST:
	for (i = 0; i < MILTER_STAT_EVENTS; i++) {
	    snprintf(label, sizeof(label), "event=\"%s\",", eventNames[i]);
	    OutHist(bufPtr, name, label, &stats->callback[i]);
	}
	return;
    case SRC_MESSAGE_HIST:
	OutHist(bufPtr, name, "", &stats->message);
	return;
    }
    Out(bufPtr, "tclmilter_%s %lld\n", name, value);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStatsPrometheus --
 *
 *	The statistics in the Prometheus text exposition format 0.0.4.
 *	Callable from any thread; no Tcl.
 *
 * Results:
 *	A MilterAlloc'ed text (the caller frees it with MilterFree), its
 *	length in *lenPtr.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

char *
MilterStatsPrometheus(
    MilterStats *stats,
    const MilterStatsExtra *extraPtr,
    const char *const eventNames[],	/* MILTER_STAT_EVENTS names. */
    size_t *lenPtr)
{
    MilterBuf buf;
    char *text;
    int i;

    MilterBufInit(&buf);
    for (i = 0; i < METRIC_COUNT; i++) {
	const Metric *mPtr = &metrics[i];

	Out(&buf, "# HELP tclmilter_%s %s\n# TYPE tclmilter_%s %s\n",
		mPtr->name, mPtr->help, mPtr->name, mPtr->type);
	MetricValues(&buf, mPtr, stats, extraPtr, eventNames);
    }
    *lenPtr = MilterBufLength(&buf);
    text = MilterAlloc(*lenPtr + 1);
    memcpy(text, MilterBufData(&buf), *lenPtr);
    text[*lenPtr] = '\0';
    MilterBufFree(&buf);
    return text;
}
