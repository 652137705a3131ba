/*
 * milterServer.c --
 *
 *	The network thread: one epoll loop that accepts MTA connections,
 *	reads and frames their packets, runs their sessions, writes replies,
 *	enforces timeouts and the connection limit, and carries out stop and
 *	drain. Events that need a script go to a ready queue that the owner
 *	drains; the owner resumes the connection itself with the verdict
 *	(see MilterConnResume), so no thread ever waits for another.
 *
 *	This is a plain pthread, not a Tcl thread: it never touches a Tcl
 *	object or interpreter, and the only Tcl call made on it is through
 *	the hooks.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServer.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/select.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    char address[300];		/* The bound spec. */
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
};

static void	CloseConnLocked(MilterConn *conn);
static void	FlushLocked(MilterConn *conn);
static MilterEvent *PumpLocked(MilterConn *conn);

/*
 *----------------------------------------------------------------------
 *
 * Log --
 *
 *	Formats a log line and hands it to the log hook, if the debug level
 *	wants that level.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Calls the hook.
 *
 *----------------------------------------------------------------------
 */

static void
Log(
    MilterServer *server,
    MilterLogLevel level,
    const char *format,
    ...)
{
    char msg[512];
    va_list args;

    /*
     * Errors and warnings always; notices from level 1, info from 2,
     * debug from 3.
     */

    if ((int) level > MILTER_LOG_WARNING
	    && server->debugLevel < (int) level - 1) {
	return;
    }
    va_start(args, format);
    vsnprintf(msg, sizeof(msg), format, args);
    va_end(args);
    server->hooks.log(server->hooks.clientData, level, msg);
}

