/*
 * loadgen.c --
 *
 *	MTA-side load generator for the TclMilter benchmark. It speaks
 *	milter protocol version 6 to a milter the way Postfix does: one
 *	milter connection per SMTP session (OPTNEG, CONNECT, HELO, then
 *	N messages, each ended by ABORT, then QUIT), it honours the
 *	NO and NR bits the milter negotiates, and it checks the verdict of
 *	every message against what the benchmark milters must do:
 *
 *	  30 % of the messages are blacklisted, half by envelope sender
 *	  (spammer@spamdomain.com), half by From: header
 *	  (friend@public.com); those must be rejected with a REPLYCODE
 *	  "550 5.7.1 ..." (or a plain REJECT). All others must get an
 *	  ADDHEADER X-Scanned and then CONTINUE or ACCEPT at end of message.
 *
 *	A second mode (-I N) opens N idle sessions (OPTNEG + CONNECT, then
 *	hold) and reports the RSS growth of the milter process per session.
 *
 *	A third (-G N) checks a greylisting milter (examples/greylist):
 *	no message is blacklisted; the envelope sender of message k is
 *	<sK@example.com> with K = k % N, so that N senders times the two
 *	recipients are the triplets seen.  A recipient may be refused with
 *	"451 4.7.1 ..." (greylisted); a message whose recipients all are
 *	counts as rejected, any other must reach end of message and get an
 *	ADDHEADER X-Greylist, counted as accepted.
 *
 *	Output: one line of key=value pairs on stdout. Diagnostics go to
 *	stderr. The exit status is 0 only if no error was seen.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * Wire constants (Sendmail include/libmilter/mfdef.h).
 */

#define MILTER_VERSION	6
#define OFFER_ACTIONS	0x1FFu
#define OFFER_PROTOCOL	0x1FFFFFu

#define P_NOCONNECT	0x00000001u
#define P_NOHELO	0x00000002u
#define P_NOMAIL	0x00000004u
#define P_NORCPT	0x00000008u
#define P_NOBODY	0x00000010u
#define P_NOHDRS	0x00000020u
#define P_NOEOH		0x00000040u
#define P_NR_HDR	0x00000080u
#define P_NOUNKNOWN	0x00000100u
#define P_NODATA	0x00000200u
#define P_SKIP		0x00000400u
#define P_NR_CONN	0x00001000u
#define P_NR_HELO	0x00002000u
#define P_NR_MAIL	0x00004000u
#define P_NR_RCPT	0x00008000u
#define P_NR_DATA	0x00010000u
#define P_NR_EOH	0x00040000u
#define P_NR_BODY	0x00080000u
#define P_HDR_LEADSPC	0x00100000u

#define MAX_REPLY	(16 * 1024 * 1024)

/*
 * Steps of a session. The message steps run from S_MAIL to S_EOM.
 */

enum {
    S_CONNECT, S_HELO, S_MAIL, S_RCPT, S_DATA, S_HDR, S_EOH, S_BODY,
    S_EOM, S_ABORT, S_QUIT, S_HOLD
};

static const char *const stepNames[] = {
    "CONNECT", "HELO", "MAIL", "RCPT", "DATA", "HEADER", "EOH", "BODY",
    "EOM", "ABORT", "QUIT", "HOLD"
};

/*
 * Connection states.
 */

enum {
    C_FREE,		/* no socket; start a session when allowed */
    C_RETRY,		/* connect failed transiently; retry at retryAt */
    C_CONNECTING,	/* inet connect in progress */
    C_OPTNEG,		/* OPTNEG sent, waiting for its reply */
    C_WAIT,		/* waiting for the reply to the current step */
    C_IDLE,		/* between replies: not waiting for anything */
    C_QUITWAIT,		/* QUIT sent, waiting for the milter to close */
    C_DONE		/* finished for good */
};

/*
 * Message kinds.
 */

enum { K_CLEAN, K_BADENV, K_BADHDR };

/*
 * Verdicts.
 */

enum { V_NONE, V_CONTINUE, V_ACCEPT, V_REJECT, V_TEMPFAIL, V_DISCARD };

#define NRCPT	2
#define NHDR	10

typedef struct Buf {
    char *data;
    size_t len;			/* bytes used */
    size_t off;			/* bytes already consumed / written */
    size_t cap;
} Buf;

typedef struct Conn {
    int fd;
    int state;
    int step;
    int idx;			/* recipient or header index in the step */
    int rcptRejected;		/* recipients rejected in this message */
    int msgInSession;		/* messages started in this session */
    int kind;			/* K_* of the current message */
    int sawScanned;		/* X-Scanned ADDHEADER seen at EOM */
    int measured;		/* message counts in count mode */
    int skipHdr, skipBody, skipRcpt;	/* SKIP received */
    uint64_t seq;		/* message sequence number */
    uint32_t version, actions, protocol;	/* negotiated */
    char *symlist[7];		/* macro lists requested by the milter */
    int64_t msgStart;		/* us, when MAIL was sent */
    int64_t deadline;		/* us, reply timeout */
    int64_t retryAt;
    uint32_t events;		/* epoll events registered */
    Buf out, in;
} Conn;

typedef struct Worker {
    int id;
    pthread_t thread;
    int epfd;
    Conn *conns;
    int nconns;
    /* results */
    uint32_t *lat;		/* latencies of counted messages, us */
    size_t nlat, caplat;
    uint64_t errors, sessions, messages, rejected, accepted;
    uint64_t connRetries;
    uint64_t rejectAt[S_HOLD + 1];	/* rejections by step */
} Worker;

/*
 * Options and shared run state.
 */

static struct {
    const char *spec;
    int family;			/* AF_UNIX, AF_INET, AF_INET6 */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int concurrency;
    double duration;
    double warmup;
    long count;
    int perSession;
    int threads;
    int pid;
    int idle;
    double hold;
    double waitUp;
    double timeout;
    int bodySize;
    int quickClose;
    int quickAck;
    int verbose;
    const char *label;
    int grey;			/* -G: greylist mode, number of senders */
} opt = {
    NULL, 0, {0}, 0, 8, 5.0, 1.0, 0, 1, 1, 0, 0, 0.0, 0.0, 10.0, 2048,
    0, 0, 0, NULL, 0
};

static int64_t tStart, tWarmEnd, tEnd;	/* us; tEnd only in duration mode */
static atomic_int stopping;		/* no new messages */
static atomic_int aborting;		/* give up on everything */
static atomic_ulong msgSeq;
static atomic_long measuredStarted;
static atomic_long measuredDone;
static atomic_int errorsLogged;
static atomic_int negotiatedSeen;
static uint32_t negVersion, negActions, negProtocol;
static atomic_int idleReady;		/* idle sessions established */
static atomic_int idleRelease;		/* idle sessions may quit */
static char *body;
static int64_t lastDone;		/* count mode: last completion */
static pthread_mutex_t lastDoneLock = PTHREAD_MUTEX_INITIALIZER;

