/*
 * milterServerInt.h --
 *
 *	What the network thread (milterServer.c) and the connections it
 *	serves (milterConn.c) share: both structures and the functions one
 *	calls in the other. Nothing outside unix/ includes this file.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef MILTER_SERVER_INT_H
#define MILTER_SERVER_INT_H

#include "milterServer.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/*
 * Bytes read per read() call, and how much input may wait while a
 * connection's event is with the owner before reading pauses.
 */

#define READ_CHUNK	16384
#define SLACK		4096

/*
 * One MTA connection. Fields below 'lock' are guarded by it; the list
 * links by the server's lock; 'clientData' belongs to the owner thread.
 */

struct MilterConn {
    pthread_mutex_t lock;
    MilterServer *server;	/* Never changes. */
    unsigned long id;		/* Never changes. */
    int refs;			/* Network thread's own, one per event
				 * handed out; atomic. */
    int dead;			/* Killed by a hard stop. */
    int expired;		/* Ended at the stop deadline (atomic). */
    int fd;			/* -1 once closed. */
    MilterSession *session;
    MilterBuf in;		/* Bytes read and not yet processed. */
    int busy;			/* An event is out for a verdict. */
    int eof;			/* No more input: end the session. */
    int ending;			/* MilterSessionEnd has been called. */
    int paused;			/* Reading paused (input backlog). */
    int wantOut;		/* Waiting for the socket to drain. */
    int polled;			/* The descriptor is in the epoll set. */
    int hasData;		/* The owner attached data. */
    int reaped;			/* Queued for removal (server lock). */
    time_t lastActive;		/* Monotonic seconds of the last read. */
    void *clientData;		/* The owner's per-connection data. */
    MilterEvent *readyEvent;	/* Event waiting in the ready queue. */
    MilterConn *nextReady;	/* Ready queue link (server lock). */
    MilterConn *prev, *next;	/* Live connections (server lock). */
    MilterConn *nextReap;	/* Reap list link (server lock). */
};

/*
 * The server. 'lock' guards the lists, the counters and the flags; the
 * configuration never changes after start.
 */

struct MilterServer {
    MilterServerConfig config;
    MilterServerHooks hooks;
    MilterListener listener;	/* What MilterSocketListen bound. */
    int listenFd;		/* -1 once closed (written under lock). */
    int epollFd;
    int wakeFd;			/* eventfd that wakes the network thread. */
    pthread_t thread;
    int threadStarted;

    pthread_mutex_t lock;
    int refs;			/* The creator's, one per connection. */
    MilterConn *conns;		/* Live connections. */
    int connCount;
    MilterConn *readyHead, *readyTail;
    int readyCount;		/* Length of the ready queue. */
    MilterConn *reapList;
    int stopping;		/* Stop requested: drain. */
    int hard;			/* Close everything now. */
    unsigned long nextId;

    volatile unsigned wanted;	/* Events with a callback (atomic). */
    volatile int debugLevel;	/* Atomic. */
    struct timespec drainDeadline;
    struct timespec acceptResume;
    int acceptPaused;
    int deadlineHookRun;	/* Network thread only. */
};

/*
 * milterServer.c
 */

MODULE_SCOPE void	MilterServerLog(MilterServer *server,
			    MilterLogLevel level, const char *format, ...)
#if defined(__GNUC__)
			    __attribute__((format(printf, 3, 4)))
#endif
			    ;
MODULE_SCOPE time_t	MilterNow(void);
MODULE_SCOPE void	MilterServerWake(MilterServer *server);
MODULE_SCOPE void	MilterServerEnqueue(MilterConn *conn,
			    MilterEvent *ev);

/*
 * milterConn.c
 */

MODULE_SCOPE MilterConn *MilterConnNew(MilterServer *server, int fd);
MODULE_SCOPE void	MilterConnCloseLocked(MilterConn *conn);
MODULE_SCOPE void	MilterConnHandle(MilterConn *conn, uint32_t events);
MODULE_SCOPE void	MilterConnEnd(MilterConn *conn, const char *why);

#endif /* MILTER_SERVER_INT_H */
