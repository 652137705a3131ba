/*
 * milterMetrics.c --
 *
 *	-metrics: a minimal HTTP/1.0 server on the network thread that
 *	answers GET /metrics (and GET /) with the milter's statistics in the
 *	Prometheus text format, without the interpreter: a scrape is
 *	answered even while every callback is busy. Each scrape connection
 *	is non-blocking and bounded (request size, count, and time), so a
 *	slow or hostile client cannot hold up the MTA connections.
 *
 *	Threads: everything here runs on the network thread, except
 *	MilterMetricsListen and MilterMetricsCloseAll (owner, before the
 *	thread starts or after it ended).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServerInt.h"
#include "milterList.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Bounds of the scrape connections (documented in doc/tclmilter.n,
 * STATISTICS): bytes of a request, connections at once, and milliseconds
 * one may take from accept to the last byte of the answer.
 */

#define METRICS_REQUEST_MAX	4096
#define METRICS_CONNS_MAX	16
#define METRICS_DEADLINE	5000
#define METRICS_BACKLOG		16	/* listen() backlog. */

/*
 * One scrape connection (network thread only).
 */

struct MilterMetricsConn {
    int fd;
    char request[METRICS_REQUEST_MAX];
    size_t requestLen;		/* Bytes of the request read so far. */
    char *answer;		/* The response, MilterAlloc'ed, or NULL
				 * while the request is read. */
    size_t answerLen;
    size_t answerDone;		/* Bytes of it written. */
    int64_t deadline;		/* Monotonic ms: closed then, done or
				 * not. */
    MilterMetricsConn *prevPtr;	/* MilterServer.metricsConns links. */
    MilterMetricsConn *nextPtr;
};

/*
 *----------------------------------------------------------------------
 *
 * MilterMetricsListen --
 *
 *	Opens the -metrics listening socket, when one is configured.
 *
 * Results:
 *	1, or 0 with a message in err that begins with
 *	MILTER_METRICS_ERROR.
 *
 * Side effects:
 *	Binds a socket; adds it to the epoll set.
 *
 *----------------------------------------------------------------------
 */