static int64_t
NowUs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
Die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/*
 *----------------------------------------------------------------------
 *
 * Buffers and packet encoding.
 *
 *----------------------------------------------------------------------
 */

static void
BufReserve(
    Buf *b,
    size_t more)
{
    if (b->off > 0 && b->off == b->len) {
	b->off = b->len = 0;
    }
    if (b->len + more > b->cap) {
	if (b->off > 0) {
	    memmove(b->data, b->data + b->off, b->len - b->off);
	    b->len -= b->off;
	    b->off = 0;
	}
	if (b->len + more > b->cap) {
	    size_t cap = b->cap ? b->cap : 4096;

	    while (cap < b->len + more) {
		cap *= 2;
	    }
	    b->data = realloc(b->data, cap);
	    if (b->data == NULL) {
		Die("out of memory");
	    }
	    b->cap = cap;
	}
    }
}

static void
BufPut(
    Buf *b,
    const void *p,
    size_t n)
{
    BufReserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void
BufPut32(
    Buf *b,
    uint32_t v)
{
    uint32_t n = htonl(v);

    BufPut(b, &n, 4);
}

static void
BufClear(
    Buf *b)
{
    b->len = b->off = 0;
}

/*
 * A packet whose payload is the concatenation of NUL-terminated strings.
 * The list ends with NULL.
 */

static void
PutStrings(
    Buf *b,
    int cmd,
    ...)
{
    va_list ap;
    const char *s;
    size_t len = 1;
    char c = (char) cmd;

    va_start(ap, cmd);
    while ((s = va_arg(ap, const char *)) != NULL) {
	len += strlen(s) + 1;
    }
    va_end(ap);
    BufPut32(b, (uint32_t) len);
    BufPut(b, &c, 1);
    va_start(ap, cmd);
    while ((s = va_arg(ap, const char *)) != NULL) {
	BufPut(b, s, strlen(s) + 1);
    }
    va_end(ap);
}

static void
PutEmpty(
    Buf *b,
    int cmd)
{
    char c = (char) cmd;

    BufPut32(b, 1);
    BufPut(b, &c, 1);
}

/*
 * Does the milter's macro list for a stage allow a macro? No list means
 * "send the defaults"; "x" and "{x}" are the same name.
 */

static int
MacroWanted(
    const char *list,
    const char *name)
{
    char bare[64];
    const char *p;
    size_t n;

    if (list == NULL) {
	return 1;
    }
    if (name[0] == '{') {
	snprintf(bare, sizeof(bare), "%.*s", (int) strlen(name) - 2,
		name + 1);
    } else {
	snprintf(bare, sizeof(bare), "%s", name);
    }
    n = strlen(bare);
    p = list;
    while (*p) {
	const char *q;
	size_t m;

	while (*p == ' ' || *p == ',') {
	    p++;
	}
	q = p;
	while (*q && *q != ' ' && *q != ',') {
	    q++;
	}
	m = (size_t) (q - p);
	if (m >= 2 && p[0] == '{' && p[m - 1] == '}') {
	    p++;
	    m -= 2;
	}
	if (m == n && m > 0 && strncmp(p, bare, n) == 0) {
	    return 1;
	}
	p = q;
	if (*p == '}') {
	    p++;
	}
    }
    return 0;
}

/*
 * A MACRO packet for stage 'stage' (C, H, M, R) and milter stage index
 * mstage; pairs is a NULL-terminated list of name, value. Macros the
 * milter did not ask for are left out; an empty packet is not sent.
 */

static void
PutMacros(
    Conn *c,
    int stage,
    int mstage,
    const char *const *pairs)
{
    Buf *b = &c->out;
    const char *list = c->symlist[mstage];
    size_t len = 2;
    int i, any = 0;
    char s = (char) stage, cmd = 'D';

    for (i = 0; pairs[i] != NULL; i += 2) {
	if (MacroWanted(list, pairs[i])) {
	    len += strlen(pairs[i]) + strlen(pairs[i + 1]) + 2;
	    any = 1;
	}
    }
    if (!any) {
	return;
    }
    BufPut32(b, (uint32_t) len);
    BufPut(b, &cmd, 1);
    BufPut(b, &s, 1);
    for (i = 0; pairs[i] != NULL; i += 2) {
	if (MacroWanted(list, pairs[i])) {
	    BufPut(b, pairs[i], strlen(pairs[i]) + 1);
	    BufPut(b, pairs[i + 1], strlen(pairs[i + 1]) + 1);
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Errors and statistics.
 *
 *----------------------------------------------------------------------
 */

static void ConnClose(Worker *w, Conn *c);

static void
ConnError(
    Worker *w,
    Conn *c,
    const char *fmt,
    ...)
{
    va_list ap;

    w->errors++;
    if (atomic_fetch_add(&errorsLogged, 1) < 20) {
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "loadgen: error (conn %d, step %s, msg %" PRIu64
		"): %s\n", (int) (c - w->conns), stepNames[c->step], c->seq,
		msg);
    }
    ConnClose(w, c);
    if (!atomic_load(&stopping) && !opt.idle) {
	/* back off a little so a dead milter does not spin us */
	c->state = C_RETRY;
	c->retryAt = NowUs() + 10000;
    } else {
	c->state = C_DONE;
    }
}

static void
Record(
    Worker *w,
    Conn *c,
    int64_t now)
{
    int counted;

    w->messages++;
    if (opt.count > 0) {
	counted = c->measured;
	if (counted) {
	    atomic_fetch_add(&measuredDone, 1);
	    pthread_mutex_lock(&lastDoneLock);
	    if (now > lastDone) {
		lastDone = now;
	    }
	    pthread_mutex_unlock(&lastDoneLock);
	}
    } else {
	counted = (now >= tWarmEnd && now <= tEnd);
    }
    if (!counted) {
	return;
    }
    if (w->nlat == w->caplat) {
	w->caplat = w->caplat ? 2 * w->caplat : 65536;
	w->lat = realloc(w->lat, w->caplat * sizeof(uint32_t));
	if (w->lat == NULL) {
	    Die("out of memory");
	}
    }
    w->lat[w->nlat++] = (uint32_t) (now - c->msgStart);
}

/*
 *----------------------------------------------------------------------
 *
 * Sockets.
 *
 *----------------------------------------------------------------------
 */

static void
ParseSpec(
    const char *spec)
{
    const char *p;

    memset(&opt.addr, 0, sizeof(opt.addr));
    if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0
	    || spec[0] == '/') {
	struct sockaddr_un *sun = (struct sockaddr_un *) &opt.addr;

	p = spec[0] == '/' ? spec : strchr(spec, ':') + 1;
	if (strlen(p) >= sizeof(sun->sun_path)) {
	    Die("socket path too long: %s", p);
	}
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, p);
	opt.family = AF_UNIX;
	opt.addrlen = sizeof(*sun);
    } else if (strncmp(spec, "inet:", 5) == 0
	    || strncmp(spec, "inet6:", 6) == 0) {
	int six = spec[4] == '6';
	char port[16], host[256];
	const char *at;
	struct addrinfo hints, *res;
	int rc;

	p = spec + (six ? 6 : 5);
	at = strchr(p, '@');
	if (at == NULL) {
	    snprintf(port, sizeof(port), "%s", p);
	    snprintf(host, sizeof(host), "%s", six ? "::1" : "127.0.0.1");
	} else {
	    snprintf(port, sizeof(port), "%.*s", (int) (at - p), p);
	    snprintf(host, sizeof(host), "%s", at + 1);
	    if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	    }
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = six ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
	    Die("cannot resolve %s: %s", spec, gai_strerror(rc));
	}
	memcpy(&opt.addr, res->ai_addr, res->ai_addrlen);
	opt.addrlen = res->ai_addrlen;
	opt.family = res->ai_family;
	freeaddrinfo(res);
    } else {
	Die("bad socket spec \"%s\" (unix:/path or inet:port@host)", spec);
    }
}

