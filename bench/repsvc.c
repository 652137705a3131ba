/*
 * repsvc.c --
 *
 *	A small local "reputation service" for the slow-lookup scenario of
 *	the TclMilter benchmark. It stands for the DNS blacklist, database
 *	or HTTP reputation API that a real milter asks about every sender:
 *	something on the network that answers quickly in CPU terms but
 *	only after a delay.
 *
 *	Protocol (TCP, one query per line, many queries per connection):
 *
 *	  client:  <address>\n		e.g. "<spammer@spamdomain.com>\n"
 *	  server:  ok\n  or  listed\n	after the configured delay
 *
 *	The address may carry angle brackets, surrounding blanks and a
 *	final CR; it is compared without case. Answers on one connection
 *	come in the order of the queries. The special query "#stats" is
 *	answered at once (not in order with pending answers) with one line
 *	of counters; the benchmark uses it on a connection of its own.
 *
 *	The delay is made with one timerfd and a FIFO of pending answers
 *	(every answer has the same delay, so the FIFO is sorted by due
 *	time): nothing sleeps per request, so concurrent queries overlap
 *	and N clients each waiting for 20 ms see 20 ms, not N x 20 ms.
 *	One thread, epoll.
 *
 *	Usage: repsvc [-p PORT] [-H HOST] [-d MS] [-l ADDRESS]...
 *
 *	  -p PORT	port to listen on, 0 (default) = any free port
 *	  -H HOST	numeric IPv4 address to bind, default 127.0.0.1
 *	  -d MS		delay of every answer in milliseconds (fractions
 *			allowed), default 20
 *	  -l ADDRESS	a listed address (repeatable); without -l the
 *			benchmark's blacklist: spammer@spamdomain.com,
 *			friend@public.com
 *
 *	Once it listens it prints "repsvc port=N delay_ms=D" on stdout. On
 *	SIGTERM or SIGINT it prints its counters on stderr and exits 0.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE	1024	/* a longer query line closes the connection */
#define MAX_LISTED	64

/*
 * Transfer: which way, and its result when the socket is not ready.
 */

typedef enum IoDirection {
    IO_SEND,
    IO_RECV
} IoDirection;

#define IO_WOULD_BLOCK	(-2)

/*
 * One client connection, indexed by its file descriptor. Only the main
 * (only) thread touches it.
 */

typedef struct Conn {
    int open;			/* 1 while the descriptor is ours */
    uint64_t gen;		/* bumped at every close: pending answers
				 * of an earlier client are dropped */
    char in[MAX_LINE];		/* partial query line */
    size_t inLen;		/* bytes in in[] */
    char *out;			/* answers not yet written */
    size_t outLen;		/* bytes in out[] */
    size_t outCap;		/* size of out[] */
    int wantOut;		/* 1 if EPOLLOUT is armed */
} Conn;

/*
 * One answer waiting for its due time.
 */

typedef struct Pending {
    int fd;			/* connection it goes to */
    uint64_t gen;		/* that connection's generation */
    int64_t due;		/* CLOCK_MONOTONIC nanoseconds */
    int listed;			/* the answer */
} Pending;

static Conn *conns;		/* indexed by fd */
static int nConns;		/* size of conns[] */
static Pending *queue;		/* ring buffer of pending answers */
static size_t qCap, qHead, qLen;
static int epfd, timerFd;
static int64_t delayNs = 20 * 1000000LL;
static const char *listed[MAX_LISTED + 1];
static int nListed;

/*
 * Counters, for "#stats" and the exit line.
 */

static uint64_t queries, answered, dropped, maxPending;
static uint64_t connsTotal, connsOpen, maxConnsOpen;

/*
 *----------------------------------------------------------------------
 *
 * Die --
 *
 *	Reports a fatal error.
 *
 * Results:
 *	None; does not return.
 *
 * Side effects:
 *	Prints the message (with errno's text if set) and exits 1.
 *
 *----------------------------------------------------------------------
 */

static void
Die(
    const char *what)
{
    if (errno != 0) {
	fprintf(stderr, "repsvc: %s: %s\n", what, strerror(errno));
    } else {
	fprintf(stderr, "repsvc: %s\n", what);
    }
    exit(1);
}

