/*
 * milterServer.h --
 *
 *	The network side: the listening socket, one network thread that reads
 *	every MTA connection and runs its session, timeouts, the connection
 *	limit, stop and drain. It hands events that need a script callback
 *	to its owner through a ready queue and never waits for the answer:
 *	whoever has the verdict (normally the owner thread) resumes the
 *	connection itself. No Tcl in here.
 *
 *	Threads: MilterServerStart runs on the owner thread and starts the
 *	network thread. The ready queue, MilterServerStop and the wanted
 *	mask may be used from any thread. A connection is driven by one
 *	thread at a time under its own mutex.
 *
 *	Locking order: a connection's mutex before the server's mutex; the
 *	network thread never holds either while calling a hook.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERSERVER_H
#define _MILTERSERVER_H

#include "milterSession.h"

typedef struct MilterServer MilterServer;
typedef struct MilterConn MilterConn;
typedef struct MilterQueue MilterQueue;

/*
 * Log levels, most severe first.
 */

typedef enum MilterLogLevel {
    MILTER_LOG_ERROR,
    MILTER_LOG_WARNING,
    MILTER_LOG_NOTICE,
    MILTER_LOG_INFO,
    MILTER_LOG_DEBUG
} MilterLogLevel;

/*
 * What the server calls back. Hooks run on the network thread unless
 * noted and must not block.
 */

typedef struct MilterServerHooks {
    void *clientData;
    MilterQueue *(*assign)(void *clientData);
				/* A new connection: the ready queue (already
				 * pinned with MilterQueuePin) whose
				 * interpreter will decide its events for the
				 * whole session. */
    void (*log)(void *clientData, MilterLogLevel level, const char *msg);
				/* Any thread. */
    void (*stopped)(void *clientData);
				/* Every connection is gone after a stop;
				 * the network thread is about to exit. */
    void (*threadExit)(void *clientData);
				/* Last thing the network thread does. */
    void (*deadline)(void *clientData);
				/* Once, when a stop's -draintimeout has
				 * passed: every connection is now expired
				 * (MilterConnExpired), and the owner should
				 * answer whatever it still holds. May be
				 * NULL. */
    char *(*metrics)(void *clientData, size_t *lenPtr);
				/* -metrics: the statistics in the Prometheus
				 * text format, MilterAlloc'ed (the server
				 * frees it). No Tcl. */
} MilterServerHooks;

/*
 * Settings, copied at start.
 */

typedef struct MilterServerConfig {
    const char *spec;		/* Connection spec, e.g. unix:/run/x.sock */
    int backlog;		/* listen() backlog; <= 0 means SOMAXCONN. */
    int timeout;		/* Seconds an idle MTA may stay silent. */
    int maxConnections;		/* 0 means no limit. */
    int drainTimeout;		/* Milliseconds stop waits for messages. */
    int socketMode;		/* Mode of a unix socket file. */
    int socketUid;		/* Its owner, or -1 to leave it. */
    int socketGid;		/* Its group, or -1 to leave it. */
    size_t maxData;		/* Largest packet payload accepted. */
    int leadingSpace;		/* Ask for SMFIP_HDR_LEADSPC. */
    int debugLevel;		/* Detail of the log. */
    unsigned wanted;		/* Events with a callback, from the first
				 * connection on (a connection may already
				 * wait when the network thread starts). */
    MilterStats *stats;		/* Where to count; outlives the
				 * server. */
    const char *metricsSpec;	/* -metrics: where to serve the statistics
				 * over HTTP, or NULL. */
    const char *captureDir;	/* -capture: where session files go, or
				 * NULL for no capture. */
    size_t captureSize;		/* -capturesize: most bytes per file. */
    size_t captureBody;		/* -capturebody: body bytes kept per
				 * message. */
    int captureMask;		/* -capturemask: mask local parts. */
    int captureAll;		/* -captureall: capture new sessions. */
} MilterServerConfig;

/*
 * How the message of a failed MilterServerStart begins when the -metrics
 * socket could not be opened.
 */

#define MILTER_METRICS_ERROR	"metrics: "

MODULE_SCOPE MilterServer *MilterServerStart(const MilterServerConfig *cfg,
			    const MilterServerHooks *hooks, char *err,
			    size_t errLen);
/*
 * How MilterServerStop stops: drain (messages in progress may finish
 * until -draintimeout) or hard (close everything now, no more callbacks).
 */

typedef enum MilterStopHow {
    MILTER_STOP_DRAIN,
    MILTER_STOP_HARD
} MilterStopHow;

MODULE_SCOPE void	MilterServerStop(MilterServer *server,
			    MilterStopHow how);
MODULE_SCOPE void	MilterServerJoin(MilterServer *server);
MODULE_SCOPE void	MilterServerRelease(MilterServer *server);
MODULE_SCOPE void	MilterServerSetWanted(MilterServer *server,
			    unsigned mask);
MODULE_SCOPE void	MilterServerSetDebug(MilterServer *server, int level);
MODULE_SCOPE const char *MilterServerAddress(MilterServer *server);
MODULE_SCOPE const char *MilterServerMetricsAddress(MilterServer *server);

/*
 * What milter sessions shows of a connection (MilterServerDescribe).
 */

typedef struct MilterConnInfo {
    unsigned long id;		/* The connection's number. */
    long long ageMs;		/* Milliseconds since it was accepted. */
    int busy;			/* An event is out for a verdict ... */
    long long busyMs;		/* ... since so many milliseconds. */
    int worker;			/* Whose interpreter decides its events: a
				 * worker's number, 0 for the owner. */
    MilterSessionInfo session;
} MilterConnInfo;

MODULE_SCOPE MilterConnInfo *MilterServerDescribe(MilterServer *server,
			    int *countPtr);