static void
SetEvents(
    Worker *w,
    Conn *c,
    uint32_t ev)
{
    struct epoll_event e;

    if (c->fd < 0 || c->events == ev) {
	return;
    }
    e.events = ev;
    e.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
	Die("epoll_ctl: %s", strerror(errno));
    }
    c->events = ev;
}

static void
ConnClose(
    Worker *w,
    Conn *c)
{
    int i;

    if (c->fd >= 0) {
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
    }
    BufClear(&c->in);
    BufClear(&c->out);
    for (i = 0; i < 7; i++) {
	free(c->symlist[i]);
	c->symlist[i] = NULL;
    }
    c->events = 0;
    c->state = C_FREE;
}

static int Flush(Worker *w, Conn *c);
static void Advance(Worker *w, Conn *c);

/*
 * Send OPTNEG on a connected socket.
 */

static void
SendOptneg(
    Worker *w,
    Conn *c)
{
    char o = 'O';

    BufPut32(&c->out, 13);
    BufPut(&c->out, &o, 1);
    BufPut32(&c->out, MILTER_VERSION);
    BufPut32(&c->out, OFFER_ACTIONS);
    BufPut32(&c->out, OFFER_PROTOCOL);
    c->state = C_OPTNEG;
    c->deadline = NowUs() + (int64_t) (opt.timeout * 1e6);
    Flush(w, c);
}

/*
 * Open a new session. A transient failure leaves the connection in
 * C_RETRY, a hard one counts an error.
 */

static void
ConnStart(
    Worker *w,
    Conn *c)
{
    struct epoll_event e;
    int fd, one = 1;

    fd = socket(opt.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
	ConnError(w, c, "socket: %s", strerror(errno));
	return;
    }
    if (opt.family != AF_UNIX) {
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->fd = fd;
    c->events = EPOLLIN | EPOLLOUT;
    e.events = c->events;
    e.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
	Die("epoll_ctl: %s", strerror(errno));
    }
    c->step = S_CONNECT;
    c->msgInSession = 0;
    c->idx = 0;
    if (connect(fd, (struct sockaddr *) &opt.addr, opt.addrlen) == 0) {
	w->sessions++;
	SendOptneg(w, c);
	return;
    }
    if (errno == EINPROGRESS) {
	c->state = C_CONNECTING;
	c->deadline = NowUs() + (int64_t) (opt.timeout * 1e6);
	return;
    }
    if (errno == EAGAIN || ((errno == ECONNREFUSED || errno == ENOENT)
	    && NowUs() < tStart + (int64_t) (opt.waitUp * 1e6))) {
	/* listen queue full (unix), or the milter is not up yet */
	w->connRetries++;
	ConnClose(w, c);
	c->state = C_RETRY;
	c->retryAt = NowUs() + (errno == EAGAIN ? 1000 : 20000);
	return;
    }
    ConnError(w, c, "connect %s: %s", opt.spec, strerror(errno));
}

/*
 * Write as much of the output buffer as the socket takes.
 * Returns 0, or -1 if the connection failed.
 */