/*
 *----------------------------------------------------------------------
 *
 * NowNs --
 *
 *	Reads the monotonic clock.
 *
 * Results:
 *	Nanoseconds since an arbitrary start.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int64_t
NowNs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 *----------------------------------------------------------------------
 *
 * IsListed --
 *
 *	Normalizes a query (angle brackets, blanks, CR) and looks it up.
 *
 * Results:
 *	1 if the address is listed, 0 otherwise.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
IsListed(
    const char *line,
    size_t len)
{
    const char *start = line, *end = line + len;
    const char *lt, *gt;
    int i;

    lt = memchr(start, '<', len);
    if (lt != NULL) {
	start = lt + 1;
	gt = memchr(start, '>', (size_t) (end - start));
	if (gt != NULL) {
	    end = gt;
	}
    }
    while (start < end && (*start == ' ' || *start == '\t')) {
	start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'
	    || end[-1] == '\r')) {
	end--;
    }
    for (i = 0; i < nListed; i++) {
	if (strlen(listed[i]) == (size_t) (end - start)
		&& strncasecmp(listed[i], start, (size_t) (end - start))
		== 0) {
	    return 1;
	}
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * ArmTimer --
 *
 *	Sets the timerfd to the due time of the oldest pending answer, or
 *	disarms it when nothing is pending.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	timerfd_settime.
 *
 *----------------------------------------------------------------------
 */

