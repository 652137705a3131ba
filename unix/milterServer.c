/*
 * milterServer.c --
 *
 *	The network thread: one epoll loop that accepts MTA connections,
 *	hands their readiness to milterConn.c (which reads, frames, runs
 *	the session and writes), runs the connections' timers at the next
 *	real deadline, enforces the connection limit, and carries out stop
 *	and drain. Events that need a script go to the ready queue the
 *	connection is pinned to (milterQueue.c), whose interpreter resumes
 *	the connection itself with the verdict (see MilterConnResume), so no
 *	thread ever waits for another.
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

#include "milterServerInt.h"

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
 * Epoll reports taken per epoll_wait, and how long accepting pauses after
 * running out of descriptors (ms).
 */

#define EVENTS_PER_WAIT	64
#define ACCEPT_PAUSE	100

/*
 * "No deadline".
 */

#define NEVER		INT64_MAX

/*
 *----------------------------------------------------------------------
 *
 * Wake --
 *
 *	Wakes the network thread from epoll_wait.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes to the eventfd.
 *
 *----------------------------------------------------------------------
 */

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
 * MilterServerRelease --
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
    MilterFree((void *) server->config.metricsSpec);
    MilterFree(server);
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
 * ConnClosed --
 *
 *	The connections' closed hook (MilterConnHost), any thread: a closed
 *	connection asks to be unlinked; the network thread does it (Reap)
 *	and drops its reference.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Wakes the network thread.
 *
 *----------------------------------------------------------------------
 */

static void
ConnClosed(
    void *clientData,		/* The server. */
    MilterConn *conn)
{
    MilterServer *server = clientData;

    pthread_mutex_lock(&server->lock);
    if (!conn->retired) {
	conn->retired = 1;
	MILTER_FIFO_APPEND_AT(server->reapTail, conn, nextReap);
    }
    pthread_mutex_unlock(&server->lock);
    Wake(server);
}

/*
 *----------------------------------------------------------------------
 *
 * ConnFreed --
 *
 *	The connections' freed hook (MilterConnHost), any thread: a
 *	connection's last reference went, and with it its reference to the
 *	server.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free the server.
 *
 *----------------------------------------------------------------------
 */

static void
ConnFreed(
    void *clientData)		/* The server. */
{
    MilterServerRelease(clientData);
}