int
MilterMetricsListen(
    MilterServer *server,
    char *err,
    size_t errLen)
{
    struct epoll_event ev;
    char why[400];

    server->metrics.fd = -1;
    if (server->config.metricsSpec == NULL
	    || server->config.metricsSpec[0] == '\0') {
	return 1;
    }
    if (MilterSocketListen(server->config.metricsSpec, METRICS_BACKLOG,
	    server->config.socketMode, -1, -1, &server->metrics, why,
	    sizeof(why)) < 0) {
	server->metrics.fd = -1;
	snprintf(err, errLen, "%s%s", MILTER_METRICS_ERROR, why);
	return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &server->metrics;
    epoll_ctl(server->epollFd, EPOLL_CTL_ADD, server->metrics.fd, &ev);
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * CloseConn --
 *
 *	Ends one scrape connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes its descriptor, unlinks and frees it.
 *
 *----------------------------------------------------------------------
 */

static void
CloseConn(
    MilterServer *server,
    MilterMetricsConn *mc)
{
    MILTER_LIST_REMOVE(server->metricsConns, mc);
    server->metricsCount--;
    epoll_ctl(server->epollFd, EPOLL_CTL_DEL, mc->fd, NULL);
    close(mc->fd);
    MilterFree(mc->answer);
    MilterFree(mc);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterMetricsCloseAll --
 *
 *	Closes the listener and every scrape connection, when the network
 *	thread ends (or its start failed).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes descriptors; removes a unix socket file it created.
 *
 *----------------------------------------------------------------------
 */

void
MilterMetricsCloseAll(
    MilterServer *server)
{
    while (server->metricsConns != NULL) {
	CloseConn(server, server->metricsConns);
    }
    if (server->metrics.fd >= 0) {
	if (server->epollFd >= 0) {
	    epoll_ctl(server->epollFd, EPOLL_CTL_DEL, server->metrics.fd,
		    NULL);
	}
	MilterSocketClose(&server->metrics);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterMetricsAccept --
 *
 *	Network thread: the -metrics listener is readable. Accepts every
 *	waiting client; past METRICS_CONNS_MAX open at once, a client is
 *	closed at once.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Creates scrape connections.
 *
 *----------------------------------------------------------------------
 */

void
MilterMetricsAccept(
    MilterServer *server)
{
    for (;;) {
	struct epoll_event ev;
	MilterMetricsConn *mc;
	int fd = accept4(server->metrics.fd, NULL, NULL,
		SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
	    return;
	}
	if (server->metricsCount >= METRICS_CONNS_MAX) {
	    close(fd);
	    continue;
	}
	mc = MilterAlloc(sizeof(MilterMetricsConn));
	memset(mc, 0, sizeof(MilterMetricsConn));
	mc->fd = fd;
	mc->deadline = MilterNowMs() + METRICS_DEADLINE;
	MILTER_LIST_PUSH(server->metricsConns, mc);
	server->metricsCount++;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = mc;
	epoll_ctl(server->epollFd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Answer --
 *
 *	Builds the response to a complete request: 200 with the metrics for
 *	GET or HEAD of /metrics or /, 404 for another path, 405 for another
 *	method, 400 for a malformed request line.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets mc->answer; asks the server for the metrics text.
 *
 *----------------------------------------------------------------------
 */

static void
Answer(
    MilterServer *server,
    MilterMetricsConn *mc)
{
    char method[16], path[256], head[256];
    const char *status = "200 OK";
    char *body = NULL;
    size_t bodyLen = 0;
    int n, headOnly = 0;

    mc->request[mc->requestLen < sizeof(mc->request) ? mc->requestLen
	    : sizeof(mc->request) - 1] = '\0';
    if (sscanf(mc->request, "%15s %255s", method, path) != 2) {
	status = "400 Bad Request";
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
	status = "405 Method Not Allowed";
    } else if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
	status = "404 Not Found";
    } else {
	headOnly = strcmp(method, "HEAD") == 0;
	body = server->hooks.metrics(server->hooks.clientData, &bodyLen);
    }
    if (body == NULL) {
	bodyLen = strlen(status) + 1;
	body = MilterAlloc(bodyLen + 1);
	snprintf(body, bodyLen + 1, "%s\n", status);
    }
    n = snprintf(head, sizeof(head), "HTTP/1.0 %s\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
	    bodyLen);
    mc->answerLen = (size_t) n + (headOnly ? 0 : bodyLen);
    mc->answer = MilterAlloc(mc->answerLen);
    memcpy(mc->answer, head, (size_t) n);
    if (!headOnly) {
	memcpy(mc->answer + n, body, bodyLen);
    }
    MilterFree(body);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterMetricsHandle --
 *
 *	Network thread: an epoll report whose pointer may be a scrape
 *	connection's. Reads the request until its empty line, then writes
 *	the answer as the socket takes it, then closes.
 *
 * Results:
 *	1 if ptr was a scrape connection (handled), else 0.
 *
 * Side effects:
 *	Reads, writes, may close the connection.
 *
 *----------------------------------------------------------------------
 */

int
MilterMetricsHandle(
    MilterServer *server,
    void *ptr,
    uint32_t events)
{
    MilterMetricsConn *mc;

    for (mc = server->metricsConns; mc != NULL && mc != ptr;
	    mc = mc->nextPtr) {
	/* Find it. */
    }
    if (mc == NULL) {
	return 0;
    }
    if (mc->answer == NULL) {
	ssize_t got;

	do {
	    got = recv(mc->fd, mc->request + mc->requestLen,
		    sizeof(mc->request) - 1 - mc->requestLen, 0);
	} while (got < 0 && errno == EINTR);
	if (got > 0) {
	    mc->requestLen += (size_t) got;
	    mc->request[mc->requestLen] = '\0';
	}
	if (got == 0 || (got < 0 && errno != EAGAIN)
		|| (events & (EPOLLERR | EPOLLHUP))) {
	    CloseConn(server, mc);
	    return 1;
	}
	if (strstr(mc->request, "\r\n\r\n") == NULL
		&& strstr(mc->request, "\n\n") == NULL) {
	    if (mc->requestLen >= sizeof(mc->request) - 1) {
		CloseConn(server, mc);	/* Too big to be a scrape. */
	    }
	    return 1;
	}
	Answer(server, mc);
    }
    while (mc->answerDone < mc->answerLen) {
	ssize_t put = send(mc->fd, mc->answer + mc->answerDone,
		mc->answerLen - mc->answerDone, MSG_NOSIGNAL);

	if (put < 0 && errno == EINTR) {
	    continue;
	}
	if (put < 0 && errno == EAGAIN) {
	    struct epoll_event ev;

	    memset(&ev, 0, sizeof(ev));
	    ev.events = EPOLLOUT;
	    ev.data.ptr = mc;
	    epoll_ctl(server->epollFd, EPOLL_CTL_MOD, mc->fd, &ev);
	    return 1;
	}
	if (put <= 0) {
	    break;
	}
	mc->answerDone += (size_t) put;
    }
    CloseConn(server, mc);
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterMetricsSweep --
 *
 *	Network thread: closes the scrape connections past their deadline.
 *
 * Results:
 *	Milliseconds until the next deadline, or -1 when none is open.
 *
 * Side effects:
 *	May close connections.
 *
 *----------------------------------------------------------------------
 */

int
MilterMetricsSweep(
    MilterServer *server)
{
    MilterMetricsConn *mc, *nextPtr;
    int64_t now = MilterNowMs(), first = -1;

    for (mc = server->metricsConns; mc != NULL; mc = nextPtr) {
	nextPtr = mc->nextPtr;
	if (now >= mc->deadline) {
	    CloseConn(server, mc);
	} else if (first < 0 || mc->deadline - now < first) {
	    first = mc->deadline - now;
	}
    }
    return (int) first;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterServerMetricsAddress --
 *
 *	The spec the -metrics socket is bound to (with the real port), or
 *	"" when there is none.
 *
 * Results:
 *	A string owned by the server.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

const char *
MilterServerMetricsAddress(
    MilterServer *server)
{
    return server->metrics.fd >= 0 || server->metrics.address[0] != '\0'
	    ? server->metrics.address : "";
}
