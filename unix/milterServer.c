/*
 * milterServer.c --
 *
 *	The network thread: one epoll loop that accepts MTA connections,
 *	hands their readiness to milterConn.c (which reads, frames, runs
 *	the session and writes), enforces timeouts and the connection
 *	limit, and carries out stop and drain. Events that need a script go
 *	to a ready queue that the owner drains; the owner resumes the
 *	connection itself with the verdict (see MilterConnResume), so no
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
 *----------------------------------------------------------------------
 *
 * MilterServerLog --
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

void
MilterServerLog(
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

time_t
MilterNow(void)
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

void
MilterServerWake(
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
    MilterFree(server);
}
/*
 *----------------------------------------------------------------------
 *
 * MilterServerEnqueue --
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

void
MilterServerEnqueue(
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
		MilterServerLog(server, MILTER_LOG_ERROR, "accept: %s; pausing",
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
	    MilterServerLog(server, MILTER_LOG_WARNING, "connection refused: "
		    "-maxconnections %d reached",
		    server->config.maxConnections);
	    close(fd);
	    continue;
	}
	fd = MoveHigh(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	conn = MilterConnNew(server, fd);

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
	MilterServerLog(server, MILTER_LOG_INFO, "connection %lu accepted",
		conn->id);
    }
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
    time_t now = MilterNow();
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
    if (late && stopping && !server->deadlineHookRun) {
	server->deadlineHookRun = 1;
	if (server->hooks.deadline != NULL) {
	    server->hooks.deadline(server->hooks.clientData);
	}
    }

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
	    MilterConnCloseLocked(conn);
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
	    MilterConnEnd(conn, reason);
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
    time_t lastSweep = MilterNow();
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
	    server->listener.fd = fd;
	    MilterSocketClose(&server->listener);
	    MilterServerLog(server, MILTER_LOG_NOTICE, "stopped listening on "
		    "%s; %d connection(s) open", server->listener.address, count);
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
		MilterConnHandle(ptr, events[i].events);
	    }
	}
	Reap(server);
	if (stopping || MilterNow() != lastSweep) {
	    lastSweep = MilterNow();
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
	    cfg->socketMode, &server->listener, err, errLen);
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
    MilterSocketClose(&server->listener);
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
    MilterServerWake(server);
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
    return server->listener.address;
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