/*
 *----------------------------------------------------------------------
 *
 * Reap --
 *
 *	Network thread: unlinks retired connections and drops its reference
 *	to each. Runs only between epoll batches, so no report in hand can
 *	name a freed connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free connections.
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
    MILTER_FIFO_INIT(server->reapList, server->reapTail);
    for (conn = list; conn != NULL; conn = conn->nextReap) {
	MILTER_LIST_REMOVE_AT(server->conns, conn, prev, next);
	server->connCount--;
	MilterStatsCount(server->config.stats, MILTER_STAT_CLOSED, 1);
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
 * ListenerInterest --
 *
 *	Network thread: puts the listening socket in the epoll set or takes
 *	it out (always before it is closed, see StopListening).
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
ListenerInterest(
    MilterServer *server,
    int fd,
    int on)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &server->listener;
    epoll_ctl(server->epollFd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

/*
 *----------------------------------------------------------------------
 *
 * AcceptAll --
 *
 *	Network thread: accepts every pending connection. Over
 *	-maxconnections a connection is closed at once (the MTA then
 *	applies its default action, e.g. Postfix's milter_default_action).
 *	Out of descriptors, accepting pauses for ACCEPT_PAUSE ms instead of
 *	spinning.
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
    int listenFd = server->listener.fd;	/* Only this thread closes it. */

    for (;;) {
	MilterConn *conn;
	unsigned long id;
	int fd, on = 1, full;

	if (ATOMIC_GET(&server->stopping)) {
	    /*
	     * A stop was asked: an inherited socket is not shut down
	     * (MilterSocketRefuse), so leave what waits in its queue to
	     * the next instance rather than accept it only to close it.
	     */

	    return;
	}
	fd = accept4(listenFd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
	    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
		    || errno == ENOMEM) {
		MilterHostLog(&server->host, MILTER_LOG_ERROR, "accept: %s; pausing",
			strerror(errno));
		ListenerInterest(server, listenFd, 0);
		server->acceptResume = MilterNowMs() + ACCEPT_PAUSE;
	    }
	    return;
	}
	pthread_mutex_lock(&server->lock);
	full = server->config.maxConnections > 0
		&& server->connCount >= server->config.maxConnections;
	id = ++server->nextId;
	pthread_mutex_unlock(&server->lock);
	if (full) {
	    MilterHostLog(&server->host, MILTER_LOG_WARNING, "connection refused: "
		    "-maxconnections %d reached",
		    server->config.maxConnections);
	    MilterStatsCount(server->config.stats, MILTER_STAT_REFUSED, 1);
	    close(fd);
	    continue;
	}
	fd = MoveHigh(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	conn = MilterConnNew(&server->host, fd, id,
		server->hooks.assign(server->hooks.clientData));
	pthread_mutex_lock(&server->lock);
	MILTER_LIST_PUSH_AT(server->conns, conn, prev, next);
	server->connCount++;
	server->refs++;
	pthread_mutex_unlock(&server->lock);
	MilterStatsCount(server->config.stats, MILTER_STAT_ACCEPTED, 1);
	MilterConnStart(conn);
	MilterHostLog(&server->host, MILTER_LOG_INFO, "connection %lu accepted", id);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * StopListening --
 *
 *	Network thread, once a stop was asked: the listening socket leaves
 *	the epoll set, is closed, and its socket file removed (if still
 *	ours).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes the listener.
 *
 *----------------------------------------------------------------------
 */

static void
StopListening(
    MilterServer *server,
    int count)
{
    MilterListener closing;

    pthread_mutex_lock(&server->lock);
    closing = server->listener;
    server->listener.fd = -1;
    pthread_mutex_unlock(&server->lock);
    if (server->acceptResume == 0) {
	ListenerInterest(server, closing.fd, 0);
    }
    server->acceptResume = 0;
    server->listening = 0;
    MilterSocketClose(&closing);
    MilterHostLog(&server->host, MILTER_LOG_NOTICE, "stopped listening on %s; "
	    "%d connection(s) open", closing.address, count);
}

/*
 *----------------------------------------------------------------------
 *
 * Tick --
 *
 *	Network thread: runs every connection's timers (MilterConnTick)
 *	and works out when the next one is due. Once a stop's deadline has
 *	passed and every connection was marked expired, tells the owner
 *	(the deadline hook).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets server->nextTick; may end and close connections.
 *
 *----------------------------------------------------------------------
 */

static void
Tick(
    MilterServer *server)
{
    MilterConn **list, *conn;
    MilterTick tick;
    int n = 0, i;
    int64_t next = NEVER, deadline;

    tick.now = MilterNowMs();
    tick.timeout = (int64_t) server->config.timeout * 1000;
    pthread_mutex_lock(&server->lock);
    tick.stopping = server->stopping;
    tick.hard = server->hard;
    deadline = server->drainDeadline;
    tick.late = tick.hard || (tick.stopping && tick.now >= deadline);
    list = MilterAlloc(sizeof(MilterConn *) * (server->connCount + 1));
    for (conn = server->conns; conn != NULL; conn = conn->next) {
	MilterConnRetain(conn);
	list[n++] = conn;
    }
    pthread_mutex_unlock(&server->lock);

    for (i = 0; i < n; i++) {
	int64_t due = MilterConnTick(list[i], &tick);

	if (due > 0 && due < next) {
	    next = due;
	}
	MilterConnRelease(list[i]);
    }
    MilterFree(list);
    if (tick.late && tick.stopping && !server->lateSeen) {
	server->lateSeen = 1;	/* Every connection is expired now. */
	if (server->hooks.deadline != NULL) {
	    server->hooks.deadline(server->hooks.clientData);
	}
    }

    /*
     * A connection with an event out, or accepted later, is due no
     * sooner than a -timeout from now; past the stop deadline, lingering
     * replies are due within LINGER_AFTER_DEADLINE.
     */

    if (tick.timeout > 0 && tick.now + tick.timeout < next) {
	next = tick.now + tick.timeout;
    }
    if (tick.stopping && !tick.late && deadline < next) {
	next = deadline;
    }
    if (tick.late && n > 0 && tick.now + LINGER_AFTER_DEADLINE < next) {
	next = tick.now + LINGER_AFTER_DEADLINE;
    }
    server->nextTick = next;
}

/*
 *----------------------------------------------------------------------
 *
 * WaitMillis --
 *
 *	Network thread: how long epoll_wait may sleep, from the next real
 *	deadline (a tick, or the end of an accept pause).
 *
 * Results:
 *	Milliseconds, or -1 for no deadline.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
WaitMillis(
    MilterServer *server)
{
    int64_t due = server->nextTick, wait;

    if (server->acceptResume != 0 && server->acceptResume < due) {
	due = server->acceptResume;
    }
    if (due == NEVER) {
	return -1;
    }
    wait = due - MilterNowMs();
    if (wait <= 0) {
	return 0;
    }
    return wait > 60000 ? 60000 : (int) wait;
}

/*
 *----------------------------------------------------------------------
 *
 * NetworkThread --
 *
 *	The epoll loop. Sleeps until a descriptor is ready, it is woken
 *	(stop, a retired connection), or the next deadline.
 *
 * Results:
 *	NULL.
 *
 * Side effects:
 *	Everything on the network side.
 *
 *----------------------------------------------------------------------
 */

static void *
NetworkThread(
    void *arg)
{
    MilterServer *server = arg;
    struct epoll_event events[EVENTS_PER_WAIT];
    int sawStop = 0, sawHard = 0;

    server->listening = 1;
    server->nextTick = NEVER;
    Tick(server);
    for (;;) {
	int n, i, stopping, hard, count;

	pthread_mutex_lock(&server->lock);
	stopping = server->stopping;
	hard = server->hard;
	count = server->connCount;
	pthread_mutex_unlock(&server->lock);

	if (stopping && server->listening) {
	    StopListening(server, count);
	}
	if ((stopping && !sawStop) || (hard && !sawHard)) {
	    sawStop = stopping;
	    sawHard = hard;
	    Tick(server);
	    Reap(server);
	    continue;
	}
	if (stopping && count == 0) {
	    break;
	}

	n = WaitMillis(server);
	if (server->metricsConns != NULL) {	/* -metrics deadlines. */
	    int due = MilterMetricsSweep(server);

	    if (due >= 0 && (n < 0 || due < n)) {
		n = due;
	    }
	}
	n = epoll_wait(server->epollFd, events, EVENTS_PER_WAIT, n);
	for (i = 0; i < n; i++) {
	    void *ptr = events[i].data.ptr;

	    if (ptr == &server->wakeFd) {
		uint64_t value;
		ssize_t got = read(server->wakeFd, &value, sizeof(value));

		(void) got;
	    } else if (ptr == &server->listener) {
		if (server->listening) {
		    AcceptAll(server);
		}
	    } else if (ptr == &server->metrics) {
		MilterMetricsAccept(server);
	    } else if (server->metricsConns != NULL
		    && MilterMetricsHandle(server, ptr, events[i].events)) {
		/* A scrape (-metrics). */
	    } else {
		MilterConnHandle(ptr, events[i].events);
	    }
	}
	Reap(server);
	if (server->acceptResume != 0
		&& MilterNowMs() >= server->acceptResume) {
	    server->acceptResume = 0;
	    ListenerInterest(server, server->listener.fd, 1);
	}
	if (MilterNowMs() >= server->nextTick) {
	    Tick(server);
	    Reap(server);
	}
    }

    MilterMetricsCloseAll(server);
    server->hooks.stopped(server->hooks.clientData);
    if (server->hooks.threadExit != NULL) {
	server->hooks.threadExit(server->hooks.clientData);
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * SetHost --
 *
 *	Fills in what the server's connections see of it (MilterConnHost);
 *	the epoll descriptor and the address follow once they exist.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets server->host.
 *
 *----------------------------------------------------------------------
 */

static void
SetHost(
    MilterServer *server)
{
    MilterConnHost *hostPtr = &server->host;

    hostPtr->epollFd = -1;
    hostPtr->address = "";
    hostPtr->config = &server->config;
    hostPtr->wantedPtr = &server->wanted;
    hostPtr->stoppingPtr = &server->stopping;
    hostPtr->debugLevelPtr = &server->debugLevel;
    hostPtr->log = server->hooks.log;
    hostPtr->logData = server->hooks.clientData;
    hostPtr->closed = ConnClosed;
    hostPtr->freed = ConnFreed;
    hostPtr->clientData = server;
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
    server->config.metricsSpec = cfg->metricsSpec == NULL ? NULL
	    : MilterStrdup(cfg->metricsSpec, strlen(cfg->metricsSpec));
    server->metrics.fd = -1;
    server->hooks = *hooks;
    SetHost(server);
    server->debugLevel = cfg->debugLevel;
    server->wanted = cfg->wanted;	/* Before the thread: see cfg. */
    server->refs = 1;
    MILTER_FIFO_INIT(server->reapList, server->reapTail);
    server->epollFd = server->wakeFd = -1;
    pthread_mutex_init(&server->lock, NULL);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (MilterSocketListen(cfg->spec, cfg->backlog, cfg->socketMode,
	    cfg->socketUid, cfg->socketGid, &server->listener, err,
	    errLen) < 0) {
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
    server->host.epollFd = server->epollFd;
    server->host.address = server->listener.address;
    ListenerInterest(server, server->listener.fd, 1);
    if (!MilterMetricsListen(server, err, errLen)) {
	goto fail;
    }

    if (pthread_create(&server->thread, NULL, NetworkThread, server) != 0) {
	snprintf(err, errLen, "cannot start the network thread");
	goto fail;
    }
    server->threadStarted = 1;
    return server;

  fail:
    MilterSocketClose(&server->listener);
    MilterMetricsCloseAll(server);
    MilterServerRelease(server);
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerStop --
 *
 *	Any thread. Refuses new connections before it returns. A soft stop
 *	lets open messages finish (until -draintimeout) and closes
 *	connections between messages; a hard stop ends every connection
 *	now. The stopped hook runs when the last connection is gone.
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
    MilterStopHow how)		/* MILTER_STOP_DRAIN or _HARD. */
{
    pthread_mutex_lock(&server->lock);
    if (!server->stopping) {
	server->drainDeadline = MilterNowMs() + server->config.drainTimeout;
	ATOMIC_SET(&server->stopping, 1);
    }
    if (how == MILTER_STOP_HARD) {
	server->hard = 1;
    }
    /*
     * Refuse new connections before returning, not when the network
     * thread gets round to closing the socket: a shut-down listening
     * socket (unix or TCP) answers connect() with ECONNREFUSED, and the
     * descriptor stays valid until the network thread closes it. An
     * inherited socket (fd:N, systemd) is left alone (MilterSocketRefuse).
     */

    MilterSocketRefuse(&server->listener);
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
 * MilterServerSetWanted --
 *
 *	Any thread: the events that have a callback; it takes effect with
 *	the next command read.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Atomic stores.
 *
 *----------------------------------------------------------------------
 */

void
MilterServerSetWanted(
    MilterServer *server,
    unsigned mask)
{
    ATOMIC_SET(&server->wanted, mask);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerSetDebug --
 *
 *	Any thread: the debug level of the network side's log; it takes
 *	effect with the next line.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	An atomic store.
 *
 *----------------------------------------------------------------------
 */

void
MilterServerSetDebug(
    MilterServer *server,
    int level)
{
    ATOMIC_SET(&server->debugLevel, level);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerAddress --
 *
 *	The connection spec actually bound (a port chosen for inet:0, say).
 *
 * Results:
 *	The spec; it lives as long as the server.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

const char *
MilterServerAddress(
    MilterServer *server)
{
    return server->listener.address;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerStopping --
 *
 *	Any thread: whether a stop was asked.
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
MilterServerStopping(
    MilterServer *server)
{
    return ATOMIC_GET(&server->stopping);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerDescribe --
 *
 *	Any thread: what milter sessions shows of every live connection,
 *	in the order they were accepted. The connections are retained
 *	under the server's lock and described after it is released (a
 *	connection's lock comes before the server's).
 *
 * Results:
 *	A MilterAlloc'ed array (the caller frees it), its length in
 *	*countPtr.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

MilterConnInfo *
MilterServerDescribe(
    MilterServer *server,
    int *countPtr)
{
    MilterConn **list, *conn;
    MilterConnInfo *infos;
    int n = 0, i;

    pthread_mutex_lock(&server->lock);
    list = MilterAlloc(sizeof(MilterConn *) * (server->connCount + 1));
    for (conn = server->conns; conn != NULL; conn = conn->next) {
	if (!conn->retired) {
	    MilterConnRetain(conn);
	    list[n++] = conn;
	}
    }
    pthread_mutex_unlock(&server->lock);
    infos = MilterAlloc(sizeof(MilterConnInfo) * (n + 1));
    for (i = 0; i < n; i++) {
	/* The list is newest first. */
	MilterConnDescribe(list[n - 1 - i], &infos[i]);
	MilterConnRelease(list[n - 1 - i]);
    }
    MilterFree(list);
    *countPtr = n;
    return infos;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerAbort --
 *
 *	Any thread: milter session ID abort. Finds the live connection
 *	with that number and aborts its session (MilterConnAbort).
 *
 * Results:
 *	A MilterAbortResult; *msgPtr says why a reply was refused.
 *
 * Side effects:
 *	See MilterConnAbort.
 *
 *----------------------------------------------------------------------
 */

MilterAbortResult
MilterServerAbort(
    MilterServer *server,
    unsigned long id,
    const MilterAbortReply *replyPtr,
    const char **msgPtr)
{
    MilterConn *conn;
    MilterAbortResult result;

    pthread_mutex_lock(&server->lock);
    for (conn = server->conns; conn != NULL; conn = conn->next) {
	if (conn->id == id && !conn->retired) {
	    MilterConnRetain(conn);
	    break;
	}
    }
    pthread_mutex_unlock(&server->lock);
    if (conn == NULL) {
	return MILTER_ABORT_NOSUCH;
    }
    result = MilterConnAbort(conn, replyPtr, msgPtr);
    MilterConnRelease(conn);
    return result;
}