static int
Flush(
    Worker *w,
    Conn *c)
{
    while (c->out.off < c->out.len) {
	ssize_t n = send(c->fd, c->out.data + c->out.off,
		c->out.len - c->out.off, MSG_NOSIGNAL);

	if (n < 0) {
	    if (errno == EINTR) {
		continue;
	    }
	    if (errno == EAGAIN) {
		SetEvents(w, c, EPOLLIN | EPOLLOUT);
		return 0;
	    }
	    ConnError(w, c, "write: %s", strerror(errno));
	    return -1;
	}
	c->out.off += (size_t) n;
    }
    BufClear(&c->out);
    SetEvents(w, c, EPOLLIN);
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * The session script.
 *
 *----------------------------------------------------------------------
 */

static const char *const fromClean = "Alice Example <alice@example.org>";
static const char *const fromBad = "Friend <friend@public.com>";
static const char *const senderClean = "<alice@example.org>";
static const char *const senderBad = "<spammer@spamdomain.com>";

/*
 * The headers of a message, in order (NHDR of them). The From: value
 * depends on the message's kind; a value withSeq is a printf format of
 * the message's sequence number.
 */

static const struct {
    const char *name;
    const char *value;		/* NULL: the From: of the message's kind. */
    int withSeq;		/* The value is a format of the sequence. */
} messageHeaders[NHDR] = {
    {"From", NULL, 0},
    {"To", "Bob Example <rcpt1@example.org>", 0},
    {"Subject", "Benchmark message %" PRIu64, 1},
    {"Date", "Sat, 22 Nov 2025 02:50:00 +0000", 0},
    {"Message-ID", "<%" PRIu64 ".bench@example.org>", 1},
    {"X-Mailer", "TclMilter loadgen 1.0", 0},
    {"X-Priority", "3 (Normal)", 0},
    {"X-Originating-IP", "[192.0.2.10]", 0},
    {"X-Bench-Seq", "%" PRIu64, 1},
    {"X-Bench-Pad", "lorem ipsum dolor sit amet, consectetur adipiscing elit",
	    0}
};

static int
MessageKind(
    uint64_t seq)
{
    if (opt.grey) {
	return K_CLEAN;
    }
    switch (seq % 20) {
    case 2: case 8: case 14:
	return K_BADENV;
    case 5: case 11: case 17:
	return K_BADHDR;
    default:
	return K_CLEAN;
    }
}

/*
 * Emit a step that is one packet without data (DATA, EOH), unless the
 * milter asked for it not to be sent ('noFlag'). Returns 1 if a reply
 * must be awaited ('nrFlag' not asked for), else 0.
 */

static int
EmitEmpty(
    Conn *c,
    int cmd,
    uint32_t noFlag,
    uint32_t nrFlag)
{
    if (c->protocol & noFlag) {
	return 0;
    }
    PutEmpty(&c->out, cmd);
    return !(c->protocol & nrFlag);
}

/*
 * Emit the packets of the current step. Returns 1 if a reply must be
 * awaited, 0 if the step is disabled or is a no-reply step.
 */

static int
EmitStep(
    Conn *c)
{
    uint32_t p = c->protocol;
    char tmp[128], tmp2[128];

    switch (c->step) {
    case S_CONNECT: {
	static const char *const m[] = {
	    "j", "mx.bench.example",
	    "{daemon_name}", "smtpd",
	    "v", "Postfix 3.7.11",
	    "_", "client.example.net [192.0.2.10]",
	    NULL
	};
	char family = '4';
	uint16_t port = htons(54321);
	const char *host = "client.example.net", *ip = "192.0.2.10";
	char cmd = 'C';

	if (p & P_NOCONNECT) {
	    return 0;
	}
	PutMacros(c, 'C', 0, m);
	BufPut32(&c->out, (uint32_t) (1 + strlen(host) + 1 + 1 + 2
		+ strlen(ip) + 1));
	BufPut(&c->out, &cmd, 1);
	BufPut(&c->out, host, strlen(host) + 1);
	BufPut(&c->out, &family, 1);
	BufPut(&c->out, &port, 2);
	BufPut(&c->out, ip, strlen(ip) + 1);
	return !(p & P_NR_CONN);
    }
    case S_HELO: {
	static const char *const m[] = {
	    "{tls_version}", "TLSv1.3",
	    "{cipher}", "TLS_AES_256_GCM_SHA384",
	    "{cipher_bits}", "256",
	    NULL
	};

	if (p & P_NOHELO) {
	    return 0;
	}
	PutMacros(c, 'H', 1, m);
	PutStrings(&c->out, 'H', "client.example.net", NULL);
	return !(p & P_NR_HELO);
    }
    case S_MAIL: {
	const char *sender = c->kind == K_BADENV ? senderBad : senderClean;
	const char *m[] = { "i", tmp, "{mail_addr}", tmp2, NULL };
	char greySender[64];

	if (p & P_NOMAIL) {
	    return 0;
	}
	if (opt.grey) {
	    snprintf(greySender, sizeof(greySender), "<s%" PRIu64
		    "@example.com>", c->seq % (uint64_t) opt.grey);
	    sender = greySender;
	}
	snprintf(tmp, sizeof(tmp), "4B%010" PRIX64, c->seq);
	snprintf(tmp2, sizeof(tmp2), "%.*s", (int) strlen(sender) - 2,
		sender + 1);
	PutMacros(c, 'M', 2, m);
	PutStrings(&c->out, 'M', sender, "SIZE=4096", "BODY=8BITMIME",
		NULL);
	return !(p & P_NR_MAIL);
    }
    case S_RCPT: {
	const char *m[] = { "{rcpt_addr}", tmp2, NULL };

	if ((p & P_NORCPT) || c->skipRcpt) {
	    return 0;
	}
	snprintf(tmp, sizeof(tmp), "<rcpt%d@example.org>", c->idx + 1);
	snprintf(tmp2, sizeof(tmp2), "rcpt%d@example.org", c->idx + 1);
	PutMacros(c, 'R', 3, m);
	PutStrings(&c->out, 'R', tmp, NULL);
	return !(p & P_NR_RCPT);
    }
    case S_DATA:
	return EmitEmpty(c, 'T', P_NODATA, P_NR_DATA);
    case S_HDR: {
	const char *name, *value;
	const char *sp = (p & P_HDR_LEADSPC) ? " " : "";
	char v[160];

	if ((p & P_NOHDRS) || c->skipHdr) {
	    return 0;
	}
	name = messageHeaders[c->idx].name;
	value = messageHeaders[c->idx].value;
	if (value == NULL) {
	    value = c->kind == K_BADHDR ? fromBad : fromClean;
	} else if (messageHeaders[c->idx].withSeq) {
	    snprintf(tmp, sizeof(tmp), value, c->seq);
	    value = tmp;
	}
	snprintf(v, sizeof(v), "%s%s", sp, value);
	PutStrings(&c->out, 'L', name, v, NULL);
	return !(p & P_NR_HDR);
    }
    case S_EOH:
	return EmitEmpty(c, 'N', P_NOEOH, P_NR_EOH);
    case S_BODY: {
	char cmd = 'B';

	if ((p & P_NOBODY) || c->skipBody || opt.bodySize == 0) {
	    return 0;
	}
	BufPut32(&c->out, (uint32_t) opt.bodySize + 1);
	BufPut(&c->out, &cmd, 1);
	BufPut(&c->out, body, (size_t) opt.bodySize);
	return !(p & P_NR_BODY);
    }
    case S_EOM:
	PutEmpty(&c->out, 'E');
	return 1;
    case S_ABORT:
	PutEmpty(&c->out, 'A');
	return 0;
    case S_QUIT:
	PutEmpty(&c->out, 'Q');
	return 0;
    }
    return 0;
}

/*
 * Move to the step after the current one (the current one has been
 * emitted and, if it needed one, answered with CONTINUE).
 */

static void
NextStep(
    Conn *c)
{
    /*
     * The step after each one from HELO to ABORT; after HELO (and after
     * ABORT) the next message's MAIL, which Advance() turns into QUIT if
     * needed.
     */

    static const int stepAfter[] = {
	[S_HELO] = S_MAIL, [S_MAIL] = S_RCPT, [S_RCPT] = S_DATA,
	[S_DATA] = S_HDR, [S_HDR] = S_EOH, [S_EOH] = S_BODY,
	[S_BODY] = S_EOM, [S_EOM] = S_ABORT, [S_ABORT] = S_MAIL
    };
    int times = c->step == S_RCPT ? NRCPT : c->step == S_HDR ? NHDR : 1;

    switch (c->step) {
    case S_CONNECT:
	c->step = opt.idle ? S_HOLD : S_HELO;
	break;
    case S_QUIT:
    case S_HOLD:
	break;
    default:
	if (++c->idx >= times) {	/* RCPT and headers repeat. */
	    c->step = stepAfter[c->step];
	    c->idx = 0;
	}
	break;
    }
}

static void
BeginMessage(
    Conn *c)
{
    c->seq = atomic_fetch_add(&msgSeq, 1);
    c->kind = MessageKind(c->seq);
    c->sawScanned = 0;
    c->rcptRejected = 0;
    c->skipHdr = c->skipBody = c->skipRcpt = 0;
    c->idx = 0;
    c->msgInSession++;
    c->measured = 0;
    c->msgStart = NowUs();
    if (opt.count > 0 && c->msgStart >= tWarmEnd) {
	if (atomic_fetch_add(&measuredStarted, 1) < opt.count) {
	    c->measured = 1;
	} else {
	    atomic_store(&stopping, 1);
	}
    }
}

/*
 * Emit steps until one needs a reply, or the session ends.
 */

static void
Advance(
    Worker *w,
    Conn *c)
{
    for (;;) {
	if (c->step == S_MAIL) {
	    if (atomic_load(&stopping) || c->msgInSession >= opt.perSession) {
		c->step = S_QUIT;
	    } else {
		BeginMessage(c);
		if (!c->measured && opt.count > 0 && atomic_load(&stopping)
			&& c->msgStart >= tWarmEnd) {
		    c->msgInSession--;
		    c->step = S_QUIT;
		}
	    }
	}
	if (c->step == S_HOLD) {
	    c->state = C_IDLE;
	    atomic_fetch_add(&idleReady, 1);
	    Flush(w, c);
	    return;
	}
	if (EmitStep(c)) {
	    c->state = C_WAIT;
	    c->deadline = NowUs() + (int64_t) (opt.timeout * 1e6);
	    Flush(w, c);
	    return;
	}
	if (c->step == S_QUIT) {
	    if (Flush(w, c) < 0) {
		return;
	    }
	    if (opt.quickClose) {
		ConnClose(w, c);
		c->state = atomic_load(&stopping) || opt.idle ? C_DONE : C_FREE;
	    } else {
		c->state = C_QUITWAIT;
		c->deadline = NowUs() + (int64_t) (opt.timeout * 1e6);
	    }
	    return;
	}
	NextStep(c);
    }
}

/*
 * The message ended with verdict v at the current step. Check it,
 * count it, and go on with ABORT.
 */

static void
EndMessage(
    Worker *w,
    Conn *c,
    int v,
    const char *text)
{
    int64_t now = NowUs();

    if (opt.grey && c->step == S_RCPT && v == V_TEMPFAIL && text != NULL
	    && strncmp(text, "451 4.7.1 ", 10) == 0) {
	/* every recipient greylisted */
	w->rejected++;
	w->rejectAt[c->step]++;
    } else if (c->kind == K_CLEAN) {
	if (v != V_CONTINUE && v != V_ACCEPT) {
	    ConnError(w, c, "clean message got verdict %d (%s) at %s", v,
		    text ? text : "-", stepNames[c->step]);
	    return;
	}
	if (c->step != S_EOM || !c->sawScanned) {
	    ConnError(w, c, "clean message accepted at %s without X-Scanned",
		    stepNames[c->step]);
	    return;
	}
	w->accepted++;
    } else {
	if (v != V_REJECT) {
	    ConnError(w, c, "blacklisted (%s) message got verdict %d at %s",
		    c->kind == K_BADENV ? "sender" : "From", v,
		    stepNames[c->step]);
	    return;
	}
	if (text != NULL && strncmp(text, "550 5.7.1", 9) != 0) {
	    ConnError(w, c, "blacklisted message got reply \"%s\"", text);
	    return;
	}
	w->rejected++;
	w->rejectAt[c->step]++;
    }
    Record(w, c, now);
    c->step = S_ABORT;
    Advance(w, c);
}

/*
 * Handle one packet from the milter.
 */

static void
HandlePacket(
    Worker *w,
    Conn *c,
    int cmd,
    const char *data,
    size_t len)
{
    if (c->state == C_OPTNEG) {
	const char *p, *end;

	if (cmd != 'O' || len < 12) {
	    ConnError(w, c, "bad OPTNEG reply '%c' len %zu", cmd, len);
	    return;
	}
	memcpy(&c->version, data, 4);
	memcpy(&c->actions, data + 4, 4);
	memcpy(&c->protocol, data + 8, 4);
	c->version = ntohl(c->version);
	c->actions = ntohl(c->actions);
	c->protocol = ntohl(c->protocol);
	if (c->version < 2 || c->version > MILTER_VERSION) {
	    ConnError(w, c, "milter version %u", c->version);
	    return;
	}
	if (c->actions & ~OFFER_ACTIONS) {
	    ConnError(w, c, "request mask conflict: actions 0x%x",
		    c->actions);
	    return;
	}
	if (c->protocol & ~(OFFER_PROTOCOL | 0x70000000u)) {
	    ConnError(w, c, "request mask conflict: protocol 0x%x",
		    c->protocol);
	    return;
	}
	/* macro lists: uint32 stage, "names\0" */
	p = data + 12;
	end = data + len;
	while (end - p >= 5) {
	    uint32_t st;
	    const char *nul;

	    memcpy(&st, p, 4);
	    st = ntohl(st);
	    p += 4;
	    nul = memchr(p, '\0', (size_t) (end - p));
	    if (nul == NULL) {
		ConnError(w, c, "unterminated macro list in OPTNEG reply");
		return;
	    }
	    if (st < 7) {
		free(c->symlist[st]);
		c->symlist[st] = strdup(p);
	    }
	    p = nul + 1;
	}
	if (!atomic_exchange(&negotiatedSeen, 1)) {
	    negVersion = c->version;
	    negActions = c->actions;
	    negProtocol = c->protocol;
	    if (opt.verbose) {
		int st;

		fprintf(stderr, "loadgen: OPTNEG reply version %u actions 0x%x"
			" protocol 0x%x\n", c->version, c->actions,
			c->protocol);
		for (st = 0; st < 7; st++) {
		    if (c->symlist[st] != NULL) {
			fprintf(stderr, "loadgen: macro list stage %d: \"%s\"\n",
				st, c->symlist[st]);
		    }
		}
	    }
	}
	c->step = S_CONNECT;
	Advance(w, c);
	return;
    }
    if (c->state != C_WAIT) {
	ConnError(w, c, "unexpected packet '%c' (len %zu) while not waiting",
		cmd, len);
	return;
    }
    switch (cmd) {
    case 'p':
	c->deadline = NowUs() + (int64_t) (opt.timeout * 1e6);
	return;
    case 'c':
	if (c->step == S_EOM) {
	    EndMessage(w, c, V_CONTINUE, NULL);
	    return;
	}
	NextStep(c);
	Advance(w, c);
	return;
    case 's':
	if (!(c->protocol & P_SKIP)) {
	    ConnError(w, c, "SKIP without SMFIP_SKIP");
	    return;
	}
	if (c->step == S_HDR) {
	    c->skipHdr = 1;
	} else if (c->step == S_BODY) {
	    c->skipBody = 1;
	} else if (c->step == S_RCPT) {
	    c->skipRcpt = 1;
	}
	NextStep(c);
	Advance(w, c);
	return;
    case 'a': case 'r': case 't': case 'd': case 'y': {
	int v;
	const char *text = NULL;

	if (cmd == 'y') {
	    if (len == 0 || data[len - 1] != '\0') {
		ConnError(w, c, "REPLYCODE not NUL-terminated");
		return;
	    }
	    text = data;
	    v = text[0] == '5' ? V_REJECT : text[0] == '4' ? V_TEMPFAIL
		    : V_NONE;
	    if (v == V_NONE) {
		ConnError(w, c, "bad REPLYCODE \"%s\"", text);
		return;
	    }
	} else {
	    v = cmd == 'a' ? V_ACCEPT : cmd == 'r' ? V_REJECT
		    : cmd == 't' ? V_TEMPFAIL : V_DISCARD;
	}
	if (c->step == S_CONNECT || c->step == S_HELO) {
	    ConnError(w, c, "session got '%c' %s at %s", cmd,
		    text ? text : "", stepNames[c->step]);
	    return;
	}
	if (c->step == S_RCPT && (v == V_REJECT || v == V_TEMPFAIL)) {
	    /* affects this recipient only */
	    if (++c->rcptRejected < NRCPT) {
		NextStep(c);
		Advance(w, c);
		return;
	    }
	}
	EndMessage(w, c, v, text);
	return;
    }
    case 'h': case 'i': case 'm': case 'e': case '+': case '-': case '2':
    case 'b': case 'q':
	if (c->step != S_EOM) {
	    ConnError(w, c, "modification '%c' outside end of message", cmd);
	    return;
	}
	if (cmd == 'h') {
	    const char *nul = memchr(data, '\0', len);

	    if (nul == NULL || memchr(nul + 1, '\0', len - (size_t)
		    (nul + 1 - data)) == NULL) {
		ConnError(w, c, "malformed ADDHEADER");
		return;
	    }
	    if (strcasecmp(data, opt.grey ? "X-Greylist" : "X-Scanned")
		    == 0) {
		c->sawScanned = 1;
	    }
	}
	return;
    default:
	ConnError(w, c, "unexpected reply '%c' (0x%02x) to %s", cmd,
		cmd & 0xff, stepNames[c->step]);
	return;
    }
}

static void
HandleReadable(
    Worker *w,
    Conn *c)
{
    for (;;) {
	ssize_t n;
	size_t avail;

	BufReserve(&c->in, 65536);
	avail = c->in.cap - c->in.len;
	n = recv(c->fd, c->in.data + c->in.len, avail, 0);
	if (n < 0) {
	    if (errno == EINTR) {
		continue;
	    }
	    if (errno == EAGAIN) {
		break;
	    }
	    ConnError(w, c, "read: %s", strerror(errno));
	    return;
	}
	if (n == 0) {
	    if (c->state == C_QUITWAIT && c->in.len == c->in.off) {
		ConnClose(w, c);
		c->state = atomic_load(&stopping) || opt.idle ? C_DONE
			: C_FREE;
	    } else {
		ConnError(w, c, "milter closed the connection");
	    }
	    return;
	}
	c->in.len += (size_t) n;
	if (opt.quickAck && opt.family != AF_UNIX) {
	    int one = 1;

	    /* not sticky: re-arm after every read */
	    setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	while (c->in.len - c->in.off >= 5) {
	    uint32_t plen;
	    const char *p = c->in.data + c->in.off;

	    memcpy(&plen, p, 4);
	    plen = ntohl(plen);
	    if (plen == 0 || plen > MAX_REPLY) {
		ConnError(w, c, "bad packet length %u", plen);
		return;
	    }
	    if (c->in.len - c->in.off < 4 + (size_t) plen) {
		break;
	    }
	    c->in.off += 4 + plen;
	    HandlePacket(w, c, (unsigned char) p[4], p + 5, plen - 1);
	    if (c->fd < 0) {
		return;
	    }
	}
	if (c->in.off == c->in.len) {
	    BufClear(&c->in);
	}
	if ((size_t) n < avail) {
	    break;
	}
    }
}

static void
HandleEvent(
    Worker *w,
    Conn *c,
    uint32_t ev)
{
    if (c->state == C_CONNECTING) {
	int err = 0;
	socklen_t sl = sizeof(err);

	if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
	    return;
	}
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	if (err != 0) {
	    if (err == ECONNREFUSED
		    && NowUs() < tStart + (int64_t) (opt.waitUp * 1e6)) {
		w->connRetries++;
		ConnClose(w, c);
		c->state = C_RETRY;
		c->retryAt = NowUs() + 20000;
		return;
	    }
	    ConnError(w, c, "connect %s: %s", opt.spec, strerror(err));
	    return;
	}
	w->sessions++;
	SendOptneg(w, c);
	return;
    }
    if (ev & EPOLLOUT) {
	if (Flush(w, c) < 0) {
	    return;
	}
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
	HandleReadable(w, c);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Worker threads.
 *
 *----------------------------------------------------------------------
 */

static void *
WorkerMain(
    void *arg)
{
    Worker *w = arg;
    struct epoll_event evs[256];
    int i;

    for (;;) {
	int64_t now = NowUs();
	int active = 0, retrying = 0, n;

	if (opt.count == 0 && !opt.idle && now >= tEnd) {
	    atomic_store(&stopping, 1);
	}
	for (i = 0; i < w->nconns; i++) {
	    Conn *c = &w->conns[i];

	    if (atomic_load(&aborting) && c->state != C_DONE) {
		if (c->state != C_FREE && c->state != C_RETRY) {
		    ConnError(w, c, "no reply within the grace period");
		}
		ConnClose(w, c);
		c->state = C_DONE;
		continue;
	    }
	    switch (c->state) {
	    case C_FREE:
		if (atomic_load(&stopping) && !opt.idle) {
		    c->state = C_DONE;
		    break;
		}
		if (opt.idle && c->step == S_HOLD) {
		    c->state = C_DONE;
		    break;
		}
		ConnStart(w, c);
		break;
	    case C_RETRY:
		if (atomic_load(&stopping) && !opt.idle) {
		    c->state = C_DONE;
		} else if (now >= c->retryAt) {
		    c->state = C_FREE;
		    ConnStart(w, c);
		} else {
		    retrying = 1;
		}
		break;
	    case C_IDLE:
		if (opt.idle && atomic_load(&idleRelease)) {
		    c->step = S_QUIT;
		    Advance(w, c);
		}
		break;
	    case C_CONNECTING: case C_OPTNEG: case C_WAIT: case C_QUITWAIT:
		if (now > c->deadline) {
		    ConnError(w, c, "timeout after %.1f s", opt.timeout);
		}
		break;
	    }
	    if (c->state != C_DONE) {
		active++;
	    }
	}
	if (active == 0) {
	    break;
	}
	n = epoll_wait(w->epfd, evs, 256, retrying ? 1 : 10);
	for (i = 0; i < n; i++) {
	    Conn *c = evs[i].data.ptr;

	    if (c->fd >= 0) {
		HandleEvent(w, c, evs[i].events);
	    }
	}
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * Milter process accounting (/proc).
 *
 *----------------------------------------------------------------------
 */

static int
ProcCpu(
    int pid,
    double *secs)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
	return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2) {
	return -1;
    }
    *secs = (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
    return 0;
}

static long
ProcStatus(
    int pid,
    const char *key)
{
    char path[64], line[256];
    size_t kl = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
	return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
	if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
	    v = strtol(line + kl + 1, NULL, 10);
	    break;
	}
    }
    fclose(f);
    return v;
}

/*
 * The milter process's memory (VmRSS and VmHWM, in KiB) and its number of
 * threads; -1 for what cannot be read.
 */

static void
MilterMemory(
    int pid,
    long *rssPtr,
    long *hwmPtr,
    long *threadsPtr)
{
    *rssPtr = ProcStatus(pid, "VmRSS");
    *hwmPtr = ProcStatus(pid, "VmHWM");
    *threadsPtr = ProcStatus(pid, "Threads");
}

/*
 * How many connections of all the load generator's threads have ended
 * (C_DONE); all of them when it is opt.concurrency.
 */

static int
CountDone(
    const Worker *workers)
{
    int done = 0, i, j;

    for (i = 0; i < opt.threads; i++) {
	for (j = 0; j < workers[i].nconns; j++) {
	    done += workers[i].conns[j].state == C_DONE;
	}
    }
    return done;
}

static void
SleepUntil(
    int64_t t)
{
    int64_t now;

    while ((now = NowUs()) < t) {
	int64_t d = t - now;
	struct timespec ts;

	if (d > 5000) {
	    d = 5000;
	}
	ts.tv_sec = 0;
	ts.tv_nsec = (long) d * 1000;
	nanosleep(&ts, NULL);
    }
}

/*
 * CPU seconds used by this process (all threads) so far.
 */

static double
SelfCpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
	    + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
CmpU32(
    const void *a,
    const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}

static void
Usage(void)
{
    fprintf(stderr,
"usage: loadgen -s SPEC [options]\n"
"  -s SPEC   milter socket: unix:/path | inet:PORT@HOST | inet6:PORT@HOST\n"
"  -c N      concurrent milter connections (default 8)\n"
"  -d SECS   measured duration (default 5)\n"
"  -n COUNT  measure COUNT messages instead of a duration\n"
"  -w SECS   warmup before measuring (default 1)\n"
"  -m N      messages per milter connection / SMTP session (default 1)\n"
"  -T N      load generator threads (default 1)\n"
"  -p PID    milter process: report its CPU per message and RSS\n"
"  -I N      idle mode: hold N sessions after CONNECT, report RSS/session\n"
"  -H SECS   idle mode: hold time after measuring (default 0)\n"
"  -W SECS   retry connecting while the milter starts (default 0)\n"
"  -t SECS   reply timeout (default 10)\n"
"  -b BYTES  body size (default 2048)\n"
"  -Q        close right after QUIT like Postfix (default: wait for the\n"
"            milter to close)\n"
"  -A        TCP: set TCP_QUICKACK after every read (hides the 40 ms\n"
"            Nagle/delayed-ACK stall of milters that write a reply in\n"
"            several small packets; Postfix does not do this)\n"
"  -l LABEL  label copied to the output line\n"
"  -G N      greylist mode: N senders, no blacklist, 451 4.7.1 at RCPT\n"
"            allowed (counted as rejected), X-Greylist expected at EOM\n"
"  -v        verbose\n");
    exit(2);
}

int
main(
    int argc,
    char **argv)
{
    Worker *workers;
    int i, ch, per, extra, total = 0;
    double cpu0 = 0, cpu1 = 0, self0 = 0, self1 = 0, secs;
    int haveCpu = 0;
    long rss0 = -1, rss1 = -1, hwm = -1, thr = -1;
    uint64_t errors = 0, sessions = 0, messages = 0, rejected = 0;
    uint64_t accepted = 0, retries = 0, rejectAt[S_HOLD + 1];
    size_t nlat = 0, k;
    uint32_t *lat;
    struct rlimit rl;

    while ((ch = getopt(argc, argv, "s:c:d:n:w:m:T:p:I:H:W:t:b:QAl:G:vh")) != -1) {
	switch (ch) {
	case 's': opt.spec = optarg; break;
	case 'c': opt.concurrency = atoi(optarg); break;
	case 'd': opt.duration = atof(optarg); break;
	case 'n': opt.count = atol(optarg); break;
	case 'w': opt.warmup = atof(optarg); break;
	case 'm': opt.perSession = atoi(optarg); break;
	case 'T': opt.threads = atoi(optarg); break;
	case 'p': opt.pid = atoi(optarg); break;
	case 'I': opt.idle = atoi(optarg); break;
	case 'H': opt.hold = atof(optarg); break;
	case 'W': opt.waitUp = atof(optarg); break;
	case 't': opt.timeout = atof(optarg); break;
	case 'b': opt.bodySize = atoi(optarg); break;
	case 'Q': opt.quickClose = 1; break;
	case 'A': opt.quickAck = 1; break;
	case 'l': opt.label = optarg; break;
	case 'G': opt.grey = atoi(optarg); break;
	case 'v': opt.verbose = 1; break;
	default: Usage();
	}
    }
    if (opt.spec == NULL || optind != argc || opt.concurrency < 1
	    || opt.perSession < 1 || opt.threads < 1 || opt.bodySize < 0
	    || opt.bodySize > 65535 || opt.idle < 0 || opt.grey < 0) {
	Usage();
    }
    if (opt.idle) {
	opt.concurrency = opt.idle;
    }
    if (opt.threads > opt.concurrency) {
	opt.threads = opt.concurrency;
    }
    ParseSpec(opt.spec);
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0
	    && rl.rlim_cur < (rlim_t) opt.concurrency + 64) {
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t) opt.concurrency + 64) {
	    Die("open file limit %lu too low for %d connections",
		    (unsigned long) rl.rlim_cur, opt.concurrency);
	}
    }

    /* body: CRLF lines of 62 characters + CRLF */
    body = malloc((size_t) opt.bodySize + 1);
    for (i = 0; i < opt.bodySize; i++) {
	int col = i % 64;

	body[i] = col == 62 ? '\r' : col == 63 ? '\n'
		: "abcdefghijklmnopqrstuvwxyz0123456789"[(i / 64 + col) % 36];
    }
    if (opt.bodySize >= 2) {
	body[opt.bodySize - 2] = '\r';
	body[opt.bodySize - 1] = '\n';
    }

    tStart = NowUs();
    tWarmEnd = tStart + (int64_t) (opt.warmup * 1e6);
    tEnd = tWarmEnd + (int64_t) (opt.duration * 1e6);
    if (opt.idle && opt.pid) {
	rss0 = ProcStatus(opt.pid, "VmRSS");
    }

    workers = calloc((size_t) opt.threads, sizeof(Worker));
    per = opt.concurrency / opt.threads;
    extra = opt.concurrency % opt.threads;
    for (i = 0; i < opt.threads; i++) {
	Worker *w = &workers[i];
	int j;

	w->id = i;
	w->nconns = per + (i < extra);
	w->conns = calloc((size_t) w->nconns, sizeof(Conn));
	for (j = 0; j < w->nconns; j++) {
	    w->conns[j].fd = -1;
	    w->conns[j].state = C_FREE;
	}
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
	    Die("epoll_create1: %s", strerror(errno));
	}
    }
    for (i = 0; i < opt.threads; i++) {
	pthread_create(&workers[i].thread, NULL, WorkerMain, &workers[i]);
    }

    if (opt.idle) {
	/* wait until every session is established (or failed) */
	int64_t limit = NowUs() + (int64_t) ((opt.timeout + opt.waitUp)
		* 1e6);

	while (atomic_load(&idleReady) < opt.idle && NowUs() < limit) {
	    if (CountDone(workers) + atomic_load(&idleReady) >= opt.idle) {
		break;
	    }
	    SleepUntil(NowUs() + 10000);
	}
	/* let the milter settle (threads finish starting, etc.) */
	SleepUntil(NowUs() + 500000);
	if (opt.pid) {
	    MilterMemory(opt.pid, &rss1, &hwm, &thr);
	}
	SleepUntil(NowUs() + (int64_t) (opt.hold * 1e6));
	atomic_store(&idleRelease, 1);
    } else {
	SleepUntil(tWarmEnd);
	haveCpu = opt.pid && ProcCpu(opt.pid, &cpu0) == 0;
	self0 = SelfCpu();
	if (opt.count > 0) {
	    while (atomic_load(&measuredDone) < opt.count) {
		if (CountDone(workers) == opt.concurrency) {
		    break;	/* None alive. */
		}
		SleepUntil(NowUs() + 1000);
	    }
	} else {
	    SleepUntil(tEnd);
	}
	self1 = SelfCpu();
	if (opt.pid) {
	    haveCpu = haveCpu && ProcCpu(opt.pid, &cpu1) == 0;
	    MilterMemory(opt.pid, &rss1, &hwm, &thr);
	}
    }

    /* grace period for the sessions in flight, then give up */
    {
	int64_t limit = NowUs() + (int64_t) ((opt.timeout + 1) * 1e6);
	int joined = 0;

	while (!joined) {
	    if (CountDone(workers) == opt.concurrency) {
		break;		/* None alive. */
	    }
	    if (NowUs() > limit) {
		atomic_store(&aborting, 1);
		break;
	    }
	    SleepUntil(NowUs() + 5000);
	}
	for (i = 0; i < opt.threads; i++) {
	    pthread_join(workers[i].thread, NULL);
	}
    }

    memset(rejectAt, 0, sizeof(rejectAt));
    for (i = 0; i < opt.threads; i++) {
	Worker *w = &workers[i];
	int st;

	for (st = 0; st <= S_HOLD; st++) {
	    rejectAt[st] += w->rejectAt[st];
	}
	errors += w->errors;
	sessions += w->sessions;
	messages += w->messages;
	rejected += w->rejected;
	accepted += w->accepted;
	retries += w->connRetries;
	nlat += w->nlat;
    }
    lat = malloc((nlat + 1) * sizeof(uint32_t));
    k = 0;
    for (i = 0; i < opt.threads; i++) {
	memcpy(lat + k, workers[i].lat, workers[i].nlat * sizeof(uint32_t));
	k += workers[i].nlat;
    }
    qsort(lat, nlat, sizeof(uint32_t), CmpU32);

    if (opt.count > 0) {
	secs = (double) ((lastDone > tWarmEnd ? lastDone : tWarmEnd)
		- tWarmEnd) / 1e6;
    } else {
	secs = opt.duration;
    }

    printf("loadgen");
    if (opt.label) {
	printf(" label=%s", opt.label);
    }
    printf(" socket=%s", opt.spec);
    if (opt.quickAck) {
	printf(" quickack=1");
    }
    if (opt.idle) {
	total = atomic_load(&idleReady);
	printf(" idle=%d established=%d errors=%" PRIu64, opt.idle, total,
		errors);
	if (opt.pid) {
	    printf(" rss0_kib=%ld rss_kib=%ld hwm_kib=%ld threads=%ld"
		    " bytes_per_conn=%.0f", rss0, rss1, hwm, thr,
		    total > 0 ? (double) (rss1 - rss0) * 1024.0 / total : 0.0);
	}
    } else {
#define PCT(q) (nlat ? lat[(size_t) ((double) (nlat - 1) * (q))] : 0)
	printf(" conc=%d per_session=%d msgs=%zu errors=%" PRIu64
		" secs=%.3f msgs_per_s=%.1f p50_us=%u p90_us=%u p99_us=%u"
		" max_us=%u sessions=%" PRIu64 " total_msgs=%" PRIu64
		" accepted=%" PRIu64 " rejected=%" PRIu64
		" connect_retries=%" PRIu64,
		opt.concurrency, opt.perSession, nlat, errors, secs,
		secs > 0 ? (double) nlat / secs : 0.0, PCT(0.50), PCT(0.90),
		PCT(0.99), nlat ? lat[nlat - 1] : 0, sessions, messages,
		accepted, rejected, retries);
	if (rejected > 0) {
	    const char *sep = " reject_at=";
	    int st;

	    for (st = 0; st <= S_HOLD; st++) {
		if (rejectAt[st] > 0) {
		    printf("%s%s:%" PRIu64, sep, stepNames[st], rejectAt[st]);
		    sep = ",";
		}
	    }
	}
	if (nlat > 0) {
	    printf(" loadgen_cpu_us_per_msg=%.1f", (self1 - self0) * 1e6
		    / (double) nlat);
	}
	if (opt.pid) {
	    if (haveCpu && nlat > 0) {
		printf(" cpu_us_per_msg=%.1f", (cpu1 - cpu0) * 1e6
			/ (double) nlat);
	    } else {
		printf(" cpu_us_per_msg=NA");
	    }
	    printf(" rss_kib=%ld hwm_kib=%ld threads=%ld", rss1, hwm, thr);
	}
#undef PCT
    }
    if (atomic_load(&negotiatedSeen)) {
	printf(" version=%u actions=0x%x protocol=0x%x", negVersion,
		negActions, negProtocol);
    }
    printf("\n");
    fflush(stdout);
    if (nlat == 0 && !opt.idle && errors == 0) {
	fprintf(stderr, "loadgen: no message completed\n");
	return 1;
    }
    return errors == 0 && (!opt.idle || total == opt.idle) ? 0 : 1;
}