static time_t
Now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int
Before(
    const struct timespec *a,
    const struct timespec *b)
{
    return a->tv_sec < b->tv_sec
	    || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int
MillisUntil(
    const struct timespec *when)
{
    struct timespec now;
    long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (when->tv_sec - now.tv_sec) * 1000
	    + (when->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (ms > 1000 ? 1000 : (int) ms + 1);
}

static void
Wake(
    MilterServer *server)
{
    uint64_t one = 1;
    ssize_t n = write(server->wakeFd, &one, sizeof(one));

    (void) n;			/* A full counter already means "awake". */
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerRelease, MilterConnRelease --
 *
 *	Drop a reference; the last one frees the object.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free memory and close descriptors.
 *
 *----------------------------------------------------------------------
 */

void
MilterServerRelease(
    MilterServer *server)
{
    int refs;

    pthread_mutex_lock(&server->lock);
    refs = --server->refs;
    pthread_mutex_unlock(&server->lock);
    if (refs > 0) {
	return;
    }
    if (server->epollFd >= 0) {
	close(server->epollFd);
    }
    if (server->wakeFd >= 0) {
	close(server->wakeFd);
    }
    pthread_mutex_destroy(&server->lock);
    MilterFree((void *) server->config.spec);
    MilterFree(server);
}

void
MilterConnRetain(
    MilterConn *conn)
{
    __atomic_add_fetch(&conn->refs, 1, __ATOMIC_ACQ_REL);
}

void
MilterConnRelease(
    MilterConn *conn)
{
    MilterServer *server = conn->server;
    int refs;

    refs = __atomic_sub_fetch(&conn->refs, 1, __ATOMIC_ACQ_REL);
    if (refs > 0) {
	return;
    }
    if (conn->fd >= 0) {
	close(conn->fd);
    }
    MilterSessionFree(conn->session);
    MilterBufFree(&conn->in);
    pthread_mutex_destroy(&conn->lock);
    MilterFree(conn);
    MilterServerRelease(server);
}

/*
 *----------------------------------------------------------------------
 *
 * UpdateInterest --
 *
 *	Tells epoll what the connection waits for: input unless paused or
 *	ended, output while replies are pending. Called with the lock held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	epoll_ctl.
 *
 *----------------------------------------------------------------------
 */

static void
UpdateInterest(
    MilterConn *conn)
{
    struct epoll_event ev;

    if (conn->fd < 0 || !conn->polled) {
	return;
    }
    if (conn->eof) {
	/*
	 * Hang-ups are reported whatever the mask says, so an ended
	 * connection leaves the set; replies still owed are written
	 * without waiting.
	 */

	epoll_ctl(conn->server->epollFd, EPOLL_CTL_DEL, conn->fd, NULL);
	conn->polled = 0;
	return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.data.ptr = conn;
    if (!conn->paused && !conn->eof) {
	ev.events |= EPOLLIN | EPOLLRDHUP;
    }
    if (conn->wantOut) {
	ev.events |= EPOLLOUT;
    }
    epoll_ctl(conn->server->epollFd, EPOLL_CTL_MOD, conn->fd, &ev);
}

/*
 *----------------------------------------------------------------------
 *
 * FlushLocked --
 *
 *	Writes as much pending output as the socket takes, without
 *	blocking; the rest waits for EPOLLOUT. Replies produced together go
 *	out in one write.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes to the socket; on a write error the connection is ended.
 *
 *----------------------------------------------------------------------
 */

static void
FlushLocked(
    MilterConn *conn)
{
    MilterBuf *out = MilterSessionOutput(conn->session);
    int wanted = 0;

    while (MilterBufLength(out) > 0) {
	ssize_t n;

	if (conn->fd < 0) {
	    MilterBufReset(out);
	    break;
	}
	n = send(conn->fd, MilterBufData(out), MilterBufLength(out),
		MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0) {
	    MilterBufConsume(out, (size_t) n);
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    wanted = 1;
	    break;
	} else if (n < 0 && errno == EINTR) {
	    continue;
	} else {
	    Log(conn->server, MILTER_LOG_NOTICE,
		    "connection %lu: write failed: %s", conn->id,
		    strerror(errno));
	    MilterBufReset(out);
	    conn->eof = 1;
	    break;
	}
    }
    MilterBufTrim(out, 65536);
    if (wanted != conn->wantOut || conn->eof) {
	conn->wantOut = wanted;
	UpdateInterest(conn);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CloseConnLocked --
 *
 *	The session is over: close the socket and queue the connection for
 *	the network thread to unlink and release.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes the descriptor; wakes the network thread.
 *
 *----------------------------------------------------------------------
 */

static void
CloseConnLocked(
    MilterConn *conn)
{
    MilterServer *server = conn->server;

    if (conn->fd >= 0) {
	close(conn->fd);	/* Also removes it from the epoll set. */
	conn->fd = -1;
	Log(server, MILTER_LOG_INFO, "connection %lu closed", conn->id);
    }
    pthread_mutex_lock(&server->lock);
    if (!conn->reaped) {
	conn->reaped = 1;
	conn->nextReap = server->reapList;
	server->reapList = conn;
    }
    pthread_mutex_unlock(&server->lock);
    Wake(server);
}

/*
 *----------------------------------------------------------------------
 *
 * SetWantedLocked --
 *
 *	Gives the session the events to hand out: those with a callback,
 *	plus close whenever the owner has data to clean up.
 *
 *----------------------------------------------------------------------
 */

static void
SetWantedLocked(
    MilterConn *conn)
{
    unsigned mask = __atomic_load_n(&conn->server->wanted, __ATOMIC_RELAXED);

    if (conn->hasData) {
	mask |= MILTER_EVBIT(MILTER_EV_CLOSE);
    }
    MilterSessionSetWanted(conn->session, mask);
}

static void
NoteProblem(
    MilterConn *conn)
{
    const char *problem = MilterSessionProblem(conn->session);

    if (problem != NULL) {
	Log(conn->server, MILTER_LOG_WARNING, "connection %lu: %s",
		conn->id, problem);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * PumpLocked --
 *
 *	Runs the session over buffered input until it needs a verdict, needs
 *	more input, or is over. Called with the lock held and the
 *	connection not busy.
 *
 * Results:
 *	An event (the connection is then busy and holds a reference for it),
 *	or NULL.
 *
 * Side effects:
 *	Consumes input, writes output, may close the connection.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
PumpLocked(
    MilterConn *conn)
{
    MilterServer *server = conn->server;
    MilterEvent *ev = NULL;

    while (ev == NULL) {
	MilterPacket pkt;
	size_t used;
	int stopping;

	if (MilterSessionClosed(conn->session)) {
	    FlushLocked(conn);
	    CloseConnLocked(conn);
	    return NULL;
	}
	SetWantedLocked(conn);
	if (conn->eof) {
	    if (conn->ending) {
		/* The end sequence finished without closing: cannot
		 * happen, but never spin. */
		CloseConnLocked(conn);
		return NULL;
	    }
	    conn->ending = 1;
	    ev = MilterSessionEnd(conn->session);
	    continue;
	}
	switch (MilterWireFrame(conn->in.bytes ? MilterBufData(&conn->in)
		: (const unsigned char *) "", MilterBufLength(&conn->in),
		conn->server->config.maxData, &pkt, &used)) {
	case MILTER_FRAME_OK:
	    if (server->debugLevel >= 3) {
		Log(server, MILTER_LOG_DEBUG, "connection %lu: command '%c' "
			"with %zu bytes", conn->id, pkt.cmd, pkt.len);
	    }
	    ev = MilterSessionFeed(conn->session, &pkt);
	    MilterBufConsume(&conn->in, used);
	    NoteProblem(conn);
	    break;
	case MILTER_FRAME_SHORT:
	    stopping = __atomic_load_n(&server->stopping, __ATOMIC_ACQUIRE);
	    if (stopping && !MilterSessionInMessage(conn->session)) {
		Log(server, MILTER_LOG_NOTICE, "connection %lu: closed by "
			"milter stop between messages", conn->id);
		conn->eof = 1;
		break;
	    }
	    MilterBufTrim(&conn->in, READ_CHUNK);
	    FlushLocked(conn);
	    if (conn->paused) {
		conn->paused = 0;
		UpdateInterest(conn);
	    }
	    return NULL;
	case MILTER_FRAME_EMPTY:
	    Log(server, MILTER_LOG_WARNING, "connection %lu: packet with "
		    "length 0; closing", conn->id);
	    conn->eof = 1;
	    UpdateInterest(conn);
	    break;
	case MILTER_FRAME_TOOBIG:
	    Log(server, MILTER_LOG_WARNING, "connection %lu: packet with %u "
		    "data bytes exceeds -maxdatasize %zu; closing", conn->id,
		    (unsigned) MilterWireGet32(MilterBufData(&conn->in)) - 1,
		    server->config.maxData);
	    conn->eof = 1;
	    UpdateInterest(conn);
	    break;
	}
	if (conn->ending) {
	    NoteProblem(conn);
	}
    }
    FlushLocked(conn);
    conn->busy = 1;
    __atomic_add_fetch(&conn->refs, 1, __ATOMIC_ACQ_REL);
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * Enqueue --
 *
 *	Puts a busy connection's event on the ready queue and tells the
 *	owner when the queue was empty.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Calls the ready hook.
 *
 *----------------------------------------------------------------------
 */

static void
Enqueue(
    MilterConn *conn,
    MilterEvent *ev)
{
    MilterServer *server = conn->server;
    int wasEmpty;

    pthread_mutex_lock(&server->lock);
    conn->readyEvent = ev;
    conn->nextReady = NULL;
    wasEmpty = server->readyHead == NULL;
    if (wasEmpty) {
	server->readyHead = conn;
    } else {
	server->readyTail->nextReady = conn;
    }
    server->readyTail = conn;
    server->readyCount++;
    pthread_mutex_unlock(&server->lock);
    if (wasEmpty) {
	server->hooks.ready(server->hooks.clientData);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerNextReady --
 *
 *	Takes the next connection off the ready queue (owner thread).
 *
 * Results:
 *	The connection and its event, or NULL when the queue is empty.
 *
 * Side effects:
 *	None beyond the queue.
 *
 *----------------------------------------------------------------------
 */

MilterConn *
MilterServerNextReady(
    MilterServer *server,
    MilterEvent **evPtr)
{
    MilterConn *conn;

    pthread_mutex_lock(&server->lock);
    conn = server->readyHead;
    if (conn != NULL) {
	server->readyHead = conn->nextReady;
	if (server->readyHead == NULL) {
	    server->readyTail = NULL;
	}
	server->readyCount--;
	*evPtr = conn->readyEvent;
	conn->readyEvent = NULL;
    }
    pthread_mutex_unlock(&server->lock);
    return conn;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnResume --
 *
 *	Gives the verdict for the connection's event, on whatever thread has
 *	it, and carries on with the session right here: further buffered
 *	commands are processed, replies written.
 *
 * Results:
 *	The next event of this connection (still busy and referenced), or
 *	NULL after the event's reference was dropped.
 *
 * Side effects:
 *	Writes replies, may close the connection.
 *
 *----------------------------------------------------------------------
 */

MilterEvent *
MilterConnResume(
    MilterConn *conn,
    int verdict)
{
    MilterEvent *ev = NULL;
    int finished = 1;

    pthread_mutex_lock(&conn->lock);
    if (!conn->dead) {
	SetWantedLocked(conn);
	ev = MilterSessionResume(conn->session, verdict);
	NoteProblem(conn);
	if (ev == NULL) {
	    conn->busy = 0;
	    conn->lastActive = Now();	/* The MTA waited for us. */
	    ev = PumpLocked(conn);
	} else {
	    finished = 0;	/* Same event chain: keep its reference. */
	    FlushLocked(conn);
	}
    } else {
	conn->busy = 0;
    }
    pthread_mutex_unlock(&conn->lock);
    if (finished) {
	MilterConnRelease(conn);
    }
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnLock, MilterConnUnlock --
 *
 *	Access to the session for the owner's context commands (reply text,
 *	modifications, progress, macros). Unlock can flush output that the
 *	call produced (progress).
 *
 *----------------------------------------------------------------------
 */

MilterSession *
MilterConnLock(
    MilterConn *conn)
{
    pthread_mutex_lock(&conn->lock);
    return conn->session;
}

void
MilterConnUnlock(
    MilterConn *conn,
    int flush)
{
    if (flush) {
	FlushLocked(conn);
    }
    pthread_mutex_unlock(&conn->lock);
}

void *
MilterConnGetData(
    MilterConn *conn)
{
    return conn->clientData;
}

void
MilterConnSetData(
    MilterConn *conn,
    void *data)
{
    pthread_mutex_lock(&conn->lock);
    conn->clientData = data;
    conn->hasData = data != NULL;
    pthread_mutex_unlock(&conn->lock);
}

int
MilterConnExpired(
    MilterConn *conn)
{
    return __atomic_load_n(&conn->expired, __ATOMIC_ACQUIRE);
}

unsigned long
MilterConnId(
    MilterConn *conn)
{
    return conn->id;
}

/*
 *----------------------------------------------------------------------
 *
 * MoveHigh --
 *
 *	Moves an MTA connection's descriptor to 1024 or above when the
 *	open-file limit allows. Tcl 8.6's notifier uses select(), which
 *	cannot watch a descriptor past FD_SETSIZE (1024) and aborts the
 *	process if asked to; keeping our many sockets up there leaves the
 *	low numbers for the channels that scripts open.
 *
 * Results:
 *	The descriptor to use.
 *
 * Side effects:
 *	May close 'fd' in favour of a duplicate.
 *
 *----------------------------------------------------------------------
 */

static int
MoveHigh(
    int fd)
{
    int high;

    if (fd >= FD_SETSIZE) {
	return fd;
    }
    high = fcntl(fd, F_DUPFD_CLOEXEC, FD_SETSIZE);
    if (high < 0) {
	return fd;
    }
    close(fd);
    return high;
}

/*
 *----------------------------------------------------------------------
 *
 * AcceptAll --
 *
 *	Accepts every pending connection. Over -maxconnections a connection
 *	is closed at once (the MTA then applies its default action, e.g.
 *	Postfix's milter_default_action). Out of descriptors, accepting
 *	pauses for 100 ms instead of spinning.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Creates connections.
 *
 *----------------------------------------------------------------------
 */

static void
AcceptAll(
    MilterServer *server)
{
    for (;;) {
	struct epoll_event ev;
	MilterConn *conn;
	int fd, on = 1, full;

	fd = accept4(server->listenFd, NULL, NULL,
		SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
	    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
		    || errno == ENOMEM) {
		Log(server, MILTER_LOG_ERROR, "accept: %s; pausing",
			strerror(errno));
		epoll_ctl(server->epollFd, EPOLL_CTL_DEL, server->listenFd,
			NULL);
		server->acceptPaused = 1;
		clock_gettime(CLOCK_MONOTONIC, &server->acceptResume);
		server->acceptResume.tv_nsec += 100000000;
		if (server->acceptResume.tv_nsec >= 1000000000) {
		    server->acceptResume.tv_sec++;
		    server->acceptResume.tv_nsec -= 1000000000;
		}
	    }
	    return;
	}
	pthread_mutex_lock(&server->lock);
	full = server->config.maxConnections > 0
		&& server->connCount >= server->config.maxConnections;
	pthread_mutex_unlock(&server->lock);
	if (full) {
	    Log(server, MILTER_LOG_WARNING, "connection refused: "
		    "-maxconnections %d reached",
		    server->config.maxConnections);
	    close(fd);
	    continue;
	}
	fd = MoveHigh(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	conn = MilterAlloc(sizeof(MilterConn));
	memset(conn, 0, sizeof(MilterConn));
	pthread_mutex_init(&conn->lock, NULL);
	conn->server = server;
	conn->refs = 1;
	conn->fd = fd;
	conn->session = MilterSessionNew(server->config.maxData);
	MilterSessionSetLeadingSpace(conn->session,
		server->config.leadingSpace);
	MilterBufInit(&conn->in);
	conn->lastActive = Now();

	pthread_mutex_lock(&server->lock);
	conn->id = ++server->nextId;
	conn->next = server->conns;
	if (server->conns != NULL) {
	    server->conns->prev = conn;
	}
	server->conns = conn;
	server->connCount++;
	server->refs++;
	pthread_mutex_unlock(&server->lock);

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = conn;
	conn->polled = 1;
	epoll_ctl(server->epollFd, EPOLL_CTL_ADD, fd, &ev);
	Log(server, MILTER_LOG_INFO, "connection %lu accepted", conn->id);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ReadLocked --
 *
 *	Reads what the socket has, up to a bound while the connection is
 *	busy, after which reading pauses until the verdict comes back.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills conn->in; sets eof on end of input or error.
 *
 *----------------------------------------------------------------------
 */

static void
ReadLocked(
    MilterConn *conn)
{
    size_t limit = conn->server->config.maxData + 5 + SLACK;

    while (conn->fd >= 0 && !conn->eof) {
	ssize_t n;

	if (conn->busy && MilterBufLength(&conn->in) >= limit) {
	    conn->paused = 1;
	    UpdateInterest(conn);
	    return;
	}
	n = recv(conn->fd, MilterBufReserve(&conn->in, READ_CHUNK),
		READ_CHUNK, MSG_DONTWAIT);
	if (n > 0) {
	    conn->in.len += (size_t) n;
	    conn->lastActive = Now();
	    if (n < READ_CHUNK) {
		return;
	    }
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    return;
	} else if (n < 0 && errno == EINTR) {
	    continue;
	} else {
	    if (n < 0) {
		Log(conn->server, MILTER_LOG_NOTICE,
			"connection %lu: read failed: %s", conn->id,
			strerror(errno));
	    } else if (MilterBufLength(&conn->in) > 0
		    || MilterSessionInMessage(conn->session)) {
		Log(conn->server, MILTER_LOG_NOTICE,
			"connection %lu: MTA closed the connection %s",
			conn->id, MilterBufLength(&conn->in) > 0
			? "in the middle of a packet" : "during a message");
	    }
	    conn->eof = 1;
	    UpdateInterest(conn);
	    return;
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * UnlockAndPump --
 *
 *	Called with conn->lock held, after new input or an end of input:
 *	unless an event is already out, takes the next event the session
 *	has ready, releases the lock, then queues that event for the owner
 *	(Enqueue takes the server lock, which is never taken inside a
 *	connection's lock).
 *
 *----------------------------------------------------------------------
 */

static void
UnlockAndPump(
    MilterConn *conn)
{
    MilterEvent *ev = NULL;

    if (conn->fd >= 0 && !conn->busy) {
	ev = PumpLocked(conn);
    }
    pthread_mutex_unlock(&conn->lock);
    if (ev != NULL) {
	Enqueue(conn, ev);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * HandleConn --
 *
 *	One epoll report for a connection.
 *
 *----------------------------------------------------------------------
 */

static void
HandleConn(
    MilterConn *conn,
    uint32_t events)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->fd >= 0) {
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
	    ReadLocked(conn);
	}
	if (events & EPOLLOUT) {
	    FlushLocked(conn);
	}
    }
    UnlockAndPump(conn);
}

/*
 *----------------------------------------------------------------------
 *
 * EndConn --
 *
 *	Ends a connection from the network thread's side (timeout, stop,
 *	drain deadline): no more input is read; once it is not busy its
 *	session runs its end sequence.
 *
 *----------------------------------------------------------------------
 */

static void
EndConn(
    MilterConn *conn,
    const char *why)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->fd >= 0 && !conn->eof) {
	Log(conn->server, MILTER_LOG_NOTICE, "connection %lu: %s", conn->id,
		why);
	conn->eof = 1;
	UpdateInterest(conn);
    }
    UnlockAndPump(conn);
}

/*
 *----------------------------------------------------------------------
 *
 * Reap --
 *
 *	Unlinks closed connections and drops the network thread's reference.
 *
 *----------------------------------------------------------------------
 */

static void
Reap(
    MilterServer *server)
{
    MilterConn *list, *conn;

    pthread_mutex_lock(&server->lock);
    list = server->reapList;
    server->reapList = NULL;
    for (conn = list; conn != NULL; conn = conn->nextReap) {
	if (conn->prev != NULL) {
	    conn->prev->next = conn->next;
	} else {
	    server->conns = conn->next;
	}
	if (conn->next != NULL) {
	    conn->next->prev = conn->prev;
	}
	server->connCount--;
    }
    pthread_mutex_unlock(&server->lock);
    while (list != NULL) {
	conn = list;
	list = conn->nextReap;
	MilterConnRelease(conn);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Sweep --
 *
 *	Once a second, and whenever the stop state changes: end idle
 *	connections past -timeout, connections between messages while
 *	stopping, and every connection past the drain deadline.
 *
 *----------------------------------------------------------------------
 */

static void
Sweep(
    MilterServer *server,
    int force,
    int hard)
{
    MilterConn **list, *conn;
    int n = 0, i, stopping, late;
    time_t now = Now();
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_lock(&server->lock);
    stopping = server->stopping;
    late = force || (stopping && !Before(&ts, &server->drainDeadline));
    list = MilterAlloc(sizeof(MilterConn *) * (server->connCount + 1));
    for (conn = server->conns; conn != NULL; conn = conn->next) {
	__atomic_add_fetch(&conn->refs, 1, __ATOMIC_ACQ_REL);
	list[n++] = conn;
    }
    pthread_mutex_unlock(&server->lock);

    for (i = 0; i < n; i++) {
	const char *reason = NULL;

	conn = list[i];
	pthread_mutex_lock(&conn->lock);
	if (hard) {
	    /*
	     * Interpreter or process going away: no callbacks any more,
	     * just close.
	     */

	    conn->dead = 1;
	    conn->eof = 1;
	    CloseConnLocked(conn);
	} else if (conn->fd >= 0 && !conn->eof) {
	    if (late) {
		reason = "closed at the milter stop deadline";
		__atomic_store_n(&conn->expired, 1, __ATOMIC_RELEASE);
	    } else if (stopping && !conn->busy
		    && !MilterSessionInMessage(conn->session)) {
		reason = "closed by milter stop between messages";
	    } else if (!conn->busy && server->config.timeout > 0
		    && now - conn->lastActive > server->config.timeout) {
		reason = "MTA silent past -timeout; closing";
	    }
	}
	pthread_mutex_unlock(&conn->lock);
	if (reason != NULL) {
	    EndConn(conn, reason);
	}
	MilterConnRelease(conn);
    }
    MilterFree(list);
}

/*
 *----------------------------------------------------------------------
 *
 * NetworkThread --
 *
 *	The epoll loop.
 *
 *----------------------------------------------------------------------
 */

static void *
NetworkThread(
    void *arg)
{
    MilterServer *server = arg;
    struct epoll_event events[64];
    time_t lastSweep = Now();
    int listening = 1;

    for (;;) {
	int n, i, timeout = 1000, stopping, hard, count;

	pthread_mutex_lock(&server->lock);
	stopping = server->stopping;
	hard = server->hard;
	count = server->connCount;
	pthread_mutex_unlock(&server->lock);
	if (hard && count > 0 && !listening) {
	    Sweep(server, 1, 1);
	    Reap(server);
	    continue;
	}

	if (stopping && listening) {
	    int fd;

	    listening = 0;
	    pthread_mutex_lock(&server->lock);
	    fd = server->listenFd;
	    server->listenFd = -1;
	    pthread_mutex_unlock(&server->lock);
	    MilterSocketClose(fd, server->address);
	    Log(server, MILTER_LOG_NOTICE, "stopped listening on %s; "
		    "%d connection(s) open", server->address, count);
	    Sweep(server, hard, hard);
	    Reap(server);
	    continue;
	}
	if (stopping && count == 0) {
	    break;
	}
	if (stopping) {
	    timeout = MillisUntil(&server->drainDeadline);
	}
	if (server->acceptPaused && listening) {
	    int ms = MillisUntil(&server->acceptResume);

	    if (ms <= 1) {
		struct epoll_event lev;

		memset(&lev, 0, sizeof(lev));
		lev.events = EPOLLIN;
		lev.data.ptr = &server->listenFd;
		epoll_ctl(server->epollFd, EPOLL_CTL_ADD, server->listenFd,
			&lev);
		server->acceptPaused = 0;
	    } else if (ms < timeout) {
		timeout = ms;
	    }
	}

	n = epoll_wait(server->epollFd, events, 64, timeout);
	for (i = 0; i < n; i++) {
	    void *ptr = events[i].data.ptr;

	    if (ptr == &server->wakeFd) {
		uint64_t value;
		ssize_t got = read(server->wakeFd, &value, sizeof(value));

		(void) got;
	    } else if (ptr == &server->listenFd) {
		if (listening) {
		    AcceptAll(server);
		}
	    } else {
		HandleConn(ptr, events[i].events);
	    }
	}
	Reap(server);
	if (stopping || Now() != lastSweep) {
	    lastSweep = Now();
	    Sweep(server, 0, hard);
	    Reap(server);
	}
    }

    server->hooks.stopped(server->hooks.clientData);
    if (server->hooks.threadExit != NULL) {
	server->hooks.threadExit(server->hooks.clientData);
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerStart --
 *
 *	Opens the listening socket and starts the network thread.
 *
 * Results:
 *	The server (one reference for the caller), or NULL with a message.
 *
 * Side effects:
 *	Creates a socket, descriptors and a thread. Raises the soft limit on
 *	open files to the hard limit, since every MTA connection costs one.
 *
 *----------------------------------------------------------------------
 */

MilterServer *
MilterServerStart(
    const MilterServerConfig *cfg,
    const MilterServerHooks *hooks,
    char *err,
    size_t errLen)
{
    MilterServer *server = MilterAlloc(sizeof(MilterServer));
    struct epoll_event ev;
    struct rlimit rl;

    memset(server, 0, sizeof(MilterServer));
    server->config = *cfg;
    server->config.spec = MilterStrdup(cfg->spec, strlen(cfg->spec));
    server->hooks = *hooks;
    server->debugLevel = cfg->debugLevel;
    server->refs = 1;
    server->epollFd = server->wakeFd = -1;
    pthread_mutex_init(&server->lock, NULL);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
    }

    server->listenFd = MilterSocketListen(cfg->spec, cfg->backlog,
	    cfg->socketMode, server->address, sizeof(server->address), err,
	    errLen);
    if (server->listenFd < 0) {
	MilterServerRelease(server);
	return NULL;
    }
    server->epollFd = epoll_create1(EPOLL_CLOEXEC);
    server->wakeFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (server->epollFd < 0 || server->wakeFd < 0) {
	snprintf(err, errLen, "cannot create event descriptors: %s",
		strerror(errno));
	goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &server->wakeFd;
    epoll_ctl(server->epollFd, EPOLL_CTL_ADD, server->wakeFd, &ev);
    ev.data.ptr = &server->listenFd;
    epoll_ctl(server->epollFd, EPOLL_CTL_ADD, server->listenFd, &ev);

    if (pthread_create(&server->thread, NULL, NetworkThread, server) != 0) {
	snprintf(err, errLen, "cannot start the network thread");
	goto fail;
    }
    server->threadStarted = 1;
    return server;

  fail:
    MilterSocketClose(server->listenFd, server->address);
    MilterServerRelease(server);
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerStop --
 *
 *	Any thread. Refuses new connections before it returns. A soft stop lets open messages
 *	finish (until -draintimeout) and closes connections between
 *	messages; a hard stop ends every connection now. The stopped hook
 *	runs when the last connection is gone.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Wakes the network thread.
 *
 *----------------------------------------------------------------------
 */

void
MilterServerStop(
    MilterServer *server,
    int hard)
{
    pthread_mutex_lock(&server->lock);
    if (!server->stopping) {
	__atomic_store_n(&server->stopping, 1, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_MONOTONIC, &server->drainDeadline);
	server->drainDeadline.tv_sec += server->config.drainTimeout / 1000;
	server->drainDeadline.tv_nsec +=
		(long) (server->config.drainTimeout % 1000) * 1000000;
	if (server->drainDeadline.tv_nsec >= 1000000000) {
	    server->drainDeadline.tv_sec++;
	    server->drainDeadline.tv_nsec -= 1000000000;
	}
    }
    if (hard) {
	server->hard = 1;
    }
    if (server->listenFd >= 0) {
	/*
	 * Refuse new connections before returning, not when the network
	 * thread gets round to closing the socket: a shut-down listening
	 * socket (unix or TCP) answers connect() with ECONNREFUSED, and
	 * the descriptor stays valid until the network thread closes it.
	 */

	shutdown(server->listenFd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&server->lock);
    Wake(server);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerJoin --
 *
 *	Waits for the network thread to end (after a stop). Must not be
 *	called by a thread the network thread may be waiting for; it never
 *	waits for anyone, so any thread is fine.
 *
 *----------------------------------------------------------------------
 */

void
MilterServerJoin(
    MilterServer *server)
{
    if (server->threadStarted) {
	pthread_join(server->thread, NULL);
	server->threadStarted = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Small setters and getters --
 *
 *----------------------------------------------------------------------
 */

void
MilterServerSetWanted(
    MilterServer *server,
    unsigned mask)
{
    __atomic_store_n(&server->wanted, mask, __ATOMIC_RELAXED);
}

void
MilterServerSetDebug(
    MilterServer *server,
    int level)
{
    __atomic_store_n(&server->debugLevel, level, __ATOMIC_RELAXED);
}

const char *
MilterServerAddress(
    MilterServer *server)
{
    return server->address;
}

int
MilterServerConnections(
    MilterServer *server)
{
    int count;

    pthread_mutex_lock(&server->lock);
    count = server->connCount;
    pthread_mutex_unlock(&server->lock);
    return count;
}

int
MilterServerStopping(
    MilterServer *server)
{
    return __atomic_load_n(&server->stopping, __ATOMIC_ACQUIRE);
}

int
MilterServerReadyCount(
    MilterServer *server)
{
    int count;

    pthread_mutex_lock(&server->lock);
    count = server->readyCount;
    pthread_mutex_unlock(&server->lock);
    return count;
}