/*
 * milter session ID abort: the reply the MTA gets (MilterServerAbort).
 */

typedef struct MilterAbortReply {
    int verdict;		/* MILTER_TEMPFAIL or MILTER_REJECT. */
    const char *rcode;		/* A reply of its own: the code (else NULL,
				 * for the session's or the MTA's text), */
    const char *xcode;		/* the enhanced code or "", */
    const MilterStr *lines;	/* and the lines, as for setreply. */
    int count;
} MilterAbortReply;

typedef enum MilterAbortResult {
    MILTER_ABORT_DONE,
    MILTER_ABORT_NOSUCH,	/* No live connection has that number. */
    MILTER_ABORT_ENDING,	/* The session is already ending. */
    MILTER_ABORT_BADREPLY	/* The reply text was refused. */
} MilterAbortResult;

MODULE_SCOPE MilterAbortResult MilterServerAbort(MilterServer *server,
			    unsigned long id, const MilterAbortReply *replyPtr,
			    const char **msgPtr);
MODULE_SCOPE int	MilterServerStopping(MilterServer *server);

/*
 * Connections. Resume is how a verdict is given: it returns the next
 * event of the same connection to decide (still referenced), or NULL
 * after dropping the reference the event held.
 */

MODULE_SCOPE MilterEvent *MilterConnResume(MilterConn *conn, int verdict);
MODULE_SCOPE void	MilterConnCloseQueue(MilterQueue *queue, int verdict);
MODULE_SCOPE void	MilterConnRetain(MilterConn *conn);
MODULE_SCOPE void	MilterConnRelease(MilterConn *conn);
MODULE_SCOPE MilterSession *MilterConnLock(MilterConn *conn);
MODULE_SCOPE void	MilterConnUnlock(MilterConn *conn, int flush);
MODULE_SCOPE int	MilterConnPeerGone(MilterConn *conn);
MODULE_SCOPE unsigned long MilterConnId(MilterConn *conn);
MODULE_SCOPE void *	MilterConnGetData(MilterConn *conn);
MODULE_SCOPE void	MilterConnSetData(MilterConn *conn, void *data);
MODULE_SCOPE int	MilterConnExpired(MilterConn *conn);
MODULE_SCOPE int	MilterConnCapture(MilterConn *conn, int on);

/*
 * Ready queues (unix/milterQueue.c): where events wait for the
 * interpreter that decides them. The ready hook is called, with the
 * queue's lock held, when a queue goes from empty to not empty, and when
 * the last connection pinned to it goes.
 */

MODULE_SCOPE MilterQueue *MilterQueueNew(void (*ready)(void *clientData),
			    void *clientData);
MODULE_SCOPE void	MilterQueueRelease(MilterQueue *queue);
MODULE_SCOPE void	MilterQueuePin(MilterQueue *queue);
MODULE_SCOPE MilterConn *MilterQueuePop(MilterQueue *queue,
			    MilterEvent **evPtr);
MODULE_SCOPE int	MilterQueueLength(MilterQueue *queue);
MODULE_SCOPE int	MilterQueueConnections(MilterQueue *queue);
MODULE_SCOPE void	MilterQueueSetLabel(MilterQueue *queue, int label);
MODULE_SCOPE int	MilterQueueLabel(const MilterQueue *queue);

/*
 * Sockets (unix/milterSocket.c). A listener remembers what it bound so
 * that closing it removes only the socket file it created: the same
 * device and inode, never a file another instance put there since. An
 * inherited listening socket (fd:N, systemd) is served through a
 * duplicate of the descriptor: it is never shut down, and its file never
 * removed, since the process that passed it (systemd) keeps listening on
 * it after the milter stops.
 */

typedef struct MilterListener {
    int fd;			/* Listening descriptor, -1 when closed. */
    char address[300];		/* The spec actually bound. */
    int ownsPath;		/* A unix socket file we created. */
    int inherited;		/* An inherited socket (fd:N). */
    unsigned long long dev;	/* Its device ... */
    unsigned long long ino;	/* ... and inode, from stat() after the
				 * link into place. */
} MilterListener;

MODULE_SCOPE int	MilterSocketListen(const char *spec, int backlog,
			    int mode, int uid, int gid, MilterListener *lPtr,
			    char *err, size_t errLen);
MODULE_SCOPE void	MilterSocketRefuse(MilterListener *lPtr);
MODULE_SCOPE void	MilterSocketClose(MilterListener *lPtr);
MODULE_SCOPE int	MilterSocketCheckFd(int fd, char *err,
			    size_t errLen);
MODULE_SCOPE int	MilterSocketCheckSpec(const char *spec, char *err,
			    size_t errLen);

/*
 * Capture of sessions (generic/milterCapture.c), called with the
 * connection's lock held; no Tcl.
 */

typedef struct MilterCapture MilterCapture;

MODULE_SCOPE MilterCapture *MilterCaptureNew(const MilterServerConfig *cfg,
			    const char *listenSpec, unsigned long id,
			    int64_t now);
MODULE_SCOPE void	MilterCaptureMta(MilterCapture *capPtr,
			    const MilterPacket *pktPtr, int64_t now);
MODULE_SCOPE void	MilterCaptureMilter(MilterCapture *capPtr,
			    const unsigned char *bytes, size_t len,
			    int64_t now);
MODULE_SCOPE void	MilterCaptureSet(MilterCapture *capPtr, int on);
MODULE_SCOPE int	MilterCaptureGet(MilterCapture *capPtr);
MODULE_SCOPE int	MilterCaptureFinish(MilterCapture *capPtr,
			    int64_t now, char *err, size_t errLen);
MODULE_SCOPE void	MilterCaptureFree(MilterCapture *capPtr);

#endif /* _MILTERSERVER_H */
