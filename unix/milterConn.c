/*
 * milterConn.c --
 *
 *	One MTA connection on the network thread's side: reading and
 *	framing its packets, running its session until an event needs a
 *	script, writing replies, closing; and the calls by which the owner
 *	gives a verdict back (MilterConnResume) or reaches the session from
 *	a context command. A connection's lock guards all of it, so the
 *	network thread and the owner take turns.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServerInt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void	FlushLocked(MilterConn *conn);
static MilterEvent *PumpLocked(MilterConn *conn);

/*
 *----------------------------------------------------------------------
 *
 * MilterConnNew --
 *
 *	A connection for an accepted descriptor, with a new session; the
 *	caller links it into the server's list (and counts it there).
 *
 * Results:
 *	The connection, holding the network thread's reference.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

MilterConn *
MilterConnNew(
    MilterServer *server,
    int fd)
{
    MilterConn *conn = MilterAlloc(sizeof(MilterConn));

    memset(conn, 0, sizeof(MilterConn));
    pthread_mutex_init(&conn->lock, NULL);
    conn->server = server;
    conn->refs = 1;
    conn->fd = fd;
    conn->session = MilterSessionNew(server->config.maxData);
    MilterSessionSetLeadingSpace(conn->session, server->config.leadingSpace);
    MilterBufInit(&conn->in);
    conn->lastActive = MilterNow();
    return conn;
}
/*
 *----------------------------------------------------------------------
 *
 * MilterConnRetain, MilterConnRelease --
 *
 *	Take or drop a reference; the last one frees the connection and
 *	drops its reference to the server.
 *
 *----------------------------------------------------------------------
 */

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
	    MilterServerLog(conn->server, MILTER_LOG_NOTICE,
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
 * MilterConnCloseLocked --
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

void
MilterConnCloseLocked(
    MilterConn *conn)
{
    MilterServer *server = conn->server;

    if (conn->fd >= 0) {
	close(conn->fd);	/* Also removes it from the epoll set. */
	conn->fd = -1;
	MilterServerLog(server, MILTER_LOG_INFO, "connection %lu closed",
		conn->id);
    }
    pthread_mutex_lock(&server->lock);
    if (!conn->reaped) {
	conn->reaped = 1;
	conn->nextReap = server->reapList;
	server->reapList = conn;
    }
    pthread_mutex_unlock(&server->lock);
    MilterServerWake(server);
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
	MilterServerLog(conn->server, MILTER_LOG_WARNING, "connection %lu: %s",
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
	    MilterConnCloseLocked(conn);
	    return NULL;
	}
	SetWantedLocked(conn);
	if (conn->eof) {
	    if (conn->ending) {
		/* The end sequence finished without closing: cannot
		 * happen, but never spin. */
		MilterConnCloseLocked(conn);
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
		MilterServerLog(server, MILTER_LOG_DEBUG, "connection %lu: "
			"command '%c' with %zu bytes", conn->id, pkt.cmd,
			pkt.len);
	    }
	    ev = MilterSessionFeed(conn->session, &pkt);
	    MilterBufConsume(&conn->in, used);
	    NoteProblem(conn);
	    break;
	case MILTER_FRAME_SHORT:
	    stopping = __atomic_load_n(&server->stopping, __ATOMIC_ACQUIRE);
	    if (stopping && !MilterSessionInMessage(conn->session)) {
		MilterServerLog(server, MILTER_LOG_NOTICE, "connection %lu: "
			"closed by milter stop between messages", conn->id);
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
	    MilterServerLog(server, MILTER_LOG_WARNING, "connection %lu: "
		    "packet with length 0; closing", conn->id);
	    conn->eof = 1;
	    UpdateInterest(conn);
	    break;
	case MILTER_FRAME_TOOBIG:
	    MilterServerLog(server, MILTER_LOG_WARNING, "connection %lu: "
		    "packet with %u data bytes exceeds -maxdatasize %zu; "
		    "closing", conn->id,
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
	    conn->lastActive = MilterNow();
	    if (n < READ_CHUNK) {
		return;
	    }
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    return;
	} else if (n < 0 && errno == EINTR) {
	    continue;
	} else {
	    if (n < 0) {
		MilterServerLog(conn->server, MILTER_LOG_NOTICE,
			"connection %lu: read failed: %s", conn->id,
			strerror(errno));
	    } else if (MilterBufLength(&conn->in) > 0
		    || MilterSessionInMessage(conn->session)) {
		MilterServerLog(conn->server, MILTER_LOG_NOTICE,
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
 *	(which may pick it up at once: it should not find the lock held).
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
	MilterServerEnqueue(conn, ev);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnHandle --
 *
 *	One epoll report for a connection.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnHandle(
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
 * MilterConnEnd --
 *
 *	Ends a connection from the network thread's side (timeout, stop,
 *	drain deadline): no more input is read; once it is not busy its
 *	session runs its end sequence.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnEnd(
    MilterConn *conn,
    const char *why)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->fd >= 0 && !conn->eof) {
	MilterServerLog(conn->server, MILTER_LOG_NOTICE, "connection %lu: %s",
		conn->id, why);
	conn->eof = 1;
	UpdateInterest(conn);
    }
    UnlockAndPump(conn);
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
	    conn->lastActive = MilterNow();	/* The MTA waited for us. */
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

/*
 *----------------------------------------------------------------------
 *
 * MilterConnPeerGone --
 *
 *	Whether nothing more can reach the MTA on this connection: it hung
 *	up, a read or write failed, or the network thread ended the session
 *	(timeout, stop). Called between MilterConnLock and MilterConnUnlock.
 *
 * Results:
 *	1 if the MTA is gone, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterConnPeerGone(
    MilterConn *conn)
{
    return conn->eof || conn->fd < 0;
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
