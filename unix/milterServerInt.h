/*
 * milterServerInt.h --
 *
 *	What the network thread (milterServer.c) and the connections it
 *	serves (milterConn.c) share: both structures and the few functions
 *	one calls in the other. Each structure has one owner: milterServer.c
 *	writes the fields of MilterServer and the server's links in a
 *	MilterConn; milterConn.c writes everything else of a MilterConn.
 *	Nothing outside unix/ includes this file.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef MILTER_SERVER_INT_H
#define MILTER_SERVER_INT_H

#include "milterServer.h"
#include "milterList.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/*
 * Bounds of one connection (documented in doc/tclmilter.n, LIMITS).
 *   READ_CHUNK:	bytes asked of one recv().
 *   READ_TURN:		bytes read from one connection per turn of the
 *			network thread, so a flood cannot starve the rest.
 *   OUTPUT_BOUND:	replies queued for an MTA that does not read them;
 *			past it the connection is neither read nor run
 *			until the MTA has taken them.
 * Input is read while less than -maxdatasize + a packet header is
 * buffered, so at most one packet plus one READ_CHUNK waits.
 */

#define READ_CHUNK	16384
#define READ_TURN	(4 * READ_CHUNK)
#define OUTPUT_BOUND	65536

/*
 * Milliseconds an MTA that has stopped reading may hold a connection with
 * replies still owed once a stop's -draintimeout has passed.
 */

#define LINGER_AFTER_DEADLINE	1000

/*
 * Atomics, in one style: fields shared without a lock are read and written
 * only through these.
 */

#define ATOMIC_GET(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ATOMIC_SET(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ATOMIC_ADD(p, v)	__atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

typedef struct MilterMetricsConn MilterMetricsConn;

/*
 *----------------------------------------------------------------------
 *
 * MilterNowMs --
 *
 *	The monotonic clock, the one time base of the network side.
 *
 * Results:
 *	Milliseconds.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static inline int64_t
MilterNowMs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogWanted --
 *
 *	Whether a debug level wants log lines of a level: errors and
 *	warnings always, notices from level 1, info from 2, debug from 3.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static inline int
MilterLogWanted(
    int debugLevel,
    MilterLogLevel level)
{
    return level <= MILTER_LOG_WARNING || debugLevel >= (int) level - 1;
}

/*
 * What a connection needs from the server that runs it: the epoll set,
 * the settings and the shared flags, the log hook, and where to say that
 * it closed or was freed. milterConn.c knows only this, not MilterServer,
 * so calls go one way, from milterServer.c to milterConn.c. Filled in
 * once at start; the pointed-to flags are read atomically.
 */

typedef struct MilterConnHost {
    int epollFd;
    const char *address;	/* The connection spec bound. */
    const MilterServerConfig *config;
    const unsigned *wantedPtr;	/* Events with a callback. */
    const int *stoppingPtr;	/* A stop was requested. */
    const int *debugLevelPtr;	/* The log's detail. */
    void (*log)(void *clientData, MilterLogLevel level, const char *msg);
    void *logData;		/* The log hook's clientData. */
    void (*closed)(void *clientData, MilterConn *conn);
				/* Any thread: the connection's descriptor
				 * is closed; unlink it. */
    void (*freed)(void *clientData);
				/* Any thread: the connection's last
				 * reference went. */
    void *clientData;		/* For closed and freed. */
} MilterConnHost;

/*
 * What the network thread's timer pass tells each connection
 * (MilterConnTick).
 */

typedef struct MilterTick {
    int64_t now;		/* Monotonic milliseconds. */
    int64_t timeout;		/* -timeout in ms; 0 means none. */
    int stopping;		/* A stop was requested. */
    int late;			/* ... and its -draintimeout has passed. */
    int hard;			/* Close at once, no more callbacks. */
} MilterTick;

/*
 * One MTA connection. The fields under "server" belong to milterServer.c
 * and are guarded by the server's lock; the rest belong to milterConn.c
 * and are guarded by 'lock' unless marked otherwise.
 */

struct MilterConn {
    pthread_mutex_t lock;
    const MilterConnHost *host;	/* Never changes. */
    unsigned long id;		/* Never changes. */
    int refs;			/* The network thread's, one per event
				 * handed out; atomic. */

    /* server: */
    MilterConn *prev, *next;	/* Live connections. */
    MilterConn *nextReap;	/* Retired, waiting to be unlinked. */
    int retired;		/* On the reap list. */

    MilterQueue *queue;		/* Where its events go; never changes. */
    MilterConn *nextReady;	/* The queue's link (its lock). */
    MilterEvent *readyEvent;	/* Event waiting there (its lock). */

