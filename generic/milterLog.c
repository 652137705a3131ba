/*
 * milterLog.c --
 *
 *	The log of a milter: a bounded queue of lines that any thread may
 *	append to without waiting for anything but the state's mutex, rate
 *	limits for the lines an MTA (or anyone who can connect) can cause at
 *	will, and the delivery of the lines on the owner thread, to the
 *	-logcommand, to standard error or to syslog (-logdestination).
 *
 *	Standard error is written by the owner thread only, and never in a
 *	way that can block: a write of at most PIPE_BUF bytes of whole lines,
 *	and only after poll() has said that the descriptor is writable. When
 *	it is not (a full pipe nobody reads, a terminal stopped with ^S), the
 *	lines stay queued, within the bounds, and a timer tries again.
 *
 *	Syslog gets the same care: rather than syslog(3), which blocks when
 *	the syslog daemon's socket is full (journald or rsyslog falling
 *	behind) and keeps a descriptor of its own under a process-wide lock,
 *	the owner sends each line itself as a datagram in the traditional
 *	format ("<PRI>Mmm dd hh:mm:ss ident[pid]: message") to /dev/log, on
 *	a non-blocking socket. A full socket keeps the lines queued for the
 *	timer; a syslog that cannot be reached sends them to standard error
 *	instead, with a warning, until it can be reached again. (The
 *	environment variable TCLMILTER_SYSLOG_SOCKET names another socket
 *	than /dev/log; the tests use it.)
 *
 *	Threads: MilterLogQueueLocked is called from any thread with
 *	MilterState.lock held. Everything else runs on the owner thread
 *	without any of our mutexes held.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"
#include "milterList.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/*
 * The bounds of the queue (doc/tclmilter.n, LIMITS). A report line is
 * counted like any other line.
 */

#define LOG_MAX_LINES	1000		/* Lines queued at most. */
#define LOG_MAX_BYTES	(256 * 1024)	/* Message bytes queued at most. */
#define LOG_MAX_TEXT	1024		/* Longer messages are cut. */

/*
 * Rate limits: a token bucket per class of lines. Info and debug lines,
 * which only -debuglevel 2 and above produce, have none.
 */

#define LOG_ERROR_BURST		10	/* Errors: 10 at once, ... */
#define LOG_ERROR_RATE		1	/* ... then 1 a second. */
#define LOG_WARNING_BURST	100	/* Warnings, notices: 100 at once, */
#define LOG_WARNING_RATE	20	/* ... then 20 a second. */

/*
 * The suppressed lines of a class are reported at most once a second:
 * a second after the first line the report is to count.
 */

#define LOG_REPORT_US		1000000

/*
 * How long the owner waits before it tries standard error again when it
 * was not writable, in milliseconds.
 */

#define LOG_RETRY_MS		100
#define US_PER_MS		1000

/*
 * A formatted line is "NAME LEVEL: TEXT\n" (FormatLine): the bytes it
 * adds to the name, level and text, and an upper bound of what it adds to
 * the name and text alone.
 */

#define LINE_FRAME_BYTES	4	/* " ", ": " and "\n". */
#define LINE_SLACK		20	/* The frame and the longest level. */

/*
 * A byte that continues a UTF-8 sequence (10xxxxxx): a message is never
 * cut before one.
 */

#define UTF8_CONTINUES(c)	(((c) & 0xC0) == 0x80)

/*
 * A queued log line (MilterState.logHead). Allocated by whichever thread
 * logs it, freed by the owner thread.
 */

typedef struct LogLine {
    struct LogLine *nextPtr;	/* The next line, or NULL. */
    MilterLogLevel level;	/* Its level. */
    size_t len;			/* Bytes in text, without the NUL. */
    char text[1];		/* The message; allocated to size. */
} LogLine;

/*
 * The rate limit of each class (MilterState.logLimits).
 */

typedef struct LimitInfo {
    int burst;			/* Lines let through at once. */
    int rate;			/* Lines a second after that. */
    MilterLogLevel level;	/* Level of the report line. */
    const char *what;		/* The lines, in the report. */
} LimitInfo;

static const LimitInfo limitInfo[MILTER_LOG_LIMITS] = {
    {LOG_ERROR_BURST, LOG_ERROR_RATE, MILTER_LOG_ERROR, "error"},
    {LOG_WARNING_BURST, LOG_WARNING_RATE, MILTER_LOG_WARNING,
	    "warning and notice"}
};

static const char *const levelNames[] = {
    "error", "warning", "notice", "info", "debug"
};

