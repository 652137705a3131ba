/*
 * libmilter-peer.c --
 *
 *	A small mail filter built on Sendmail's libmilter.  It is the far
 *	side used by tests/miltertest.test to check the milter::test client
 *	against an implementation of the milter protocol that is not ours.
 *
 *	Every callback writes one line to a log file, so that the tests can
 *	see exactly what the client sent.  What the filter answers is driven
 *	by the data it receives:
 *
 *	  - any string seen by connect (hostname), helo, envfrom, envrcpt,
 *	    unknown, a body chunk or the value of an "X-Test-Verdict" header
 *	    may contain "verdict-WORD", where WORD is one of reject, tempfail,
 *	    discard, accept, skip, reply550, reply450, reply421 or mlreply;
 *	  - "X-Test-Action" headers are collected and carried out, in order,
 *	    at end of message (see DoAction below for the verbs).
 *
 *	Usage: libmilter-peer -s SPEC [-l LOGFILE] [-p PROTOCOLBITS]
 *	           [-a ACTIONS] [-S STAGE:LIST]... [-t LIFETIME] [-r READYFILE]
 *
 *	-p and -a are the protocol bits and actions the filter requests in
 *	option negotiation (numbers, hex allowed); by default it requests
 *	every offered action and no protocol bit except SMFIP_SKIP when
 *	offered.  -S asks for a macro list (smfi_setsymlist); STAGE is a
 *	number or one of connect helo envfrom envrcpt data eom eoh.
 *	-t makes the process exit after LIFETIME seconds (default 600).
 *	-r creates READYFILE once the socket listens: the socket file alone
 *	exists from bind(), before listen(), when a connect is refused.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#ifndef SMFIP_SKIP
#define SMFIP_SKIP 0x00000400L
#endif

/*
 * A growable byte buffer, used to build log lines and to collect the body.
 */

typedef struct Buf {
    char *data;			/* Bytes, always NUL-terminated. */
    size_t len;			/* Bytes used, without the NUL. */
    size_t cap;			/* Bytes allocated. */
} Buf;

/*
 * Per-connection state, stored with smfi_setpriv.  Only the libmilter
 * thread serving that connection touches it.
 */

typedef struct PeerConn {
    char **acts;		/* X-Test-Action values of this message. */
    int nActs;			/* Number of entries in acts. */
    Buf body;			/* Body of this message, as received. */
    int nChunks;		/* Body chunks received for this message. */
} PeerConn;

/*
 * Macro list requests given with -S.
 */

typedef struct SymList {
    int stage;
    char *list;
} SymList;

static FILE *logFile = NULL;
static pthread_mutex_t logLock = PTHREAD_MUTEX_INITIALIZER;
static int haveActions = 0;
static unsigned long reqActions = 0;
static unsigned long reqProtocol = 0;
static SymList symLists[16];
static int nSymLists = 0;

/*
 * Macros written to the log when defined.
 */

static const char *const logMacros[] = {
    "j", "_", "v", "{daemon_name}", "i", "{mail_addr}", "{rcpt_addr}",
    "{auth_type}", "{test}", NULL
};

/*
 *----------------------------------------------------------------------
 *
 * BufAddBytes, BufAdd, BufAddEscaped, BufFree --
 *
 *	Append to or release a Buf.  BufAddEscaped writes printable ASCII
 *	as is and everything else as \\, \r, \n, \t or \xNN.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Memory is (re)allocated; the process exits when none is left.
 *
 *----------------------------------------------------------------------
 */

static void
BufAddBytes(
    Buf *bufPtr,
    const char *bytes,
    size_t len)
{
    if (bufPtr->len + len + 1 > bufPtr->cap) {
	size_t cap = bufPtr->cap ? bufPtr->cap : 256;

	while (cap < bufPtr->len + len + 1) {
	    cap *= 2;
	}
	bufPtr->data = realloc(bufPtr->data, cap);
	if (bufPtr->data == NULL) {
	    fprintf(stderr, "libmilter-peer: out of memory\n");
	    exit(2);
	}
	bufPtr->cap = cap;
    }
    memcpy(bufPtr->data + bufPtr->len, bytes, len);
    bufPtr->len += len;
    bufPtr->data[bufPtr->len] = '\0';
}

