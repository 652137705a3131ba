/*
 * milterConn.c --
 *
 *	One MTA connection on the network thread's side: reading and
 *	framing its packets, running its session until an event needs a
 *	script, writing replies, its timers, closing; and the calls by which
 *	the owner gives a verdict back (MilterConnResume) or reaches the
 *	session from a context command. A connection's lock guards all of
 *	it, so the network thread and the owner take turns.
 *
 *	Three rules keep a connection bounded and fair:
 *	  - what epoll is asked to report is derived from the state in one
 *	    place (WantedEvents), after every change;
 *	  - input is read, and commands are run, only while both the input
 *	    and the output buffer are under their bounds (CanRead,
 *	    OutputFull); one turn reads at most READ_TURN bytes;
 *	  - a connection leaves epoll before its descriptor is closed
 *	    (CloseLocked), and replies already decided are written out before
 *	    that, unless the MTA is gone or stops reading (FinishLocked).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServerInt.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Size of a packet's header (length and command byte) on the wire.
 */

#define PACKET_HEADER	5

static void	CloseLocked(MilterConn *conn);
static void	FlushLocked(MilterConn *conn);
static MilterEvent *PumpLocked(MilterConn *conn);
static void	UpdateInterest(MilterConn *conn);

/*
 *----------------------------------------------------------------------
 *
 * MilterHostLogs --
 *
 *	Whether the network side's debug level wants log lines of a level.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterHostLogs(
    const MilterConnHost *host,
    MilterLogLevel level)
{
    return MilterLogWanted(ATOMIC_GET(host->debugLevelPtr), level);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterHostLog --
 *
 *	Any thread: formats a log line of the network side (the server's or
 *	a connection's) and hands it to the log hook, if the debug level
 *	wants the level.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Calls the hook.
 *
 *----------------------------------------------------------------------
 */