/*
 * Syslog: the severity of each level, the facilities of -syslogfacility
 * and their codes, the socket, and the longest datagram.
 */

static const int levelSeverities[] = {
    LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG
};

const char *const milterFacilityNames[] = {
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "local0",
    "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    "lpr", "mail", "news", "syslog", "user", "uucp", NULL
};
static const int facilityCodes[] = {
    LOG_AUTH, LOG_AUTHPRIV, LOG_CRON, LOG_DAEMON, LOG_FTP, LOG_KERN,
    LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5,
    LOG_LOCAL6, LOG_LOCAL7, LOG_LPR, LOG_MAIL, LOG_NEWS, LOG_SYSLOG,
    LOG_USER, LOG_UUCP
};

#define SYSLOG_PATH	"/dev/log"
#define SYSLOG_MAX	(LOG_MAX_TEXT + 200)

static void		ArmTimer(MilterState *statePtr);
static void		LogTimerProc(ClientData clientData);

/*
 *----------------------------------------------------------------------
 *
 * Now --
 *
 *	The time on the monotonic clock.
 *
 * Results:
 *	Microseconds; never 0 (0 marks a rate limit never used).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static long long
Now(void)
{
    return (long long) MilterStatsNow() + 1;
}

/*
 *----------------------------------------------------------------------
 *
 * TextLength --
 *
 *	The number of bytes of a message that are logged: all of it, or
 *	LOG_MAX_TEXT bytes cut at the start of a UTF-8 character.
 *
 * Results:
 *	A length.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static size_t
TextLength(
    const char *msg)
{
    size_t len = strlen(msg);

    if (len > LOG_MAX_TEXT) {
	len = LOG_MAX_TEXT;
	while (len > 0 && UTF8_CONTINUES(msg[len])) {
	    len--;
	}
    }
    return len;
}

/*
 *----------------------------------------------------------------------
 *
 * LimitFor --
 *
 *	The rate limit that applies to a level.
 *
 * Results:
 *	The limit, or NULL for info and debug lines.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static MilterLogLimit *
LimitFor(
    MilterState *statePtr,
    MilterLogLevel level)
{
    switch (level) {
    case MILTER_LOG_ERROR:
	return &statePtr->logLimits[0];
    case MILTER_LOG_WARNING:
    case MILTER_LOG_NOTICE:
	return &statePtr->logLimits[1];
    default:
	return NULL;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Refill --
 *
 *	Adds the tokens a limit earned since it was last looked at. A limit
 *	never used (or reset) starts full. Called with statePtr->lock held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Updates the limit.
 *
 *----------------------------------------------------------------------
 */

static void
Refill(
    MilterState *statePtr,
    MilterLogLimit *limitPtr,
    long long now)		/* Now (Now()), microseconds. */
{
    const LimitInfo *infoPtr = &limitInfo[limitPtr - statePtr->logLimits];

    if (limitPtr->last == 0) {
	limitPtr->tokens = infoPtr->burst;
    } else if (now > limitPtr->last) {
	limitPtr->tokens += (double) (now - limitPtr->last)
		* infoPtr->rate / 1e6;
	if (limitPtr->tokens > infoPtr->burst) {
	    limitPtr->tokens = infoPtr->burst;
	}
    }
    limitPtr->last = now;
}

/*
 *----------------------------------------------------------------------
 *
 * AppendLocked --
 *
 *	Appends a line to the queue if it is within the bounds. Called
 *	with statePtr->lock held.
 *
 * Results:
 *	1 if the line was queued, 0 if the queue is full.
 *
 * Side effects:
 *	Allocates the line.
 *
 *----------------------------------------------------------------------
 */