static void
ArmTimer(void)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (qLen > 0) {
	int64_t due = queue[qHead].due;

	if (due <= 0) {
	    due = 1;		/* 0 would disarm */
	}
	its.it_value.tv_sec = due / 1000000000LL;
	its.it_value.tv_nsec = due % 1000000000LL;
    }
    if (timerfd_settime(timerFd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
	Die("timerfd_settime");
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CloseConn --
 *
 *	Ends a client connection.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes the descriptor; its pending answers will be dropped.
 *
 *----------------------------------------------------------------------
 */

static void
CloseConn(
    int fd)
{
    Conn *c = &conns[fd];

    close(fd);
    c->open = 0;
    c->gen++;
    c->inLen = 0;
    c->outLen = 0;
    c->wantOut = 0;
    connsOpen--;
}

/*
 *----------------------------------------------------------------------
 *
 * Transfer --
 *
 *	One send or recv on a non-blocking socket, retried when a signal
 *	interrupts it.
 *
 * Results:
 *	What send or recv returned (-1 on an error), or IO_WOULD_BLOCK
 *	when the socket is not ready.
 *
 * Side effects:
 *	Writes to or reads from the socket.
 *
 *----------------------------------------------------------------------
 */

static ssize_t
Transfer(
    int fd,			/* The socket. */
    void *buf,			/* What to send, or room for what comes. */
    size_t len,			/* Its size. */
    IoDirection direction)	/* IO_SEND or IO_RECV. */
{
    ssize_t n;

    do {
	n = direction == IO_SEND ? send(fd, buf, len, MSG_NOSIGNAL)
		: recv(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	return IO_WOULD_BLOCK;
    }
    return n;
}

/*
 *----------------------------------------------------------------------
 *
 * Flush --
 *
 *	Writes what it can of a connection's answers, and arms or disarms
 *	EPOLLOUT for the rest.
 *
 * Results:
 *	0, or -1 if the connection was closed (write error).
 *
 * Side effects:
 *	Writes to the socket; may close it.
 *
 *----------------------------------------------------------------------
 */

static int
Flush(
    int fd)
{
    Conn *c = &conns[fd];
    struct epoll_event ev;
    ssize_t n;
    int want;

    while (c->outLen > 0) {
	n = Transfer(fd, c->out, c->outLen, IO_SEND);
	if (n == IO_WOULD_BLOCK) {
	    break;
	}
	if (n < 0) {
	    CloseConn(fd);
	    return -1;
	}
	memmove(c->out, c->out + n, c->outLen - (size_t) n);
	c->outLen -= (size_t) n;
    }
    want = (c->outLen > 0);
    if (want != c->wantOut) {
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.fd = fd;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
	    Die("epoll_ctl");
	}
	c->wantOut = want;
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * Queue --
 *
 *	Appends text to a connection's output.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May grow the output buffer.
 *
 *----------------------------------------------------------------------
 */

static void
Queue(
    Conn *c,
    const char *text,
    size_t len)
{
    if (c->outLen + len > c->outCap) {
	size_t cap = c->outCap ? c->outCap : 256;

	while (cap < c->outLen + len) {
	    cap *= 2;
	}
	c->out = realloc(c->out, cap);
	if (c->out == NULL) {
	    Die("out of memory");
	}
	c->outCap = cap;
    }
    memcpy(c->out + c->outLen, text, len);
    c->outLen += len;
}

/*
 *----------------------------------------------------------------------
 *
 * Query --
 *
 *	Handles one query line: "#stats" at once, anything else by
 *	appending an answer to the FIFO of pending answers (or at once
 *	with a zero delay).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the FIFO, may arm the timer or write to the socket.
 *
 *----------------------------------------------------------------------
 */

static void
Query(
    int fd,
    const char *line,
    size_t len)
{
    Conn *c = &conns[fd];
    Pending *p;

    if (len >= 6 && memcmp(line, "#stats", 6) == 0) {
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf), "queries=%" PRIu64 " answered=%"
		PRIu64 " dropped=%" PRIu64 " pending=%zu max_pending=%"
		PRIu64 " conns=%" PRIu64 " max_conns=%" PRIu64 "\n",
		queries, answered, dropped, qLen, maxPending, connsTotal,
		maxConnsOpen);
	Queue(c, buf, (size_t) n);
	return;
    }
    queries++;
    if (delayNs <= 0) {
	if (IsListed(line, len)) {
	    Queue(c, "listed\n", 7);
	} else {
	    Queue(c, "ok\n", 3);
	}
	answered++;
	return;
    }
    if (qLen == qCap) {
	size_t newCap = qCap ? 2 * qCap : 1024, i;
	Pending *nq = malloc(newCap * sizeof(Pending));

	if (nq == NULL) {
	    Die("out of memory");
	}
	for (i = 0; i < qLen; i++) {
	    nq[i] = queue[(qHead + i) % qCap];
	}
	free(queue);
	queue = nq;
	qCap = newCap;
	qHead = 0;
    }
    p = &queue[(qHead + qLen) % qCap];
    p->fd = fd;
    p->gen = c->gen;
    p->due = NowNs() + delayNs;
    p->listed = IsListed(line, len);
    qLen++;
    if (qLen > maxPending) {
	maxPending = qLen;
    }
    if (qLen == 1) {
	ArmTimer();
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ReadConn --
 *
 *	Reads from a client and handles every complete query line.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May close the connection (EOF, error, overlong line).
 *
 *----------------------------------------------------------------------
 */

static void
ReadConn(
    int fd)
{
    Conn *c = &conns[fd];
    ssize_t n;
    char *nl;

    for (;;) {
	n = Transfer(fd, c->in + c->inLen, sizeof(c->in) - c->inLen,
		IO_RECV);
	if (n == IO_WOULD_BLOCK) {
	    break;
	}
	if (n <= 0) {		/* An error, or the end of the stream. */
	    CloseConn(fd);
	    return;
	}
	c->inLen += (size_t) n;
	while ((nl = memchr(c->in, '\n', c->inLen)) != NULL) {
	    size_t len = (size_t) (nl - c->in);

	    Query(fd, c->in, len);
	    memmove(c->in, nl + 1, c->inLen - len - 1);
	    c->inLen -= len + 1;
	}
	if (c->inLen == sizeof(c->in)) {
	    fprintf(stderr, "repsvc: query line too long, closing\n");
	    CloseConn(fd);
	    return;
	}
    }
    if (c->outLen > 0) {
	Flush(fd);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Expire --
 *
 *	Called when the timer fires: hands out every answer that is due.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes answers, shrinks the FIFO, re-arms the timer.
 *
 *----------------------------------------------------------------------
 */

static void
Expire(void)
{
    uint64_t ticks;
    int64_t now = NowNs();

    if (read(timerFd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN) {
	Die("read timerfd");
    }
    while (qLen > 0 && queue[qHead].due <= now) {
	Pending p = queue[qHead];
	Conn *c = &conns[p.fd];

	qHead = (qHead + 1) % qCap;
	qLen--;
	if (!c->open || c->gen != p.gen) {
	    dropped++;
	    continue;
	}
	if (p.listed) {
	    Queue(c, "listed\n", 7);
	} else {
	    Queue(c, "ok\n", 3);
	}
	answered++;
	/*
	 * Write at once rather than after the loop: answers due together
	 * for one connection still go out together when the socket is
	 * full, since Flush leaves the rest for EPOLLOUT.
	 */
	Flush(p.fd);
    }
    ArmTimer();
}

/*
 *----------------------------------------------------------------------
 *
 * Accept --
 *
 *	Accepts every pending client.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the connection table; registers the clients with epoll.
 *
 *----------------------------------------------------------------------
 */

static void
Accept(
    int lfd)
{
    struct epoll_event ev;
    int fd, one = 1;

    for (;;) {
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
	    if (errno == EINTR || errno == ECONNABORTED) {
		continue;
	    }
	    if (errno == EAGAIN || errno == EWOULDBLOCK) {
		return;
	    }
	    if (errno == EMFILE || errno == ENFILE) {
		fprintf(stderr, "repsvc: accept: %s\n", strerror(errno));
		return;
	    }
	    Die("accept");
	}
	if (fd >= nConns) {
	    int n = nConns ? nConns : 256;

	    while (n <= fd) {
		n *= 2;
	    }
	    conns = realloc(conns, (size_t) n * sizeof(Conn));
	    if (conns == NULL) {
		Die("out of memory");
	    }
	    memset(conns + nConns, 0, (size_t) (n - nConns) * sizeof(Conn));
	    nConns = n;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conns[fd].open = 1;
	conns[fd].inLen = 0;
	conns[fd].outLen = 0;
	conns[fd].wantOut = 0;
	ev.events = EPOLLIN;
	ev.data.fd = fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
	    Die("epoll_ctl");
	}
	connsTotal++;
	connsOpen++;
	if (connsOpen > maxConnsOpen) {
	    maxConnsOpen = connsOpen;
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * main --
 *
 *	Parses the options, listens, and runs the event loop until
 *	SIGTERM or SIGINT.
 *
 * Results:
 *	The exit status.
 *
 * Side effects:
 *	Everything.
 *
 *----------------------------------------------------------------------
 */

int
main(
    int argc,
    char **argv)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    struct epoll_event ev, evs[64];
    sigset_t mask;
    const char *host = "127.0.0.1";
    int port = 0, lfd, sigFd, opt, one = 1, i, n;

    while ((opt = getopt(argc, argv, "p:H:d:l:h")) != -1) {
	switch (opt) {
	case 'p':
	    port = atoi(optarg);
	    break;
	case 'H':
	    host = optarg;
	    break;
	case 'd':
	    delayNs = (int64_t) (atof(optarg) * 1e6);
	    break;
	case 'l':
	    if (nListed == MAX_LISTED) {
		errno = 0;
		Die("too many -l");
	    }
	    listed[nListed++] = optarg;
	    break;
	default:
	    fprintf(stderr, "usage: repsvc [-p PORT] [-H HOST] [-d MS]"
		    " [-l ADDRESS]...\n");
	    return 2;
	}
    }
    if (nListed == 0) {
	listed[nListed++] = "spammer@spamdomain.com";
	listed[nListed++] = "friend@public.com";
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigFd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    timerFd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sigFd < 0 || timerFd < 0 || epfd < 0 || lfd < 0) {
	Die("setup");
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
	errno = 0;
	Die("-H wants a numeric IPv4 address");
    }
    if (bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
	Die("bind");
    }
    if (listen(lfd, 4096) < 0) {
	Die("listen");
    }
    if (getsockname(lfd, (struct sockaddr *) &sin, &slen) < 0) {
	Die("getsockname");
    }

    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = timerFd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, timerFd, &ev);
    ev.data.fd = sigFd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, sigFd, &ev);

    printf("repsvc port=%d delay_ms=%g\n", ntohs(sin.sin_port),
	    (double) delayNs / 1e6);
    fflush(stdout);

    for (;;) {
	n = epoll_wait(epfd, evs, 64, -1);
	if (n < 0) {
	    if (errno == EINTR) {
		continue;
	    }
	    Die("epoll_wait");
	}
	for (i = 0; i < n; i++) {
	    int fd = evs[i].data.fd;

	    if (fd == lfd) {
		Accept(lfd);
	    } else if (fd == timerFd) {
		Expire();
	    } else if (fd == sigFd) {
		fprintf(stderr, "repsvc: exit: queries=%" PRIu64
			" answered=%" PRIu64 " dropped=%" PRIu64
			" max_pending=%" PRIu64 " conns=%" PRIu64
			" max_conns=%" PRIu64 "\n", queries, answered,
			dropped, maxPending, connsTotal, maxConnsOpen);
		return 0;
	    } else if (fd < nConns && conns[fd].open) {
		if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
		    if (!(evs[i].events & EPOLLIN)) {
			CloseConn(fd);
			continue;
		    }
		}
		if (evs[i].events & EPOLLOUT) {
		    if (Flush(fd) < 0) {
			continue;
		    }
		}
		if (evs[i].events & EPOLLIN) {
		    ReadConn(fd);
		}
	    }
	}
    }
}