    int fd;			/* -1 once closed. */
    int registered;		/* The descriptor is in the epoll set ... */
    uint32_t interest;		/* ... with this event mask. */
    MilterSession *session;
    MilterBuf in;		/* Bytes read and not yet processed. */
    int busy;			/* An event is out for a verdict. */
    int inputEnded;		/* No more input: end the session. */
    int ending;			/* MilterSessionEnd has been called. */
    int hangup;			/* epoll reported a hang-up or error. */
    int peerClosed;		/* The MTA closed its side (or a read or
				 * write failed): nothing reaches it. */
    int dead;			/* Hard stop: abandoned, no callbacks. */
    int expired;		/* Ended at the stop deadline, or aborted:
				 * no more script callbacks but abort and
				 * close (atomic). */
    int aborted;		/* milter session abort: the MTA's side is
				 * shut down once the replies are out. */
    int shut;			/* ... and it has been. */
    MilterEvent *voided;	/* The event out when the abort answered it:
				 * its holder's verdict is ignored, and the
				 * event freed, when it comes. */
    int hasData;		/* The owner attached data. */
    int64_t lastActive;		/* Monotonic ms of the last byte moved. */
    int64_t born;		/* Monotonic ms of the accept. */
    int64_t busySince;		/* Monotonic ms: when the event out was
				 * handed out. */
    void *clientData;		/* The owner's per-connection data. */
    MilterCapture *capture;	/* -capture: this session's, or NULL. */
    size_t captureSeen;		/* Output bytes at the front of the
				 * session's output already captured. */
};

/*
 * The server. 'lock' guards the lists, the counters and the stop state;
 * the configuration and descriptors never change after start, and the
 * fields marked "network thread" are touched by that thread only.
 */

struct MilterServer {
    MilterServerConfig config;
    MilterServerHooks hooks;
    MilterConnHost host;	/* What its connections see of it. */
    MilterListener listener;	/* What MilterSocketListen bound. */
    int epollFd;
    int wakeFd;			/* eventfd that wakes the network thread. */
    pthread_t thread;
    int threadStarted;

    pthread_mutex_t lock;
    int refs;			/* The creator's, one per connection. */
    MilterConn *conns;		/* Live connections (a list, links prev
				 * and next). */
    int connCount;
    MilterConn *reapList;	/* Retired connections (a FIFO, link */
    MilterConn **reapTail;	/* nextReap). */
    int stopping;		/* Stop requested: drain (also atomic). */
    int hard;			/* Close everything now. */
    int64_t drainDeadline;	/* Monotonic ms, once stopping. */
    unsigned long nextId;

    unsigned wanted;		/* Events with a callback (atomic). */
    int debugLevel;		/* Atomic. */

    int listening;		/* Network thread. */
    int64_t acceptResume;	/* Network thread: 0, or when to accept
				 * again after running out of
				 * descriptors. */
    int64_t nextTick;		/* Network thread: next timer pass. */
    int lateSeen;		/* Network thread: the drain deadline
				 * passed and was handled. */

    /* -metrics (milterMetrics.c), network thread: */
    MilterListener metrics;	/* Its listener; fd -1 when none. */
    MilterMetricsConn *metricsConns;	/* Scrapes being answered. */
    int metricsCount;		/* ... how many. */
};

/*
 * milterMetrics.c
 */

MODULE_SCOPE int	MilterMetricsListen(MilterServer *server, char *err,
			    size_t errLen);
MODULE_SCOPE void	MilterMetricsAccept(MilterServer *server);
MODULE_SCOPE int	MilterMetricsHandle(MilterServer *server, void *ptr,
			    uint32_t events);
MODULE_SCOPE int	MilterMetricsSweep(MilterServer *server);
MODULE_SCOPE void	MilterMetricsCloseAll(MilterServer *server);

/*
 * milterQueue.c
 */

MODULE_SCOPE int	MilterQueuePush(MilterQueue *queue, MilterConn *conn,
			    MilterEvent *ev, int *verdictPtr);
MODULE_SCOPE void	MilterQueueClose(MilterQueue *queue, int verdict);
MODULE_SCOPE void	MilterQueueUnpin(MilterQueue *queue);

/*
 * milterConn.c
 */

MODULE_SCOPE void	MilterHostLog(const MilterConnHost *host,
			    MilterLogLevel level, const char *format, ...)
#if defined(__GNUC__)
			    __attribute__((format(printf, 3, 4)))
#endif
			    ;
MODULE_SCOPE int	MilterHostLogs(const MilterConnHost *host,
			    MilterLogLevel level);
MODULE_SCOPE MilterConn *MilterConnNew(const MilterConnHost *host, int fd,
			    unsigned long id, MilterQueue *queue);
MODULE_SCOPE void	MilterConnStart(MilterConn *conn);
MODULE_SCOPE void	MilterConnHandle(MilterConn *conn, uint32_t events);
MODULE_SCOPE int64_t	MilterConnTick(MilterConn *conn,
			    const MilterTick *tickPtr);
MODULE_SCOPE MilterAbortResult MilterConnAbort(MilterConn *conn,
			    const MilterAbortReply *replyPtr,
			    const char **msgPtr);
MODULE_SCOPE void	MilterConnDescribe(MilterConn *conn,
			    MilterConnInfo *infoPtr);

#endif /* MILTER_SERVER_INT_H */