static void
BufAdd(
    Buf *bufPtr,
    const char *str)
{
    BufAddBytes(bufPtr, str, strlen(str));
}

static void
BufAddEscaped(
    Buf *bufPtr,
    const char *bytes,
    size_t len)
{
    size_t i;
    char tmp[8];

    for (i = 0; i < len; i++) {
	unsigned char c = (unsigned char) bytes[i];

	switch (c) {
	case '\\':
	    BufAdd(bufPtr, "\\\\");
	    break;
	case '\r':
	    BufAdd(bufPtr, "\\r");
	    break;
	case '\n':
	    BufAdd(bufPtr, "\\n");
	    break;
	case '\t':
	    BufAdd(bufPtr, "\\t");
	    break;
	default:
	    if (c >= 0x20 && c < 0x7f) {
		tmp[0] = (char) c;
		BufAddBytes(bufPtr, tmp, 1);
	    } else {
		snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		BufAdd(bufPtr, tmp);
	    }
	}
    }
}

static void
BufFree(
    Buf *bufPtr)
{
    free(bufPtr->data);
    bufPtr->data = NULL;
    bufPtr->len = bufPtr->cap = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * LogLine --
 *
 *	Write a finished line to the log file and release the buffer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	One line is appended to the log and flushed.
 *
 *----------------------------------------------------------------------
 */

static void
LogLine(
    Buf *bufPtr)
{
    if (logFile != NULL) {
	pthread_mutex_lock(&logLock);
	fprintf(logFile, "%s\n", bufPtr->data ? bufPtr->data : "");
	fflush(logFile);
	pthread_mutex_unlock(&logLock);
    }
    BufFree(bufPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * LogStrings --
 *
 *	Log a callback name followed by escaped string arguments, each
 *	preceded by a space.  The list ends with NULL.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	One log line.
 *
 *----------------------------------------------------------------------
 */

static void
LogStrings(
    const char *what,
    ...)
{
    Buf line = {NULL, 0, 0};
    va_list ap;
    const char *s;

    BufAdd(&line, what);
    va_start(ap, what);
    while ((s = va_arg(ap, const char *)) != NULL) {
	BufAdd(&line, " ");
	BufAddEscaped(&line, s, strlen(s));
    }
    va_end(ap);
    LogLine(&line);
}

/*
 *----------------------------------------------------------------------
 *
 * LogMacros --
 *
 *	Log the values of the macros in logMacros that are defined, as
 *	"macros STAGE name=value ...".  Nothing is logged when none is.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	At most one log line.
 *
 *----------------------------------------------------------------------
 */

static void
LogMacros(
    SMFICTX *ctx,
    const char *stage)
{
    Buf line = {NULL, 0, 0};
    int i, found = 0;

    BufAdd(&line, "macros ");
    BufAdd(&line, stage);
    for (i = 0; logMacros[i] != NULL; i++) {
	char *value = smfi_getsymval(ctx, (char *) logMacros[i]);

	if (value != NULL) {
	    found = 1;
	    BufAdd(&line, " ");
	    BufAdd(&line, logMacros[i]);
	    BufAdd(&line, "=");
	    BufAddEscaped(&line, value, strlen(value));
	}
    }
    if (found) {
	LogLine(&line);
    } else {
	BufFree(&line);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * GetConn, ResetMessage --
 *
 *	Find (creating it if needed) the per-connection state, and forget
 *	the per-message part of it.
 *
 * Results:
 *	GetConn returns the state.
 *
 * Side effects:
 *	Memory is allocated or released.
 *
 *----------------------------------------------------------------------
 */

static PeerConn *
GetConn(
    SMFICTX *ctx)
{
    PeerConn *pc = smfi_getpriv(ctx);

    if (pc == NULL) {
	pc = calloc(1, sizeof(PeerConn));
	if (pc == NULL) {
	    fprintf(stderr, "libmilter-peer: out of memory\n");
	    exit(2);
	}
	smfi_setpriv(ctx, pc);
    }
    return pc;
}

static void
ResetMessage(
    PeerConn *pc)
{
    int i;

    for (i = 0; i < pc->nActs; i++) {
	free(pc->acts[i]);
    }
    free(pc->acts);
    pc->acts = NULL;
    pc->nActs = 0;
    BufFree(&pc->body);
    pc->nChunks = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * Verdict --
 *
 *	Look for "verdict-WORD" in a string and turn WORD into a callback
 *	result, setting a reply text first where WORD asks for one.
 *
 * Results:
 *	A sfsistat; SMFIS_CONTINUE when the string holds no verdict.
 *
 * Side effects:
 *	May set the pending SMTP reply of the connection.
 *
 *----------------------------------------------------------------------
 */

static sfsistat
Verdict(
    SMFICTX *ctx,
    const char *s)
{
    const char *v = (s != NULL) ? strstr(s, "verdict-") : NULL;

    if (v == NULL) {
	return SMFIS_CONTINUE;
    }
    v += 8;
    if (strncmp(v, "reject", 6) == 0) {
	return SMFIS_REJECT;
    } else if (strncmp(v, "tempfail", 8) == 0) {
	return SMFIS_TEMPFAIL;
    } else if (strncmp(v, "discard", 7) == 0) {
	return SMFIS_DISCARD;
    } else if (strncmp(v, "accept", 6) == 0) {
	return SMFIS_ACCEPT;
    } else if (strncmp(v, "skip", 4) == 0) {
	return SMFIS_SKIP;
    } else if (strncmp(v, "reply550", 8) == 0) {
	smfi_setreply(ctx, "550", "5.7.1", "rejected by peer");
	return SMFIS_REJECT;
    } else if (strncmp(v, "reply450", 8) == 0) {
	smfi_setreply(ctx, "450", "4.7.1", "try again later");
	return SMFIS_TEMPFAIL;
    } else if (strncmp(v, "reply421", 8) == 0) {
	smfi_setreply(ctx, "421", "4.7.0", "closing connection");
	return SMFIS_TEMPFAIL;
    } else if (strncmp(v, "mlreply", 7) == 0) {
	smfi_setmlreply(ctx, "550", "5.7.1", "first line", "second line",
		"last line", NULL);
	return SMFIS_REJECT;
    }
    return SMFIS_CONTINUE;
}

/*
 *----------------------------------------------------------------------
 *
 * Unescape, NextWord --
 *
 *	Helpers for the X-Test-Action mini language.  Unescape turns \n,
 *	\r, \t and \\ into the characters they name, in place.  NextWord
 *	cuts the next space-separated word off *pp.
 *
 * Results:
 *	Unescape returns its argument; NextWord returns the word, or ""
 *	when none is left.
 *
 * Side effects:
 *	The strings are modified in place.
 *
 *----------------------------------------------------------------------
 */

static char *
Unescape(
    char *s)
{
    char *in = s, *out = s;

    while (*in != '\0') {
	if (in[0] == '\\' && in[1] != '\0') {
	    switch (in[1]) {
	    case 'n':
		*out++ = '\n';
		break;
	    case 'r':
		*out++ = '\r';
		break;
	    case 't':
		*out++ = '\t';
		break;
	    default:
		*out++ = in[1];
		break;
	    }
	    in += 2;
	} else {
	    *out++ = *in++;
	}
    }
    *out = '\0';
    return s;
}

static char *
NextWord(
    char **pp)
{
    char *start = *pp, *end;

    while (*start == ' ') {
	start++;
    }
    end = start;
    while (*end != '\0' && *end != ' ') {
	end++;
    }
    if (*end == ' ') {
	*end++ = '\0';
    }
    *pp = end;
    return start;
}

/*
 *----------------------------------------------------------------------
 *
 * DoAction --
 *
 *	Carry out one X-Test-Action at end of message.  The verbs are:
 *
 *	  addheader NAME VALUE		smfi_addheader
 *	  insheader INDEX NAME VALUE	smfi_insheader
 *	  chgheader INDEX NAME VALUE	smfi_chgheader (VALUE "-" deletes)
 *	  addrcpt RCPT			smfi_addrcpt
 *	  addrcpt_par RCPT ARGS		smfi_addrcpt_par
 *	  delrcpt RCPT			smfi_delrcpt
 *	  chgfrom ADDR [ARGS]		smfi_chgfrom
 *	  replacebody N			smfi_replacebody with N bytes of a..z
 *	  replacetext TEXT		smfi_replacebody with TEXT
 *	  quarantine REASON		smfi_quarantine
 *	  progress [N]			smfi_progress, N times (default 1)
 *	  reply CODE XCODE TEXT		smfi_setreply
 *	  mlreply CODE XCODE L1|L2|..	smfi_setmlreply (at most 4 lines)
 *	  sleep MS			pause
 *	  verdict WORD			final result: continue, reject,
 *					tempfail, discard or accept
 *
 *	VALUE, ARGS, TEXT and REASON are the rest of the line, unescaped.
 *
 * Results:
 *	The verdict set by a "verdict" verb in *resultPtr.
 *
 * Side effects:
 *	Modification packets are sent to the MTA; a line is logged with
 *	the return value of the libmilter call.
 *
 *----------------------------------------------------------------------
 */

static void
DoAction(
    SMFICTX *ctx,
    const char *action,
    sfsistat *resultPtr)
{
    char *copy = strdup(action), *p = copy, *verb;
    int rc = MI_SUCCESS;
    char rcbuf[32];

    if (copy == NULL) {
	return;
    }
    verb = NextWord(&p);
    if (strcmp(verb, "addheader") == 0) {
	char *name = NextWord(&p);

	rc = smfi_addheader(ctx, name, Unescape(p));
    } else if (strcmp(verb, "insheader") == 0) {
	int idx = atoi(NextWord(&p));
	char *name = NextWord(&p);

	rc = smfi_insheader(ctx, idx, name, Unescape(p));
    } else if (strcmp(verb, "chgheader") == 0) {
	int idx = atoi(NextWord(&p));
	char *name = NextWord(&p);

	rc = smfi_chgheader(ctx, name, idx,
		strcmp(p, "-") == 0 ? NULL : Unescape(p));
    } else if (strcmp(verb, "addrcpt") == 0) {
	rc = smfi_addrcpt(ctx, NextWord(&p));
    } else if (strcmp(verb, "addrcpt_par") == 0) {
	char *rcpt = NextWord(&p);

	rc = smfi_addrcpt_par(ctx, rcpt, Unescape(p));
    } else if (strcmp(verb, "delrcpt") == 0) {
	rc = smfi_delrcpt(ctx, NextWord(&p));
    } else if (strcmp(verb, "chgfrom") == 0) {
	char *addr = NextWord(&p);

	rc = smfi_chgfrom(ctx, addr, *p != '\0' ? Unescape(p) : NULL);
    } else if (strcmp(verb, "replacebody") == 0) {
	int i, n = atoi(NextWord(&p));
	unsigned char *data = malloc(n > 0 ? n : 1);

	if (data != NULL) {
	    for (i = 0; i < n; i++) {
		data[i] = (unsigned char) ('a' + i % 26);
	    }
	    rc = smfi_replacebody(ctx, data, n);
	    free(data);
	}
    } else if (strcmp(verb, "replacetext") == 0) {
	Unescape(p);
	rc = smfi_replacebody(ctx, (unsigned char *) p, (int) strlen(p));
    } else if (strcmp(verb, "quarantine") == 0) {
	rc = smfi_quarantine(ctx, Unescape(p));
    } else if (strcmp(verb, "progress") == 0) {
	int i, n = atoi(NextWord(&p));

	for (i = 0; i < (n > 0 ? n : 1) && rc == MI_SUCCESS; i++) {
	    rc = smfi_progress(ctx);
	}
    } else if (strcmp(verb, "reply") == 0) {
	char *code = NextWord(&p);
	char *xcode = NextWord(&p);

	rc = smfi_setreply(ctx, code, xcode, Unescape(p));
    } else if (strcmp(verb, "mlreply") == 0) {
	char *code = NextWord(&p);
	char *xcode = NextWord(&p);
	char *lines[4] = {NULL, NULL, NULL, NULL};
	int n = 0;

	Unescape(p);
	while (n < 4 && p != NULL) {
	    lines[n++] = p;
	    p = strchr(p, '|');
	    if (p != NULL) {
		*p++ = '\0';
	    }
	}
	rc = smfi_setmlreply(ctx, code, xcode, lines[0], lines[1], lines[2],
		lines[3], NULL);
    } else if (strcmp(verb, "sleep") == 0) {
	usleep(1000 * atoi(NextWord(&p)));
    } else if (strcmp(verb, "verdict") == 0) {
	char *word = NextWord(&p);

	if (strcmp(word, "reject") == 0) {
	    *resultPtr = SMFIS_REJECT;
	} else if (strcmp(word, "tempfail") == 0) {
	    *resultPtr = SMFIS_TEMPFAIL;
	} else if (strcmp(word, "discard") == 0) {
	    *resultPtr = SMFIS_DISCARD;
	} else if (strcmp(word, "accept") == 0) {
	    *resultPtr = SMFIS_ACCEPT;
	} else {
	    *resultPtr = SMFIS_CONTINUE;
	}
    } else {
	rc = MI_FAILURE;
    }
    snprintf(rcbuf, sizeof(rcbuf), "%s", rc == MI_SUCCESS ? "ok" : "failed");
    LogStrings("action", action, rcbuf, (char *) NULL);
    free(copy);
}

/*
 *----------------------------------------------------------------------
 *
 * The xxfi_* callbacks --
 *
 *	Each logs what it received and answers as described at the top of
 *	this file.
 *
 * Results:
 *	A sfsistat.
 *
 * Side effects:
 *	Log lines; per-connection state.
 *
 *----------------------------------------------------------------------
 */

static sfsistat
PeerNegotiate(
    SMFICTX *ctx,
    unsigned long f0,
    unsigned long f1,
    unsigned long f2,
    unsigned long f3,
    unsigned long *pf0,
    unsigned long *pf1,
    unsigned long *pf2,
    unsigned long *pf3)
{
    char buf[128];
    int i;

    (void) f2;
    (void) f3;
    snprintf(buf, sizeof(buf), "negotiate actions=0x%lx protocol=0x%lx",
	    f0, f1);
    LogStrings(buf, (char *) NULL);
    for (i = 0; i < nSymLists; i++) {
	smfi_setsymlist(ctx, symLists[i].stage, symLists[i].list);
    }
    *pf0 = haveActions ? reqActions : f0;
    *pf1 = reqProtocol | (f1 & SMFIP_SKIP);
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

static sfsistat
PeerConnect(
    SMFICTX *ctx,
    char *hostname,
    _SOCK_ADDR *hostaddr)
{
    char addr[sizeof(struct sockaddr_un) + INET6_ADDRSTRLEN];
    char port[16], family[32];
    struct sockaddr *sa = (struct sockaddr *) hostaddr;

    GetConn(ctx);
    addr[0] = '\0';
    port[0] = '\0';
    if (sa == NULL) {
	strcpy(family, "family=unknown");
    } else if (sa->sa_family == AF_INET) {
	struct sockaddr_in *sin = (struct sockaddr_in *) sa;

	strcpy(family, "family=inet");
	inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
	snprintf(port, sizeof(port), "%u", ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) sa;

	strcpy(family, "family=inet6");
	inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
	snprintf(port, sizeof(port), "%u", ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
	struct sockaddr_un *sun = (struct sockaddr_un *) sa;

	strcpy(family, "family=unix");
	snprintf(addr, sizeof(addr), "%s", sun->sun_path);
	strcpy(port, "0");
    } else {
	snprintf(family, sizeof(family), "family=%d", sa->sa_family);
    }
    if (sa == NULL) {
	LogStrings("connect", hostname, family, (char *) NULL);
    } else {
	LogStrings("connect", hostname, family, port, addr, (char *) NULL);
    }
    LogMacros(ctx, "connect");
    return Verdict(ctx, hostname);
}

static sfsistat
PeerHelo(
    SMFICTX *ctx,
    char *helo)
{
    LogStrings("helo", helo, (char *) NULL);
    LogMacros(ctx, "helo");
    return Verdict(ctx, helo);
}

static sfsistat
LogArgv(
    SMFICTX *ctx,
    const char *what,
    char **argv)
{
    Buf line = {NULL, 0, 0};
    sfsistat result = SMFIS_CONTINUE;
    int i;

    BufAdd(&line, what);
    for (i = 0; argv[i] != NULL; i++) {
	BufAdd(&line, " ");
	BufAddEscaped(&line, argv[i], strlen(argv[i]));
	if (result == SMFIS_CONTINUE) {
	    result = Verdict(ctx, argv[i]);
	}
    }
    LogLine(&line);
    LogMacros(ctx, what);
    return result;
}

static sfsistat
PeerEnvfrom(
    SMFICTX *ctx,
    char **argv)
{
    ResetMessage(GetConn(ctx));
    return LogArgv(ctx, "envfrom", argv);
}

static sfsistat
PeerEnvrcpt(
    SMFICTX *ctx,
    char **argv)
{
    return LogArgv(ctx, "envrcpt", argv);
}

static sfsistat
PeerData(
    SMFICTX *ctx)
{
    LogStrings("data", (char *) NULL);
    LogMacros(ctx, "data");
    return SMFIS_CONTINUE;
}

static sfsistat
PeerUnknown(
    SMFICTX *ctx,
    const char *cmd)
{
    LogStrings("unknown", cmd, (char *) NULL);
    return Verdict(ctx, cmd);
}

static sfsistat
PeerHeader(
    SMFICTX *ctx,
    char *name,
    char *value)
{
    PeerConn *pc = GetConn(ctx);
    Buf line = {NULL, 0, 0};

    BufAdd(&line, "header ");
    BufAddEscaped(&line, name, strlen(name));
    BufAdd(&line, ":");
    BufAddEscaped(&line, value, strlen(value));
    LogLine(&line);
    if (strcasecmp(name, "X-Test-Action") == 0) {
	char **acts = realloc(pc->acts, (pc->nActs + 1) * sizeof(char *));

	if (acts != NULL) {
	    pc->acts = acts;
	    pc->acts[pc->nActs] = strdup(value);
	    if (pc->acts[pc->nActs] != NULL) {
		pc->nActs++;
	    }
	}
    } else if (strcasecmp(name, "X-Test-Verdict") == 0) {
	return Verdict(ctx, value);
    }
    return SMFIS_CONTINUE;
}

static sfsistat
PeerEoh(
    SMFICTX *ctx)
{
    LogStrings("eoh", (char *) NULL);
    LogMacros(ctx, "eoh");
    return SMFIS_CONTINUE;
}

static sfsistat
PeerBody(
    SMFICTX *ctx,
    unsigned char *bytes,
    size_t len)
{
    PeerConn *pc = GetConn(ctx);
    char buf[64], *text;
    sfsistat result;

    snprintf(buf, sizeof(buf), "body %lu", (unsigned long) len);
    LogStrings(buf, (char *) NULL);
    BufAddBytes(&pc->body, (const char *) bytes, len);
    pc->nChunks++;

    /*
     * The chunk is not a C string; look for a verdict in a copy.
     */

    text = malloc(len + 1);
    if (text == NULL) {
	return SMFIS_CONTINUE;
    }
    memcpy(text, bytes, len);
    text[len] = '\0';
    result = Verdict(ctx, text);
    free(text);
    return result;
}

static sfsistat
PeerEom(
    SMFICTX *ctx)
{
    PeerConn *pc = GetConn(ctx);
    Buf line = {NULL, 0, 0};
    sfsistat result = SMFIS_CONTINUE;
    char buf[64];
    int i;

    snprintf(buf, sizeof(buf), "eom %lu ", (unsigned long) pc->body.len);
    BufAdd(&line, buf);
    if (pc->body.len <= 2048) {
	BufAddEscaped(&line, pc->body.data ? pc->body.data : "",
		pc->body.len);
    } else {
	BufAdd(&line, "...");
    }
    LogLine(&line);
    LogMacros(ctx, "eom");
    for (i = 0; i < pc->nActs; i++) {
	DoAction(ctx, pc->acts[i], &result);
    }
    ResetMessage(pc);
    return result;
}

static sfsistat
PeerAbort(
    SMFICTX *ctx)
{
    PeerConn *pc = smfi_getpriv(ctx);

    LogStrings("abort", (char *) NULL);
    if (pc != NULL) {
	ResetMessage(pc);
    }
    return SMFIS_CONTINUE;
}

static sfsistat
PeerClose(
    SMFICTX *ctx)
{
    PeerConn *pc = smfi_getpriv(ctx);

    LogStrings("close", (char *) NULL);
    if (pc != NULL) {
	ResetMessage(pc);
	free(pc);
	smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static struct smfiDesc peerDesc = {
    "libmilter-peer",		/* filter name */
    SMFI_VERSION,		/* version code */
    SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT
	    | SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_QUARANTINE
	    | SMFIF_CHGFROM | SMFIF_SETSYMLIST,
    PeerConnect,		/* connection info filter */
    PeerHelo,			/* SMTP HELO command filter */
    PeerEnvfrom,		/* envelope sender filter */
    PeerEnvrcpt,		/* envelope recipient filter */
    PeerHeader,			/* header filter */
    PeerEoh,			/* end of header */
    PeerBody,			/* body block filter */
    PeerEom,			/* end of message */
    PeerAbort,			/* message aborted */
    PeerClose,			/* connection cleanup */
    PeerUnknown,		/* unknown SMTP commands */
    PeerData,			/* DATA command */
    PeerNegotiate		/* option negotiation */
};

/*
 *----------------------------------------------------------------------
 *
 * StageNumber --
 *
 *	Map a stage name or number to its SMFIM_* value.
 *
 * Results:
 *	The stage, or -1 when unknown.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
StageNumber(
    const char *name)
{
    static const char *const names[] = {
	"connect", "helo", "envfrom", "envrcpt", "data", "eom", "eoh", NULL
    };
    int i;

    for (i = 0; names[i] != NULL; i++) {
	if (strcmp(name, names[i]) == 0) {
	    return i;
	}
    }
    if (name[0] >= '0' && name[0] <= '9') {
	return atoi(name);
    }
    return -1;
}

int
main(
    int argc,
    char **argv)
{
    const char *spec = NULL, *readyFile = NULL;
    int opt, lifetime = 600;

    while ((opt = getopt(argc, argv, "s:l:p:a:S:t:r:")) != -1) {
	switch (opt) {
	case 's':
	    spec = optarg;
	    break;
	case 'l':
	    logFile = fopen(optarg, "a");
	    if (logFile == NULL) {
		perror(optarg);
		return 1;
	    }
	    break;
	case 'p':
	    reqProtocol = strtoul(optarg, NULL, 0);
	    break;
	case 'a':
	    haveActions = 1;
	    reqActions = strtoul(optarg, NULL, 0);
	    break;
	case 'S': {
	    char *colon = strchr(optarg, ':');

	    if (colon == NULL || nSymLists >= 16) {
		fprintf(stderr, "libmilter-peer: bad -S \"%s\"\n", optarg);
		return 1;
	    }
	    *colon = '\0';
	    symLists[nSymLists].stage = StageNumber(optarg);
	    symLists[nSymLists].list = colon + 1;
	    if (symLists[nSymLists].stage < 0) {
		fprintf(stderr, "libmilter-peer: bad stage \"%s\"\n", optarg);
		return 1;
	    }
	    nSymLists++;
	    break;
	}
	case 't':
	    lifetime = atoi(optarg);
	    break;
	case 'r':
	    readyFile = optarg;
	    break;
	default:
	    fprintf(stderr, "usage: %s -s SPEC [-l LOG] [-p PROTO] [-a ACTS]"
		    " [-S STAGE:LIST]... [-t SECONDS] [-r READYFILE]\n", argv[0]);
	    return 1;
	}
    }
    if (spec == NULL) {
	fprintf(stderr, "libmilter-peer: -s SPEC is required\n");
	return 1;
    }
    if (lifetime > 0) {
	alarm(lifetime);
    }
    if (smfi_setconn((char *) spec) == MI_FAILURE
	    || smfi_settimeout(60) == MI_FAILURE
	    || smfi_register(peerDesc) == MI_FAILURE
	    || smfi_opensocket(1) == MI_FAILURE) {
	fprintf(stderr, "libmilter-peer: cannot set up \"%s\"\n", spec);
	return 1;
    }
    if (readyFile != NULL) {
	FILE *ready = fopen(readyFile, "w");

	if (ready == NULL) {
	    perror(readyFile);
	    return 1;
	}
	fclose(ready);
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