static int
AppendLocked(
    MilterState *statePtr,
    MilterLogLevel level,
    const char *text,
    size_t len)
{
    LogLine *linePtr;

    if (statePtr->logCount >= LOG_MAX_LINES
	    || statePtr->logBytes + len > LOG_MAX_BYTES) {
	return 0;
    }
    linePtr = (LogLine *) ckalloc(sizeof(LogLine) + len);
    linePtr->level = level;
    linePtr->len = len;
    memcpy(linePtr->text, text, len);
    linePtr->text[len] = '\0';
    MILTER_FIFO_APPEND(statePtr->logTail, linePtr);
    statePtr->logCount++;
    statePtr->logBytes += len;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * PopLocked --
 *
 *	Takes the oldest line off the queue. Called with statePtr->lock
 *	held.
 *
 * Results:
 *	The line, which the caller frees, or NULL.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static LogLine *
PopLocked(
    MilterState *statePtr)
{
    LogLine *linePtr;

    MILTER_FIFO_POP(statePtr->logHead, statePtr->logTail, linePtr);
    if (linePtr != NULL) {
	statePtr->logCount--;
	statePtr->logBytes -= linePtr->len;
    }
    return linePtr;
}

/*
 *----------------------------------------------------------------------
 *
 * PushFrontLocked --
 *
 *	Puts a line taken off the queue back at its head, when it could
 *	not be delivered now. Called with statePtr->lock held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static void
PushFrontLocked(
    MilterState *statePtr,
    LogLine *linePtr)
{
    MILTER_FIFO_PUSH_FRONT(statePtr->logHead, statePtr->logTail, linePtr);
    statePtr->logCount++;
    statePtr->logBytes += linePtr->len;
}

/*
 *----------------------------------------------------------------------
 *
 * ReportDroppedLocked --
 *
 *	Queues the line that tells how many lines the full queue dropped,
 *	and starts counting again. Called with statePtr->lock held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	When the queue has no room for the report either, the count stays
 *	and is reported later.
 *
 *----------------------------------------------------------------------
 */

static void
ReportDroppedLocked(
    MilterState *statePtr)
{
    char msg[100];

    if (statePtr->logDropped == 0) {
	return;
    }
    snprintf(msg, sizeof(msg), "%lu log lines dropped (log queue full)",
	    statePtr->logDropped);
    if (AppendLocked(statePtr, MILTER_LOG_WARNING, msg, strlen(msg))) {
	statePtr->logDropped = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ReportSuppressedLocked --
 *
 *	Queues the line that tells how many lines of a class its rate
 *	limit suppressed (once a second has passed since the first of
 *	them, unless 'now' is 0), and starts counting again. Called with
 *	statePtr->lock held.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	When the queue has no room for the report either, the count
 *	stays and is reported later.
 *
 *----------------------------------------------------------------------
 */

static void
ReportSuppressedLocked(
    MilterState *statePtr,
    MilterLogLimit *limitPtr,
    long long now)		/* Now (Now()), or 0 to report at once. */
{
    const LimitInfo *infoPtr = &limitInfo[limitPtr - statePtr->logLimits];
    char msg[100];

    if (limitPtr->suppressed == 0
	    || (now != 0 && now - limitPtr->since < LOG_REPORT_US)) {
	return;
    }
    snprintf(msg, sizeof(msg), "suppressed %lu %s lines (rate limit)",
	    limitPtr->suppressed, infoPtr->what);
    if (AppendLocked(statePtr, infoPtr->level, msg, strlen(msg))) {
	limitPtr->suppressed = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * QueueReportsLocked --
 *
 *	Owner thread, statePtr->lock held: queues the reports that are due
 *	although no new line came to carry them: the dropped lines once the
 *	queue has room, the suppressed lines of a class a second after the
 *	first of them.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May queue lines.
 *
 *----------------------------------------------------------------------
 */

static void
QueueReportsLocked(
    MilterState *statePtr)
{
    long long now = Now();
    int i;

    ReportDroppedLocked(statePtr);
    for (i = 0; i < MILTER_LOG_LIMITS; i++) {
	ReportSuppressedLocked(statePtr, &statePtr->logLimits[i], now);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Writable --
 *
 *	Whether a write to standard error can be tried now without
 *	blocking.
 *
 * Results:
 *	1: writable (or broken: the write will fail at once); 0: not now;
 *	-1: there is no standard error.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
Writable(void)
{
    struct pollfd pfd;
    int n;

    pfd.fd = STDERR_FILENO;
    pfd.events = POLLOUT;
    pfd.revents = 0;
    do {
	n = poll(&pfd, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
	return 0;
    }
    if (pfd.revents & POLLNVAL) {
	return -1;
    }
    return (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
}

/*
 *----------------------------------------------------------------------
 *
 * WriteSome --
 *
 *	Writes bytes to standard error if it is writable now: at most
 *	MILTER_LOG_OUT (no more than PIPE_BUF) bytes, which a pipe that
 *	poll() calls writable takes without blocking.
 *
 * Results:
 *	The number of bytes written (all of them when standard error is
 *	broken or closed: they are lost), or 0 when it is not writable now.
 *
 * Side effects:
 *	Writes.
 *
 *----------------------------------------------------------------------
 */

static size_t
WriteSome(
    const char *bytes,
    size_t len)
{
    ssize_t n;

    switch (Writable()) {
    case 0:
	return 0;
    case -1:
	return len;
    }
    do {
	n = write(STDERR_FILENO, bytes, len);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
	return (size_t) n;
    }
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
	return 0;
    }
    return len;
}

/*
 *----------------------------------------------------------------------
 *
 * FormatLine --
 *
 *	Formats a line for standard error: "name level: message" and a
 *	newline.
 *
 * Results:
 *	The number of bytes stored, at most 'room'.
 *
 * Side effects:
 *	Fills buf.
 *
 *----------------------------------------------------------------------
 */

static size_t
FormatLine(
    char *buf,
    size_t room,
    const char *name,
    MilterLogLevel level,
    const char *text,
    size_t len)
{
    int n = snprintf(buf, room, "%s %s: %.*s\n", name, levelNames[level],
	    (int) len, text);

    return n < 0 ? 0 : ((size_t) n < room ? (size_t) n : room);
}

/*
 *----------------------------------------------------------------------
 *
 * FormattedLength --
 *
 *	The length FormatLine gives a line.
 *
 * Results:
 *	A length in bytes.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static size_t
FormattedLength(
    const char *name,
    const LogLine *linePtr)
{
    return strlen(name) + strlen(levelNames[linePtr->level]) + linePtr->len
	    + LINE_FRAME_BYTES;
}

/*
 *----------------------------------------------------------------------
 *
 * WriteOut --
 *
 *	Owner thread: writes what is left of the bytes on their way to
 *	standard error (MilterState.logOut), as far as that can be done
 *	without blocking.
 *
 * Results:
 *	1 if nothing is left, 0 if standard error is not writable.
 *
 * Side effects:
 *	Writes.
 *
 *----------------------------------------------------------------------
 */

static int
WriteOut(
    MilterState *statePtr)
{
    while (statePtr->logOutDone < statePtr->logOutLen) {
	size_t n = WriteSome(statePtr->logOut + statePtr->logOutDone,
		statePtr->logOutLen - statePtr->logOutDone);

	if (n == 0) {
	    return 0;
	}
	statePtr->logOutDone += n;
    }
    statePtr->logOutLen = statePtr->logOutDone = 0;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * FlushStderr --
 *
 *	Owner thread: writes queued lines to standard error, up to *budgetPtr
 *	of them, in batches of whole lines that fit MilterState.logOut,
 *	until standard error is not writable.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Takes lines off the queue; writes; decreases *budgetPtr.
 *
 *----------------------------------------------------------------------
 */

static void
FlushStderr(
    MilterState *statePtr,
    int *budgetPtr)
{
    char name[sizeof(statePtr->logName)];
    LogLine *batch, **tailPtr, *linePtr;	/* A FIFO of lines taken. */
    size_t used;

    while (WriteOut(statePtr) && *budgetPtr > 0) {
	/*
	 * Take the lines that fit, then format them without the lock.
	 */

	MILTER_FIFO_INIT(batch, tailPtr);
	used = 0;
	Tcl_MutexLock(&statePtr->lock);
	memcpy(name, statePtr->logName, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	while (*budgetPtr > 0 && statePtr->logHead != NULL) {
	    size_t len = FormattedLength(name, statePtr->logHead);

	    if (batch != NULL && used + len > MILTER_LOG_OUT) {
		break;
	    }
	    used += len;
	    linePtr = PopLocked(statePtr);
	    MILTER_FIFO_APPEND(tailPtr, linePtr);
	    (*budgetPtr)--;
	}
	Tcl_MutexUnlock(&statePtr->lock);
	if (batch == NULL) {
	    return;
	}
	for (;;) {
	    MILTER_FIFO_POP(batch, tailPtr, linePtr);
	    if (linePtr == NULL) {
		break;
	    }
	    statePtr->logOutLen += FormatLine(
		    statePtr->logOut + statePtr->logOutLen,
		    MILTER_LOG_OUT - statePtr->logOutLen, name,
		    linePtr->level, linePtr->text, linePtr->len);
	    ckfree(linePtr);
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FormatSyslog --
 *
 *	Formats a line as a syslog datagram: "<PRI>Mmm dd hh:mm:ss
 *	ident[pid]: message", with the local time, as syslog(3) does. White
 *	space and control characters in the ident become "_".
 *
 * Results:
 *	The number of bytes stored, at most 'room' - 1.
 *
 * Side effects:
 *	Fills buf.
 *
 *----------------------------------------------------------------------
 */

static size_t
FormatSyslog(
    char *buf,
    size_t room,
    int facility,		/* Index into milterFacilityNames. */
    const char *ident,
    MilterLogLevel level,
    const char *text,
    size_t len)
{
    char stamp[32], name[64], *p;
    time_t now = time(NULL);
    struct tm tm;
    int n;

    if (localtime_r(&now, &tm) == NULL
	    || strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0) {
	strcpy(stamp, "Jan  1 00:00:00");
    }
    snprintf(name, sizeof(name), "%s", ident);
    for (p = name; *p != '\0'; p++) {
	if ((unsigned char) *p <= ' ' || *p == 0x7f) {
	    *p = '_';
	}
    }
    n = snprintf(buf, room, "<%d>%s %s[%ld]: %.*s",
	    facilityCodes[facility] | levelSeverities[level], stamp, name,
	    (long) getpid(), (int) len, text);
    return n < 0 ? 0 : ((size_t) n < room ? (size_t) n : room - 1);
}

/*
 *----------------------------------------------------------------------
 *
 * SyslogOpen --
 *
 *	A non-blocking datagram socket connected to syslog's socket.
 *
 * Results:
 *	The descriptor, or -1 with a message.
 *
 * Side effects:
 *	Creates a socket.
 *
 *----------------------------------------------------------------------
 */

static int
SyslogOpen(
    char *err,
    size_t errLen)
{
    struct sockaddr_un sun;
    const char *path = getenv("TCLMILTER_SYSLOG_SOCKET");
    int fd;

    if (path == NULL || path[0] == '\0') {
	path = SYSLOG_PATH;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
	snprintf(err, errLen, "cannot reach syslog at \"%s\": path too long",
		path);
	return -1;
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
	snprintf(err, errLen, "cannot reach syslog: socket: %s",
		strerror(errno));
	return -1;
    }
    if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
	snprintf(err, errLen, "cannot reach syslog at \"%s\": %s", path,
		strerror(errno));
	close(fd);
	return -1;
    }
    return fd;
}

/*
 *----------------------------------------------------------------------
 *
 * SyslogSend --
 *
 *	Sends one datagram without blocking.
 *
 * Results:
 *	0 when sent; else the errno value (EAGAIN: syslog's socket is full
 *	now).
 *
 * Side effects:
 *	Sends.
 *
 *----------------------------------------------------------------------
 */

static int
SyslogSend(
    int fd,
    const char *buf,
    size_t len)
{
    ssize_t n;

    do {
	n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
	return 0;
    }
    if (errno == EWOULDBLOCK || errno == ENOBUFS) {
	return EAGAIN;
    }
    return errno;
}

/*
 *----------------------------------------------------------------------
 *
 * SyslogUnreachable --
 *
 *	Owner thread: syslog cannot be reached. The first time (until it
 *	can be reached again) a warning saying so goes ahead of the lines,
 *	which go to standard error instead.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Adds to the bytes on their way to standard error.
 *
 *----------------------------------------------------------------------
 */

static void
SyslogUnreachable(
    MilterState *statePtr,
    const char *why)
{
    char name[sizeof(statePtr->logName)], text[600];

    if (statePtr->syslogFd >= 0) {
	close(statePtr->syslogFd);
	statePtr->syslogFd = -1;
    }
    if (statePtr->syslogFailed) {
	return;
    }
    statePtr->syslogFailed = 1;
    Tcl_MutexLock(&statePtr->lock);
    memcpy(name, statePtr->logName, sizeof(name));
    Tcl_MutexUnlock(&statePtr->lock);
    name[sizeof(name) - 1] = '\0';
    snprintf(text, sizeof(text), "%s; logging to standard error", why);
    if (statePtr->logOutLen + strlen(name) + strlen(text) + LINE_SLACK
	    < MILTER_LOG_OUT) {
	statePtr->logOutLen += FormatLine(
		statePtr->logOut + statePtr->logOutLen,
		MILTER_LOG_OUT - statePtr->logOutLen, name,
		MILTER_LOG_WARNING, text, strlen(text));
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FlushSyslog --
 *
 *	Owner thread: sends queued lines to syslog, up to *budgetPtr of
 *	them, one datagram each, until syslog's socket is full. When syslog
 *	cannot be reached (no socket, nobody reading it), the lines go to
 *	standard error (FlushStderr).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Takes lines off the queue; sends; decreases *budgetPtr.
 *
 *----------------------------------------------------------------------
 */

static void
FlushSyslog(
    MilterState *statePtr,
    int *budgetPtr)
{
    char buf[SYSLOG_MAX], ident[sizeof(statePtr->logName)], err[400];
    LogLine *linePtr;
    size_t len;
    int facility, error, retried = 0;

    while (*budgetPtr > 0) {
	if (statePtr->syslogFd < 0) {
	    statePtr->syslogFd = SyslogOpen(err, sizeof(err));
	    if (statePtr->syslogFd < 0) {
		SyslogUnreachable(statePtr, err);
		FlushStderr(statePtr, budgetPtr);
		return;
	    }
	}
	Tcl_MutexLock(&statePtr->lock);
	linePtr = PopLocked(statePtr);
	snprintf(ident, sizeof(ident), "%s", statePtr->syslogIdent[0]
		? statePtr->syslogIdent : statePtr->logName);
	facility = statePtr->syslogFacility;
	Tcl_MutexUnlock(&statePtr->lock);
	if (linePtr == NULL) {
	    return;
	}
	len = FormatSyslog(buf, sizeof(buf), facility, ident, linePtr->level,
		linePtr->text, linePtr->len);
	error = SyslogSend(statePtr->syslogFd, buf, len);
	if (error == 0) {
	    ckfree(linePtr);
	    (*budgetPtr)--;
	    statePtr->syslogFailed = 0;
	    continue;
	}
	Tcl_MutexLock(&statePtr->lock);
	PushFrontLocked(statePtr, linePtr);
	Tcl_MutexUnlock(&statePtr->lock);
	if (error == EAGAIN) {
	    return;			/* The timer tries again. */
	}

	/*
	 * The syslog daemon went away (ECONNREFUSED): connect again once,
	 * to its new socket if it was restarted.
	 */

	close(statePtr->syslogFd);
	statePtr->syslogFd = -1;
	if (retried) {
	    snprintf(err, sizeof(err), "cannot send to syslog: %s",
		    strerror(error));
	    SyslogUnreachable(statePtr, err);
	    FlushStderr(statePtr, budgetPtr);
	    return;
	}
	retried = 1;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FlushDirect --
 *
 *	Owner thread: delivers up to *budgetPtr queued lines to standard
 *	error or syslog, whichever -logdestination names.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See FlushStderr and FlushSyslog.
 *
 *----------------------------------------------------------------------
 */

static void
FlushDirect(
    MilterState *statePtr,
    int *budgetPtr)
{
    if (statePtr->logSyslog) {
	FlushSyslog(statePtr, budgetPtr);
	return;
    }
    if (statePtr->syslogFd >= 0) {
	close(statePtr->syslogFd);
	statePtr->syslogFd = -1;
    }
    FlushStderr(statePtr, budgetPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * EvalLogCommand --
 *
 *	Owner thread: passes one line to the -logcommand, reporting its
 *	failure as a background error.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Evaluates the log command.
 *
 *----------------------------------------------------------------------
 */

static void
EvalLogCommand(
    MilterState *statePtr,
    const LogLine *linePtr)
{
    Tcl_Interp *interp = statePtr->interp;
    Tcl_Obj *cmdObj;
    int code;

    cmdObj = Tcl_DuplicateObj(statePtr->logCommandObj);
    Tcl_IncrRefCount(cmdObj);
    Tcl_ListObjAppendElement(NULL, cmdObj,
	    Tcl_NewStringObj(levelNames[linePtr->level], -1));
    Tcl_ListObjAppendElement(NULL, cmdObj,
	    Tcl_NewStringObj(linePtr->text, (int) linePtr->len));
    Tcl_Preserve(interp);
    code = Tcl_EvalObjEx(interp, cmdObj, TCL_EVAL_GLOBAL);
    if (code != TCL_OK) {
	Tcl_AddErrorInfo(interp, "\n    (milter -logcommand)");
	Tcl_BackgroundException(interp, code);
    }
    Tcl_ResetResult(interp);
    Tcl_Release(interp);
    Tcl_DecrRefCount(cmdObj);
}

/*
 *----------------------------------------------------------------------
 *
 * UseLogCommand --
 *
 *	Whether the lines go to the -logcommand (else standard error).
 *
 * Results:
 *	1 or 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
UseLogCommand(
    MilterState *statePtr)
{
    return statePtr->logCommandObj != NULL && statePtr->interp != NULL
	    && !Tcl_InterpDeleted(statePtr->interp);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogQueueLocked --
 *
 *	Any thread, with statePtr->lock held: logs a line. It passes the
 *	rate limit of its level or is counted as suppressed; then it is
 *	queued for the owner, or counted as dropped when the queue is full.
 *	The reports of earlier suppressed or dropped lines that are due go
 *	first. Never does any I/O while the milter lives; after teardown
 *	the line is written to standard error if that can be done without
 *	blocking.
 *
 * Results:
 *	1 when the owner should be woken to deliver (or to arrange the
 *	report of a suppression), 0 when it need not be.
 *
 * Side effects:
 *	Allocates the line.
 *
 *----------------------------------------------------------------------
 */

int
MilterLogQueueLocked(
    MilterState *statePtr,
    MilterLogLevel level,
    const char *msg)
{
    MilterLogLimit *limitPtr = LimitFor(statePtr, level);
    size_t len = TextLength(msg);

    if (statePtr->dead) {
	if (!statePtr->useLogCommand) {
	    char buf[MILTER_LOG_OUT], err[400];
	    size_t n;
	    int fd = -1;

	    if (statePtr->logSyslog) {
		fd = SyslogOpen(err, sizeof(err));
	    }
	    if (fd >= 0) {
		n = FormatSyslog(buf, sizeof(buf), statePtr->syslogFacility,
			statePtr->syslogIdent[0] ? statePtr->syslogIdent
			: statePtr->logName, level, msg, len);
		SyslogSend(fd, buf, n);
		close(fd);
	    } else {
		n = FormatLine(buf, sizeof(buf), statePtr->logName, level,
			msg, len);
		WriteSome(buf, n);
	    }
	}
	return 0;
    }
    if (limitPtr != NULL) {
	long long now = Now();

	Refill(statePtr, limitPtr, now);
	if (limitPtr->tokens < 1.0) {
	    if (limitPtr->suppressed++ > 0) {
		return 0;
	    }
	    limitPtr->since = now;
	    return 1;			/* The owner arranges the report. */
	}
	limitPtr->tokens -= 1.0;
	ReportSuppressedLocked(statePtr, limitPtr, now);
    }
    ReportDroppedLocked(statePtr);
    if (!AppendLocked(statePtr, level, msg, len)) {
	statePtr->logDropped++;
	return statePtr->logDropped == 1;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogFlush --
 *
 *	Owner thread, no mutex held: delivers the queued lines, as many as
 *	there are when it starts (later ones come with the next drain), to
 *	the -logcommand or to standard error, and arranges for a timer to
 *	try again when standard error was not writable or a report is due
 *	later. Does nothing after teardown.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Evaluates the log command or writes to standard error.
 *
 *----------------------------------------------------------------------
 */

void
MilterLogFlush(
    MilterState *statePtr)
{
    LogLine *linePtr;
    int budget;

    if (statePtr->shutDown) {
	return;
    }
    Tcl_Preserve(statePtr);
    WriteOut(statePtr);
    Tcl_MutexLock(&statePtr->lock);
    QueueReportsLocked(statePtr);
    budget = statePtr->logCount;
    Tcl_MutexUnlock(&statePtr->lock);

    while (budget > 0 && !statePtr->shutDown) {
	if (!UseLogCommand(statePtr)) {
	    FlushDirect(statePtr, &budget);
	    break;
	}
	Tcl_MutexLock(&statePtr->lock);
	linePtr = PopLocked(statePtr);
	Tcl_MutexUnlock(&statePtr->lock);
	if (linePtr == NULL) {
	    break;
	}
	budget--;
	EvalLogCommand(statePtr, linePtr);
	ckfree(linePtr);
    }
    if (!statePtr->shutDown) {
	ArmTimer(statePtr);
    }
    Tcl_Release(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * ArmTimer --
 *
 *	Owner thread: makes sure a timer runs MilterLogFlush again when
 *	lines are left (standard error was not writable), when dropped
 *	lines are to be reported, or when the report of suppressed lines is
 *	due. An earlier timer is kept.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Creates or deletes the timer.
 *
 *----------------------------------------------------------------------
 */

static void
ArmTimer(
    MilterState *statePtr)
{
    long long now = Now(), due;
    int i, delay = -1;

    Tcl_MutexLock(&statePtr->lock);
    if (statePtr->logHead != NULL) {
	delay = LOG_RETRY_MS;
    } else {
	if (statePtr->logDropped > 0) {
	    delay = 0;
	}
	for (i = 0; i < MILTER_LOG_LIMITS; i++) {
	    MilterLogLimit *limitPtr = &statePtr->logLimits[i];
	    int ms;

	    if (limitPtr->suppressed == 0) {
		continue;
	    }
	    ms = 0;
	    if (now - limitPtr->since < LOG_REPORT_US) {
		ms = (int) ((limitPtr->since + LOG_REPORT_US - now)
			/ US_PER_MS) + 1;
	    }
	    if (delay < 0 || ms < delay) {
		delay = ms;
	    }
	}
    }
    Tcl_MutexUnlock(&statePtr->lock);
    if (statePtr->logOutDone < statePtr->logOutLen
	    && (delay < 0 || delay > LOG_RETRY_MS)) {
	delay = LOG_RETRY_MS;
    }

    if (delay < 0) {
	if (statePtr->logTimer != NULL) {
	    Tcl_DeleteTimerHandler(statePtr->logTimer);
	    statePtr->logTimer = NULL;
	}
	return;
    }
    due = now + (long long) delay * US_PER_MS;
    if (statePtr->logTimer != NULL) {
	if (statePtr->logTimerDue <= due) {
	    return;
	}
	Tcl_DeleteTimerHandler(statePtr->logTimer);
    }
    statePtr->logTimerDue = due;
    statePtr->logTimer = Tcl_CreateTimerHandler(delay, LogTimerProc,
	    statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * LogTimerProc --
 *
 *	Owner thread, timer event: tries the delivery again.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	See MilterLogFlush.
 *
 *----------------------------------------------------------------------
 */

static void
LogTimerProc(
    ClientData clientData)
{
    MilterState *statePtr = clientData;

    statePtr->logTimer = NULL;
    MilterLogFlush(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLog --
 *
 *	Logs a line from the owner thread, with no mutex held: queues it
 *	like a line of the network thread, behind the lines already
 *	waiting, and delivers the queue.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May evaluate the log command or write to standard error.
 *
 *----------------------------------------------------------------------
 */

void
MilterLog(
    MilterState *statePtr,
    MilterLogLevel level,
    const char *msg)
{
    Tcl_MutexLock(&statePtr->lock);
    MilterLogQueueLocked(statePtr, level, msg);
    Tcl_MutexUnlock(&statePtr->lock);
    MilterLogFlush(statePtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogReset --
 *
 *	Owner thread: the milter starts; every rate limit starts full.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Resets the limits (the counts of suppressed lines are kept for
 *	their report).
 *
 *----------------------------------------------------------------------
 */

void
MilterLogReset(
    MilterState *statePtr)
{
    int i;

    Tcl_MutexLock(&statePtr->lock);
    for (i = 0; i < MILTER_LOG_LIMITS; i++) {
	statePtr->logLimits[i].last = 0;
    }
    Tcl_MutexUnlock(&statePtr->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterLogShutdown --
 *
 *	Owner thread, at teardown, after 'dead' is set (so nothing more is
 *	queued): no script runs any more, so the lines still queued for the
 *	-logcommand are lost; lines for standard error or syslog (and the
 *	reports of dropped and suppressed lines) are written as far as that
 *	can be done without blocking. Frees the queue, stops the timer and
 *	closes the socket to syslog.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes to standard error; frees the lines.
 *
 *----------------------------------------------------------------------
 */

void
MilterLogShutdown(
    MilterState *statePtr)
{
    int i, budget, toStderr = statePtr->logCommandObj == NULL;
    LogLine *linePtr;

    if (statePtr->logTimer != NULL) {
	Tcl_DeleteTimerHandler(statePtr->logTimer);
	statePtr->logTimer = NULL;
    }
    if (toStderr) {
	/*
	 * The lines, then the reports (whatever the rate limits say), which
	 * the first round may have made room for.
	 */

	Tcl_MutexLock(&statePtr->lock);
	budget = statePtr->logCount;
	Tcl_MutexUnlock(&statePtr->lock);
	FlushDirect(statePtr, &budget);
	Tcl_MutexLock(&statePtr->lock);
	ReportDroppedLocked(statePtr);
	for (i = 0; i < MILTER_LOG_LIMITS; i++) {
	    ReportSuppressedLocked(statePtr, &statePtr->logLimits[i], 0);
	}
	budget = statePtr->logCount;
	Tcl_MutexUnlock(&statePtr->lock);
	FlushDirect(statePtr, &budget);
	WriteOut(statePtr);
    }
    if (statePtr->syslogFd >= 0) {
	close(statePtr->syslogFd);
	statePtr->syslogFd = -1;
    }
    statePtr->logOutLen = statePtr->logOutDone = 0;
    Tcl_MutexLock(&statePtr->lock);
    while ((linePtr = PopLocked(statePtr)) != NULL) {
	ckfree(linePtr);
    }
    Tcl_MutexUnlock(&statePtr->lock);
}
