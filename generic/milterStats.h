/*
 * milterStats.h --
 *
 *	Statistics of one milter (milter stats): counters, gauges and
 *	latency histograms, kept with atomic additions so that the network
 *	thread, the owner and the worker threads count without a lock. No
 *	Tcl in the counting part: the session (milterSession.c) and the
 *	network thread (unix/) call it too.
 *
 *	Threads: any thread counts. MilterStatsReset runs on the owner
 *	while the milter is idle (no other thread counts then). A reader
 *	sees each number exactly; numbers read one after the other may be
 *	a few events apart while the milter runs.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERSTATS_H
#define _MILTERSTATS_H

#include <stddef.h>
#include <stdint.h>

#ifndef MODULE_SCOPE
#   define MODULE_SCOPE extern __attribute__((visibility("hidden")))
#endif

typedef struct MilterStats MilterStats;

/*
 * Simple counters (and two gauges kept the same way). Documented in
 * doc/tclmilter.n, STATISTICS.
 */

typedef enum MilterStatCounter {
    MILTER_STAT_ACCEPTED,	/* Connections accepted. */
    MILTER_STAT_REFUSED,	/* ... refused (-maxconnections). */
    MILTER_STAT_CLOSED,		/* ... closed. */
    MILTER_STAT_SESSIONS,	/* SMTP sessions (connect commands). */
    MILTER_STAT_MESSAGES,	/* Messages begun. */
    MILTER_STAT_CALLBACK_ERRORS,/* Callbacks that failed. */
    MILTER_STAT_DEFAULT_REPLIES,/* Verdicts that were -defaultreply. */
    MILTER_STAT_PROTOCOL_ERRORS,/* Malformed or misplaced MTA input. */
    MILTER_STAT_TIMEOUTS,	/* Connections ended past -timeout. */
    MILTER_STAT_RUNNING,	/* Gauge: callbacks running now. */
    MILTER_STAT_WORKERS_BUSY,	/* Gauge: workers running a callback. */
    MILTER_STAT_COUNT
} MilterStatCounter;

/*
 * Kinds of verdicts (continue reject discard accept tempfail skip), of
 * message outcomes (accept reject discard tempfail aborted) and of
 * modifications; the number of histogram buckets with a finite bound.
 */

#define MILTER_STAT_VERDICTS	6
#define MILTER_STAT_OUTCOMES	5
#define MILTER_STAT_ABORTED	(-1)
#define MILTER_STAT_MODS	8
#define MILTER_STAT_EVENTS	13
#define MILTER_STAT_BUCKETS	17

/*
 * A latency histogram: observations per bucket (not cumulative; the last
 * one is +Inf) and their sum in microseconds.
 */

typedef struct MilterHist {
    uint64_t buckets[MILTER_STAT_BUCKETS + 1];
    uint64_t sumMicros;
} MilterHist;

/*
 * The statistics. Every field is read and written only with atomic
 * operations (relaxed: they are independent numbers).
 */

struct MilterStats {
    uint64_t counters[MILTER_STAT_COUNT];
    uint64_t verdicts[MILTER_STAT_EVENTS][MILTER_STAT_VERDICTS];
				/* Callback verdicts by event and kind. */
    uint64_t outcomes[MILTER_STAT_OUTCOMES];
				/* Messages ended, by final verdict. */
    uint64_t mods[MILTER_STAT_MODS];
				/* Modifications sent, by kind. */
    MilterHist callback[MILTER_STAT_EVENTS];
				/* Time in script, by event. */
    MilterHist message;		/* Message: first command to verdict. */
    int64_t started;		/* Wall clock seconds of the last reset. */
};

/*
 * What the counters do not hold: gauges read from elsewhere at the time
 * of the report.
 */

typedef struct MilterStatsExtra {
    long queued;		/* Events waiting in ready queues. */
    long workers;		/* Workers serving. */
} MilterStatsExtra;

MODULE_SCOPE const char *const milterStatVerdictNames[];
MODULE_SCOPE const char *const milterStatOutcomeNames[];
MODULE_SCOPE const char *const milterStatModNames[];
MODULE_SCOPE const double milterStatBounds[];
MODULE_SCOPE const char *const milterStatCounterNames[];

MODULE_SCOPE MilterStats *MilterStatsNew(void);
MODULE_SCOPE void	MilterStatsFree(MilterStats *stats);
MODULE_SCOPE void	MilterStatsReset(MilterStats *stats);
MODULE_SCOPE int64_t	MilterStatsNow(void);
MODULE_SCOPE void	MilterStatsCount(MilterStats *stats, int which,
			    int delta);
MODULE_SCOPE void	MilterStatsVerdict(MilterStats *stats, int event,
			    int verdict);
MODULE_SCOPE void	MilterStatsMessage(MilterStats *stats, int verdict,
			    int64_t startMicros);
MODULE_SCOPE void	MilterStatsModifications(MilterStats *stats,
			    const unsigned char *packets, size_t len);
MODULE_SCOPE void	MilterStatsCallback(MilterStats *stats, int event,
			    int64_t micros);
MODULE_SCOPE uint64_t	MilterStatsGet(const uint64_t *counterPtr);
MODULE_SCOPE void	MilterStatsGauges(MilterStats *stats,
			    int64_t *openPtr, int64_t *inFlightPtr);
MODULE_SCOPE void	MilterStatsReadHist(MilterHist *histPtr,
			    uint64_t cum[MILTER_STAT_BUCKETS + 1],
			    double *sumPtr);
MODULE_SCOPE char *	MilterStatsPrometheus(MilterStats *stats,
			    const MilterStatsExtra *extraPtr,
			    const char *const eventNames[], size_t *lenPtr);

/*
 * A library built with -DMILTER_NO_STATS counts nothing: the calls that
 * count, and the clock reads that time callbacks and messages, vanish.
 * make bench builds one so that it can show what counting costs beside
 * the library that counts. milter stats then reports zeros.
 */

#if defined(MILTER_NO_STATS) && !defined(MILTER_STATS_DEFINE)
#   define MilterStatsCount(stats, which, delta) \
	((void) (stats), (void) (which), (void) (delta))
#   define MilterStatsVerdict(stats, event, verdict) \
	((void) (stats), (void) (event), (void) (verdict))
#   define MilterStatsMessage(stats, verdict, startMicros) \
	((void) (stats), (void) (verdict), (void) (startMicros))
#   define MilterStatsModifications(stats, packets, len) \
	((void) (stats), (void) (packets), (void) (len))
#   define MilterStatsCallback(stats, event, micros) \
	((void) (stats), (void) (event), (void) (micros))
#   define MilterStatsNow()	((int64_t) 0)
#endif

#endif /* _MILTERSTATS_H */