void
MilterHostLog(
    const MilterConnHost *host,
    MilterLogLevel level,
    const char *format,
    ...)
{
    char msg[512];
    va_list args;

    if (!MilterHostLogs(host, level)) {
	return;
    }
    va_start(args, format);
    vsnprintf(msg, sizeof(msg), format, args);
    va_end(args);
    host->log(host->logData, level, msg);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnNew --
 *
 *	A connection for an accepted descriptor, with a new session. The
 *	caller links it into the server's list, then calls MilterConnStart.
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
    const MilterConnHost *host,	/* The server running it; its reference
				 * is the connection's. */
    int fd,
    unsigned long id,
    MilterQueue *queue)		/* Pinned for this connection. */
{
    MilterConn *conn = MilterAlloc(sizeof(MilterConn));

    memset(conn, 0, sizeof(MilterConn));
    pthread_mutex_init(&conn->lock, NULL);
    conn->host = host;
    conn->id = id;
    conn->queue = queue;
    conn->refs = 1;
    conn->fd = fd;
    conn->session = MilterSessionNew(host->config->maxData);
    MilterSessionSetLeadingSpace(conn->session, host->config->leadingSpace);
    MilterSessionSetStats(conn->session, host->config->stats);
    MilterBufInit(&conn->in);
    conn->lastActive = MilterNowMs();
    conn->born = conn->lastActive;
    if (host->config->captureDir != NULL) {	/* Capture. */
	conn->capture = MilterCaptureNew(host->config, host->address, id,
		conn->born);
    }
    return conn;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnStart --
 *
 *	Network thread: puts a new connection's descriptor in the epoll set.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	epoll_ctl.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnStart(
    MilterConn *conn)
{
    pthread_mutex_lock(&conn->lock);
    UpdateInterest(conn);
    pthread_mutex_unlock(&conn->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnRetain --
 *
 *	Any thread: takes a reference to a connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Atomic increment.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnRetain(
    MilterConn *conn)
{
    ATOMIC_ADD(&conn->refs, 1);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnRelease --
 *
 *	Any thread: drops a reference; the last one frees the connection
 *	and drops its reference to the server (the host's freed hook).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free the connection and close its descriptor.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnRelease(
    MilterConn *conn)
{
    const MilterConnHost *host = conn->host;

    if (ATOMIC_ADD(&conn->refs, -1) > 0) {
	return;
    }
    if (conn->fd >= 0) {
	/* Not reached: a connection is closed and retired before its
	 * last reference goes. Never leak the descriptor anyway. */
	if (conn->registered) {
	    epoll_ctl(host->epollFd, EPOLL_CTL_DEL, conn->fd, NULL);
	}
	close(conn->fd);
	MilterQueueUnpin(conn->queue);
    }
    MilterFree(conn->voided);	/* Its holder never came back (NULL). */
    if (conn->capture != NULL) {		/* Capture. */
	MilterCaptureFree(conn->capture);
    }
    MilterSessionFree(conn->session);
    MilterBufFree(&conn->in);
    pthread_mutex_destroy(&conn->lock);
    MilterQueueRelease(conn->queue);
    MilterFree(conn);
    host->freed(host->clientData);
}

/*
 *----------------------------------------------------------------------
 *
 * OutputFull --
 *
 *	The backpressure rule, first half: commands run only while the
 *	replies queued for the MTA are under OUTPUT_BOUND.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
OutputFull(
    MilterConn *conn)
{
    return MilterBufLength(MilterSessionOutput(conn->session))
	    >= OUTPUT_BOUND;
}

/*
 *----------------------------------------------------------------------
 *
 * CanRead --
 *
 *	The backpressure rule, second half: input is read only while the
 *	output is under its bound (OutputFull) and less than one largest
 *	packet is buffered, and only while the session takes input.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
CanRead(
    MilterConn *conn)
{
    return conn->fd >= 0 && !conn->inputEnded
	    && !MilterSessionClosed(conn->session) && !OutputFull(conn)
	    && MilterBufLength(&conn->in)
		< conn->host->config->maxData + PACKET_HEADER;
}

/*
 *----------------------------------------------------------------------
 *
 * WantedEvents --
 *
 *	What epoll should report for the connection, from its state alone:
 *	input while CanRead, output while replies wait for the socket.
 *
 * Results:
 *	An epoll event mask; 0 when nothing is wanted.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
WantedEvents(
    MilterConn *conn)
{
    uint32_t events = 0;

    if (CanRead(conn)) {
	events |= EPOLLIN | EPOLLRDHUP;
    }
    if (!conn->hangup
	    && MilterBufLength(MilterSessionOutput(conn->session)) > 0) {
	events |= EPOLLOUT;
    }
    return events;
}

/*
 *----------------------------------------------------------------------
 *
 * UpdateInterest --
 *
 *	Brings the epoll registration in line with WantedEvents. With
 *	nothing wanted the descriptor stays registered with an empty mask,
 *	so that a hang-up is still reported, until one has been: epoll
 *	reports hang-ups whatever the mask says, so after one the
 *	descriptor leaves the set (else the network thread would spin).
 *	Called with the lock held, on any thread.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	epoll_ctl when the registration changes.
 *
 *----------------------------------------------------------------------
 */

static void
UpdateInterest(
    MilterConn *conn)
{
    int epollFd = conn->host->epollFd;
    uint32_t events;
    struct epoll_event ev;
    int registered = conn->registered;

    if (conn->fd < 0) {
	return;
    }
    events = WantedEvents(conn);
    if (events == 0 && conn->hangup) {
	if (registered) {
	    epoll_ctl(epollFd, EPOLL_CTL_DEL, conn->fd, NULL);
	    conn->registered = 0;
	    conn->interest = 0;
	}
	return;
    }
    if (registered && events == conn->interest) {
	return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = conn;
    epoll_ctl(epollFd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, conn->fd,
	    &ev);
    conn->registered = 1;
    conn->interest = events;
}

/*
 *----------------------------------------------------------------------
 *
 * EndInputLocked --
 *
 *	No more input will be used: once no event is out, the session runs
 *	its end sequence (abort and close callbacks still owed).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Logs 'why' at 'level' unless NULL.
 *
 *----------------------------------------------------------------------
 */

static void
EndInputLocked(
    MilterConn *conn,
    MilterLogLevel level,
    const char *why)
{
    if (conn->inputEnded) {
	return;
    }
    conn->inputEnded = 1;
    if (why != NULL) {
	MilterHostLog(conn->host, level, "connection %lu: %s", conn->id,
		why);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FlushLocked --
 *
 *	Writes as much pending output as the socket takes, without
 *	blocking; the rest waits for EPOLLOUT (see WantedEvents). Replies
 *	produced together go out in one write. Output for an MTA that hung
 *	up is dropped.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes to the socket; a write error ends the session's input.
 *
 *----------------------------------------------------------------------
 */

static void
FlushLocked(
    MilterConn *conn)
{
    MilterBuf *out = MilterSessionOutput(conn->session);

    if (conn->capture != NULL
	    && MilterBufLength(out) > conn->captureSeen) {	/* Capture. */
	MilterCaptureMilter(conn->capture, MilterBufData(out)
		+ conn->captureSeen, MilterBufLength(out) - conn->captureSeen,
		MilterNowMs());
    }
    while (MilterBufLength(out) > 0 && !conn->hangup && conn->fd >= 0) {
	ssize_t n = send(conn->fd, MilterBufData(out), MilterBufLength(out),
		MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n > 0) {
	    MilterBufConsume(out, (size_t) n);
	    conn->lastActive = MilterNowMs();
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    break;
	} else if (n < 0 && errno == EINTR) {
	    continue;
	} else {
	    MilterHostLog(conn->host, MILTER_LOG_NOTICE,
		    "connection %lu: write failed: %s", conn->id,
		    strerror(errno));
	    conn->hangup = 1;
	    conn->peerClosed = 1;
	    EndInputLocked(conn, MILTER_LOG_NOTICE, NULL);
	}
    }
    if (conn->aborted && !conn->shut && conn->fd >= 0
	    && MilterBufLength(out) == 0) {
	/*
	 * milter session abort: the MTA has the reply it waited for; it
	 * sees the end now, though the session's close callback may run
	 * later (the descriptor is closed when the session is over).
	 */

	shutdown(conn->fd, SHUT_RDWR);
	conn->shut = 1;
	conn->hangup = 1;
    }
    if (conn->hangup || conn->fd < 0) {
	MilterBufReset(out);
    }
    MilterBufTrim(out, OUTPUT_BOUND);
    conn->captureSeen = MilterBufLength(out);	/* Capture. */
}

/*
 *----------------------------------------------------------------------
 *
 * CloseLocked --
 *
 *	The one way a connection's descriptor is closed: it leaves the
 *	epoll set first (a forked child, e.g. of [exec], may hold a copy of
 *	the descriptor, and the registration would outlive close()), is
 *	shut down so the MTA sees the end whoever else holds a copy, and
 *	the connection is handed back to the server to unlink.
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
CloseLocked(
    MilterConn *conn)
{
    char discard[512];
    int rounds;

    if (conn->fd < 0) {
	return;
    }
    if (conn->registered) {
	epoll_ctl(conn->host->epollFd, EPOLL_CTL_DEL, conn->fd, NULL);
	conn->registered = 0;
	conn->interest = 0;
    }

    /*
     * Unread input makes a TCP close send a reset, which can destroy
     * replies still in flight to the MTA: drop what is readable first
     * (a bounded amount, never waiting).
     */

    for (rounds = 0; rounds < 128; rounds++) {
	if (recv(conn->fd, discard, sizeof(discard), MSG_DONTWAIT) <= 0) {
	    break;
	}
    }
    shutdown(conn->fd, SHUT_RDWR);
    close(conn->fd);
    conn->fd = -1;
    MilterQueueUnpin(conn->queue);
    conn->inputEnded = 1;
    if (conn->capture != NULL) {		/* Capture. */
	char err[4400];

	if (!MilterCaptureFinish(conn->capture, MilterNowMs(), err,
		sizeof(err))) {
	    MilterHostLog(conn->host, MILTER_LOG_WARNING,
		    "connection %lu: %s", conn->id, err);
	}
	conn->capture = NULL;
    }
    MilterBufReset(MilterSessionOutput(conn->session));
    MilterHostLog(conn->host, MILTER_LOG_INFO, "connection %lu closed",
	    conn->id);
    conn->host->closed(conn->host->clientData, conn);
}

/*
 *----------------------------------------------------------------------
 *
 * FinishLocked --
 *
 *	The session is over: close now if nothing is owed to the MTA, else
 *	keep the descriptor open for writing only until the replies are
 *	out (MilterConnTick closes it if the MTA stops taking them).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May close the connection.
 *
 *----------------------------------------------------------------------
 */

static void
FinishLocked(
    MilterConn *conn)
{
    FlushLocked(conn);
    if (MilterBufLength(MilterSessionOutput(conn->session)) == 0) {
	CloseLocked(conn);
    } else {
	UpdateInterest(conn);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * SetWantedLocked --
 *
 *	Gives the session the events to hand out: those with a callback,
 *	plus close whenever the owner has data to clean up.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the session's event mask.
 *
 *----------------------------------------------------------------------
 */

static void
SetWantedLocked(
    MilterConn *conn)
{
    unsigned mask = ATOMIC_GET(conn->host->wantedPtr);

    if (conn->hasData) {
	mask |= MILTER_EVBIT(MILTER_EV_CLOSE);
    }
    MilterSessionSetWanted(conn->session, mask);
}

/*
 *----------------------------------------------------------------------
 *
 * NoteProblem --
 *
 *	Logs what the session found wrong with the last packet, if anything.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	A warning.
 *
 *----------------------------------------------------------------------
 */

static void
NoteProblem(
    MilterConn *conn)
{
    const char *problem = MilterSessionProblem(conn->session);

    if (problem != NULL) {
	MilterHostLog(conn->host, MILTER_LOG_WARNING, "connection %lu: %s",
		conn->id, problem);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FeedLocked --
 *
 *	Frames the next packet of buffered input and gives it to the
 *	session.
 *
 * Results:
 *	The event the packet asks for, or NULL. *morePtr is set to 0 when
 *	the input holds no whole packet.
 *
 * Side effects:
 *	Consumes input; ends it on a malformed frame or, while stopping,
 *	between messages.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
FeedLocked(
    MilterConn *conn,
    int *morePtr)
{
    const MilterServerConfig *config = conn->host->config;
    MilterEvent *ev = NULL;
    MilterPacket pkt;
    size_t used;
    char why[160];

    switch (MilterWireFrame(conn->in.bytes ? MilterBufData(&conn->in)
	    : (const unsigned char *) "", MilterBufLength(&conn->in),
	    config->maxData, &pkt, &used)) {
    case MILTER_FRAME_OK:
	if (MilterHostLogs(conn->host, MILTER_LOG_DEBUG)) {
	    MilterHostLog(conn->host, MILTER_LOG_DEBUG, "connection %lu: "
		    "command '%c' with %zu bytes", conn->id, pkt.cmd,
		    pkt.len);
	}
	if (conn->capture != NULL) {		/* Capture. */
	    MilterCaptureMta(conn->capture, &pkt, MilterNowMs());
	}
	ev = MilterSessionFeed(conn->session, &pkt);
	MilterBufConsume(&conn->in, used);
	NoteProblem(conn);
	break;
    case MILTER_FRAME_SHORT:
	if (ATOMIC_GET(conn->host->stoppingPtr)
		&& !MilterSessionInMessage(conn->session)) {
	    EndInputLocked(conn, MILTER_LOG_NOTICE,
		    "closed by milter stop between messages");
	} else {
	    *morePtr = 0;
	}
	break;
    case MILTER_FRAME_EMPTY:
	MilterStatsCount(config->stats, MILTER_STAT_PROTOCOL_ERRORS,
		1);			/* Stats. */
	EndInputLocked(conn, MILTER_LOG_WARNING,
		"packet with length 0; closing");
	break;
    case MILTER_FRAME_TOOBIG:
	MilterStatsCount(config->stats, MILTER_STAT_PROTOCOL_ERRORS,
		1);			/* Stats. */
	snprintf(why, sizeof(why), "packet with %u data bytes exceeds "
		"-maxdatasize %zu; closing",
		(unsigned) MilterWireGet32(MilterBufData(&conn->in)) - 1,
		config->maxData);
	EndInputLocked(conn, MILTER_LOG_WARNING, why);
	break;
    }
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * PumpLocked --
 *
 *	Runs the session over buffered input until it needs a verdict, needs
 *	more input, has queued as much output as the MTA may be owed, or is
 *	over. Called with the lock held and the connection not busy.
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
    MilterEvent *ev = NULL;
    int more = 1;

    while (ev == NULL && more) {
	if (MilterSessionClosed(conn->session)) {
	    FinishLocked(conn);
	    return NULL;
	}
	SetWantedLocked(conn);
	if (conn->inputEnded) {
	    if (conn->ending) {
		/* The end sequence finished without closing: cannot
		 * happen, but never spin. */
		CloseLocked(conn);
		return NULL;
	    }
	    conn->ending = 1;
	    ev = MilterSessionEnd(conn->session);
	    NoteProblem(conn);
	} else if (OutputFull(conn)) {
	    FlushLocked(conn);
	    if (OutputFull(conn)) {
		break;		/* Until the MTA takes its replies. */
	    }
	} else {
	    ev = FeedLocked(conn, &more);
	}
    }
    FlushLocked(conn);
    if (ev != NULL) {
	conn->busy = 1;
	conn->busySince = MilterNowMs();	/* milter sessions */
	ATOMIC_ADD(&conn->refs, 1);
    }
    MilterBufTrim(&conn->in, READ_CHUNK);
    UpdateInterest(conn);
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * ReadLocked --
 *
 *	Reads what the socket has while CanRead allows, at most READ_TURN
 *	bytes, so one connection cannot keep the network thread to itself.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills conn->in; ends input at end of file or on an error.
 *
 *----------------------------------------------------------------------
 */

static void
ReadLocked(
    MilterConn *conn)
{
    size_t turn = 0;

    while (CanRead(conn) && turn < READ_TURN) {
	ssize_t n = recv(conn->fd, MilterBufReserve(&conn->in, READ_CHUNK),
		READ_CHUNK, MSG_DONTWAIT);

	if (n > 0) {
	    conn->in.len += (size_t) n;
	    turn += (size_t) n;
	    conn->lastActive = MilterNowMs();
	    if (n < READ_CHUNK) {
		return;
	    }
	    continue;
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    return;
	} else if (n < 0 && errno == EINTR) {
	    continue;
	}
	conn->peerClosed = 1;	/* End of file, or a read error. */
	if (n < 0) {
	    MilterHostLog(conn->host, MILTER_LOG_NOTICE,
		    "connection %lu: read failed: %s", conn->id,
		    strerror(errno));
	    conn->hangup = 1;
	    EndInputLocked(conn, MILTER_LOG_NOTICE, NULL);
	} else if (MilterBufLength(&conn->in) > 0) {
	    EndInputLocked(conn, MILTER_LOG_NOTICE, "MTA closed the "
		    "connection in the middle of a packet");
	} else if (MilterSessionInMessage(conn->session)) {
	    EndInputLocked(conn, MILTER_LOG_NOTICE, "MTA closed the "
		    "connection during a message");
	} else {
	    EndInputLocked(conn, MILTER_LOG_NOTICE, NULL);
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * AnswerAll --
 *
 *	Any thread, no lock held: answers a connection's event, and every
 *	event that follows until it needs input again, with one verdict (its
 *	queue is closed: no interpreter will decide them).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; may close the connection.
 *
 *----------------------------------------------------------------------
 */

static void
AnswerAll(
    MilterConn *conn,
    MilterEvent *ev,
    int verdict)
{
    while (ev != NULL) {
	ev = MilterConnResume(conn, verdict);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * UnlockAndPump --
 *
 *	Called with conn->lock held after anything changed: unless an event
 *	is already out, takes the next event the session has ready;
 *	releases the lock, then queues that event for the owner (which may
 *	pick it up at once: it should not find the lock held).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See PumpLocked.
 *
 *----------------------------------------------------------------------
 */

static void
UnlockAndPump(
    MilterConn *conn)
{
    MilterEvent *ev = NULL;
    int verdict;

    if (conn->fd >= 0 && !conn->busy) {
	ev = PumpLocked(conn);
    } else {
	UpdateInterest(conn);
    }
    pthread_mutex_unlock(&conn->lock);
    if (ev != NULL && !MilterQueuePush(conn->queue, conn, ev, &verdict)) {
	AnswerAll(conn, ev, verdict);	/* Its interpreter is gone. */
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnHandle --
 *
 *	Network thread: one epoll report for a connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Reads, writes, runs the session.
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
	if (events & (EPOLLHUP | EPOLLERR)) {
	    conn->hangup = 1;
	}
	if (events & EPOLLOUT) {
	    FlushLocked(conn);
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
	    ReadLocked(conn);
	}
    }
    UnlockAndPump(conn);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnTick --
 *
 *	Network thread: the connection's timers. A hard stop closes it at
 *	once; the stop deadline ends it; while stopping, it ends between
 *	messages; an idle MTA is ended past -timeout; an MTA that stops
 *	taking replies owed after the session is over is cut off after
 *	-timeout (LINGER_AFTER_DEADLINE once the stop deadline passed).
 *
 * Results:
 *	When this connection next needs a tick (monotonic ms), or 0 if
 *	nothing of its own is due (a connection with an event out becomes
 *	idle at a later time, which the server's tick interval covers).
 *
 * Side effects:
 *	May end or close the connection and run its session.
 *
 *----------------------------------------------------------------------
 */

int64_t
MilterConnTick(
    MilterConn *conn,
    const MilterTick *tickPtr)
{
    int64_t next = 0;

    pthread_mutex_lock(&conn->lock);
    if (tickPtr->hard) {
	conn->dead = 1;		/* No callbacks any more, just close. */
	CloseLocked(conn);
    } else if (conn->fd >= 0 && MilterSessionClosed(conn->session)) {
	int64_t limit = tickPtr->late ? LINGER_AFTER_DEADLINE
		: tickPtr->timeout;

	if (limit > 0 && tickPtr->now >= conn->lastActive + limit) {
	    MilterStatsCount(conn->host->config->stats,
		    MILTER_STAT_TIMEOUTS, 1);	/* Stats. */
	    MilterHostLog(conn->host, MILTER_LOG_NOTICE, "connection %lu: "
		    "MTA does not take its replies; closing", conn->id);
	    CloseLocked(conn);
	} else if (limit > 0) {
	    next = conn->lastActive + limit;
	}
    } else if (conn->fd >= 0 && !conn->inputEnded) {
	if (tickPtr->late) {
	    ATOMIC_SET(&conn->expired, 1);
	    EndInputLocked(conn, MILTER_LOG_NOTICE,
		    "closed at the milter stop deadline");
	} else if (tickPtr->stopping && !conn->busy
		&& !MilterSessionInMessage(conn->session)) {
	    EndInputLocked(conn, MILTER_LOG_NOTICE,
		    "closed by milter stop between messages");
	} else if (!conn->busy && tickPtr->timeout > 0) {
	    if (tickPtr->now >= conn->lastActive + tickPtr->timeout) {
		MilterStatsCount(conn->host->config->stats,
			MILTER_STAT_TIMEOUTS, 1);	/* Stats. */
		EndInputLocked(conn, MILTER_LOG_NOTICE,
			"MTA silent past -timeout; closing");
	    } else {
		next = conn->lastActive + tickPtr->timeout;
	    }
	}
    }
    UnlockAndPump(conn);
    return next;
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
    if (conn->voided != NULL) {
	/*
	 * milter session abort answered this event already; its verdict
	 * comes too late. Carry on with the end of the session.
	 */

	MilterFree(conn->voided);
	conn->voided = NULL;
	conn->busy = 0;
	if (!conn->dead && conn->fd >= 0) {
	    ev = PumpLocked(conn);
	}
    } else if (!conn->dead) {
	SetWantedLocked(conn);
	ev = MilterSessionResume(conn->session, verdict);
	NoteProblem(conn);
	if (ev == NULL) {
	    conn->busy = 0;
	    conn->lastActive = MilterNowMs();	/* The MTA waited for us. */
	    ev = PumpLocked(conn);
	} else {
	    finished = 0;	/* Same event chain: keep its reference. */
	    conn->busySince = MilterNowMs();	/* milter sessions */
	    FlushLocked(conn);
	    UpdateInterest(conn);
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
 * AnswerHeldLocked --
 *
 *	For milter session abort: answers the event out for a verdict,
 *	and every event that follows it without new input, with 'verdict'
 *	(reject for a negotiation). The holder keeps reading its event
 *	(conn->voided) until its own verdict comes, which is then ignored.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes the replies into the session's output; drops the
 *	modifications of an end of message.
 *
 *----------------------------------------------------------------------
 */

static void
AnswerHeldLocked(
    MilterConn *conn,
    int verdict)
{
    MilterSession *s = conn->session;
    MilterEvent *ev;

    conn->voided = MilterSessionDetach(s);
    if (conn->voided == NULL) {
	return;
    }
    ev = conn->voided;
    do {
	int answer = ev->type == MILTER_EV_NEGOTIATE ? MILTER_REJECT
		: verdict;

	if (ev->type == MILTER_EV_EOM) {
	    MilterSessionDiscardModifications(s);
	}
	if (ev == conn->voided) {
	    /* Resume counts the verdicts of the events it frees. */
	    MilterStatsVerdict(conn->host->config->stats, (int) ev->type,
		    answer);
	}
	ev = MilterSessionResume(s, answer);
    } while (ev != NULL);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnAbort --
 *
 *	Any thread (milter session abort): ends a session from outside its
 *	callbacks. The command the MTA waits on, if any, is answered now
 *	with the abort's verdict and reply text, whatever callback still
 *	decides it; then the MTA's side is shut down, and the session ends
 *	as at a stop's deadline: only its abort and close callbacks run.
 *
 * Results:
 *	MILTER_ABORT_DONE, MILTER_ABORT_ENDING (the session is already
 *	ending) or MILTER_ABORT_BADREPLY (*msgPtr says why).
 *
 * Side effects:
 *	Writes the reply; ends the connection's input.
 *
 *----------------------------------------------------------------------
 */

MilterAbortResult
MilterConnAbort(
    MilterConn *conn,
    const MilterAbortReply *replyPtr,
    const char **msgPtr)
{
    MilterSession *s;

    pthread_mutex_lock(&conn->lock);
    s = conn->session;
    if (conn->fd < 0 || conn->dead || conn->inputEnded || conn->aborted
	    || MilterSessionClosed(s)) {
	pthread_mutex_unlock(&conn->lock);
	return MILTER_ABORT_ENDING;
    }
    if (replyPtr->rcode != NULL && MilterSessionSetReply(s, replyPtr->rcode,
	    replyPtr->xcode, replyPtr->lines, replyPtr->count, msgPtr)
	    != MILTER_ERR_NONE) {
	pthread_mutex_unlock(&conn->lock);
	return MILTER_ABORT_BADREPLY;
    }
    conn->aborted = 1;
    ATOMIC_SET(&conn->expired, 1);
    if (conn->busy) {
	AnswerHeldLocked(conn, replyPtr->verdict);
    }
    EndInputLocked(conn, MILTER_LOG_NOTICE, "ended by milter session abort");
    FlushLocked(conn);
    UnlockAndPump(conn);
    return MILTER_ABORT_DONE;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnLock --
 *
 *	Access to the session for the owner's context commands (reply text,
 *	modifications, progress, macros); MilterConnUnlock ends it.
 *
 * Results:
 *	The session.
 *
 * Side effects:
 *	Takes the connection's lock.
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

/*
 *----------------------------------------------------------------------
 *
 * MilterConnUnlock --
 *
 *	Ends a MilterConnLock; with 'flush', first writes what the call
 *	produced for the MTA (progress).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Releases the connection's lock; may write.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnUnlock(
    MilterConn *conn,
    int flush)
{
    if (flush) {
	FlushLocked(conn);
	UpdateInterest(conn);
    }
    pthread_mutex_unlock(&conn->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnPeerGone --
 *
 *	Whether nothing more can reach the MTA on this connection: it hung
 *	up or closed its side, or a read or write failed. (A session the
 *	network thread ends itself, at a stop's deadline say, still gets the
 *	verdict being decided, so that is not "gone".) Called between
 *	MilterConnLock and MilterConnUnlock.
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
    return conn->peerClosed || conn->hangup || conn->fd < 0
	    || conn->aborted;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnGetData --
 *
 *	The owner's per-connection data (its context), on the thread that
 *	decides the connection's events.
 *
 * Results:
 *	The data, or NULL.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

void *
MilterConnGetData(
    MilterConn *conn)
{
    return conn->clientData;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnSetData --
 *
 *	Attaches the owner's per-connection data (NULL detaches it).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	A connection with data always hands out its close event, so that
 *	the data can be cleaned up.
 *
 *----------------------------------------------------------------------
 */

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

/*
 *----------------------------------------------------------------------
 *
 * MilterConnExpired --
 *
 *	Any thread: whether the connection was ended at a stop's deadline
 *	or by milter session abort: its events then get a verdict without
 *	running a script, except abort and close.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterConnExpired(
    MilterConn *conn)
{
    return ATOMIC_GET(&conn->expired);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnId --
 *
 *	The connection's number, as log lines and milter sessions show it.
 *
 * Results:
 *	The number.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

unsigned long
MilterConnId(
    MilterConn *conn)
{
    return conn->id;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnCapture --
 *
 *	Any thread: whether the session's capture is to be written at its
 *	end ($ctx capture); 'on' 0 or 1 changes that, -1 only asks.
 *
 * Results:
 *	1 or 0; -1 when the milter captures nothing (no -capture).
 *
 * Side effects:
 *	Takes the connection's lock for a moment.
 *
 *----------------------------------------------------------------------
 */

int
MilterConnCapture(
    MilterConn *conn,
    int on)
{
    int result = -1;

    pthread_mutex_lock(&conn->lock);
    if (conn->capture != NULL) {
	if (on >= 0) {
	    MilterCaptureSet(conn->capture, on);
	}
	result = MilterCaptureGet(conn->capture);
    }
    pthread_mutex_unlock(&conn->lock);
    return result;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnDescribe --
 *
 *	Any thread: what milter sessions shows of a connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *infoPtr; takes the connection's lock for a moment.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnDescribe(
    MilterConn *conn,
    MilterConnInfo *infoPtr)
{
    int64_t now = MilterNowMs();

    pthread_mutex_lock(&conn->lock);
    infoPtr->id = conn->id;
    infoPtr->ageMs = (long long) (now - conn->born);
    infoPtr->busy = conn->busy;
    infoPtr->busyMs = conn->busy ? (long long) (now - conn->busySince) : 0;
    infoPtr->worker = MilterQueueLabel(conn->queue);
    MilterSessionDescribe(conn->session, &infoPtr->session);
    pthread_mutex_unlock(&conn->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterConnCloseQueue --
 *
 *	Any thread: a ready queue's interpreter is gone. Closes the queue
 *	(MilterQueueClose) and answers every connection waiting on it with
 *	'verdict'; connections that push later answer themselves.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes replies; may close connections.
 *
 *----------------------------------------------------------------------
 */

void
MilterConnCloseQueue(
    MilterQueue *queue,
    int verdict)
{
    MilterEvent *ev;
    MilterConn *conn;

    MilterQueueClose(queue, verdict);
    while ((conn = MilterQueuePop(queue, &ev)) != NULL) {
	AnswerAll(conn, ev, verdict);
    }
}
