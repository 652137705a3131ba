/*
 * cmilter.c --
 *
 *	The libmilter reference milter of the TclMilter benchmark. It does
 *	what bench/blacklist-bench.tcl does, with Sendmail's libmilter:
 *
 *	  envfrom  reject (550 5.7.1) when any MAIL argument is a
 *		   blacklisted address;
 *	  header   reject (550 5.7.1) a From: header naming a blacklisted
 *		   address;
 *	  eom	   add "X-Scanned: cmilter" and continue (accept).
 *
 *	With -r (the slow-lookup scenario) the envelope check is instead a
 *	blocking query to the reputation service bench/repsvc.c: envfrom
 *	writes the MAIL address ("<a@b>\n") and waits for "ok" or "listed",
 *	as a typical C milter asks a DNS blacklist or a policy daemon from
 *	its callback. libmilter runs every session in its own thread, so
 *	the wait blocks only that session. The query goes over a TCP
 *	connection that the session opens at its first MAIL and keeps
 *	(in its private data) for its later messages, closing it in the
 *	close callback: one connection per libmilter thread, as with a
 *	per-thread client handle. "-R query" opens a connection per query
 *	instead (what spamass-milter does with spamd). A failed lookup
 *	answers 451 4.3.0 and TEMPFAIL (the benchmark counts it as an
 *	error).
 *
 *	Usage: cmilter [-r PORT[@HOST] [-R session|query]] CONNSPEC
 *				     (unix:/path, inet:port@host, ...)
 *	       cmilter -V            (print the libmilter runtime version)
 *
 *	It never returns by itself; the benchmark ends it with SIGKILL
 *	(smfi_stop would take 5 s).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <libmilter/mfapi.h>

static const char *const blacklist[] = {
    "friend@public.com",
    "spammer@spamdomain.com",
    NULL
};

#define REPLY_TEXT "Sender is blacklisted"

/*
 * The reputation service (-r), set once by main before smfi_main.
 */

static struct sockaddr_in repAddr;	/* where repsvc listens */
static int repEnabled = 0;		/* 1 with -r */
static int repPerQuery = 0;		/* 1 with -R query */

/*
 * Per-session private data in the slow-lookup mode (smfi_setpriv). Only
 * the session's thread touches it.
 */

typedef struct Session {
    int fd;			/* connection to repsvc, or -1 */
} Session;

/*
 *----------------------------------------------------------------------
 *
 * IsBlacklisted --
 *
 *	Extracts the address from an envelope argument ("<a@b>") or a
 *	From: value ("Name <a@b>" or "a@b") and looks it up.
 *
 * Results:
 *	1 if the address is on the blacklist, 0 otherwise.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
IsBlacklisted(
    const char *value)
{
    const char *start, *end;
    size_t len;
    int i;

    start = strchr(value, '<');
    if (start != NULL) {
	start++;
	end = strchr(start, '>');
	if (end == NULL) {
	    end = start + strlen(start);
	}
    } else {
	start = value;
	while (*start == ' ' || *start == '\t') {
	    start++;
	}
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
	    end--;
	}
    }
    len = (size_t) (end - start);
    for (i = 0; blacklist[i] != NULL; i++) {
	if (strlen(blacklist[i]) == len
		&& strncasecmp(blacklist[i], start, len) == 0) {
	    return 1;
	}
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * RepConnect --
 *
 *	Opens a blocking TCP connection to the reputation service, with
 *	5 s send and receive timeouts so that a dead service cannot hang a
 *	session for ever.
 *
 * Results:
 *	The descriptor, or -1 (errno set).
 *
 * Side effects:
 *	A socket.
 *
 *----------------------------------------------------------------------
 */

static int
RepConnect(void)
{
    struct timeval tv = { 5, 0 };
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
	return -1;
    }
    if (connect(fd, (struct sockaddr *) &repAddr, sizeof(repAddr)) < 0) {
	int saved = errno;

	close(fd);
	errno = saved;
	return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/*
 *----------------------------------------------------------------------
 *
 * RepAsk --
 *
 *	Sends one query on a connection and reads the answer line.
 *
 * Results:
 *	1 listed, 0 not listed, -1 on an error (errno set, or 0 for EOF
 *	or a garbled answer).
 *
 * Side effects:
 *	Blocks the calling thread for the service's delay.
 *
 *----------------------------------------------------------------------
 */

static int
RepAsk(
    int fd,
    const char *address)
{
    char query[1024], answer[64];
    size_t len, got = 0;
    ssize_t n;

    len = (size_t) snprintf(query, sizeof(query), "%s\n", address);
    if (len >= sizeof(query)) {
	errno = EMSGSIZE;
	return -1;
    }
    if (send(fd, query, len, MSG_NOSIGNAL) != (ssize_t) len) {
	return -1;
    }
    while (got == 0 || answer[got - 1] != '\n') {
	if (got == sizeof(answer)) {
	    errno = 0;
	    return -1;
	}
	n = recv(fd, answer + got, sizeof(answer) - got, 0);
	if (n <= 0) {
	    if (n == 0) {
		errno = 0;
	    }
	    return -1;
	}
	got += (size_t) n;
    }
    if (got == 7 && memcmp(answer, "listed\n", 7) == 0) {
	return 1;
    }
    if (got == 3 && memcmp(answer, "ok\n", 3) == 0) {
	return 0;
    }
    errno = 0;
    return -1;
}

/*
 *----------------------------------------------------------------------
 *
 * RepLookup --
 *
 *	Asks the reputation service about an address, on the session's
 *	connection (opened on first use; a broken one is reopened once)
 *	or, with -R query, on a connection of its own.
 *
 * Results:
 *	1 listed, 0 not listed, -1 on failure (logged on stderr).
 *
 * Side effects:
 *	May allocate the session's private data and open its connection.
 *
 *----------------------------------------------------------------------
 */

static int
RepLookup(
    SMFICTX *ctx,
    const char *address)
{
    Session *sessPtr = smfi_getpriv(ctx);
    int attempt, result = -1;

    if (sessPtr == NULL) {
	sessPtr = malloc(sizeof(Session));
	if (sessPtr == NULL) {
	    return -1;
	}
	sessPtr->fd = -1;
	smfi_setpriv(ctx, sessPtr);
    }
    for (attempt = 0; attempt < 2 && result < 0; attempt++) {
	int fresh = 0;

	if (sessPtr->fd < 0) {
	    sessPtr->fd = RepConnect();
	    if (sessPtr->fd < 0) {
		break;
	    }
	    fresh = 1;
	}
	result = RepAsk(sessPtr->fd, address);
	if (result < 0 || repPerQuery) {
	    close(sessPtr->fd);
	    sessPtr->fd = -1;
	}
	if (fresh && result < 0) {
	    break;		/* a new connection failed: no retry */
	}
    }
    if (result < 0) {
	fprintf(stderr, "cmilter: lookup of %s failed: %s\n", address,
		errno ? strerror(errno) : "closed or bad answer");
    }
    return result;
}

/*
 *----------------------------------------------------------------------
 *
 * EnvfromCb --
 *
 *	The envfrom callback: reject a blacklisted sender. Without -r
 *	every MAIL argument is checked against the built-in list; with -r
 *	the address (first argument) is looked up in the reputation
 *	service.
 *
 * Results:
 *	SMFIS_REJECT, SMFIS_CONTINUE, or SMFIS_TEMPFAIL when the lookup
 *	failed.
 *
 * Side effects:
 *	Sets the reply text; may block on the lookup.
 *
 *----------------------------------------------------------------------
 */

static sfsistat
EnvfromCb(
    SMFICTX *ctx,
    char **argv)
{
    int i;

    if (repEnabled) {
	switch (RepLookup(ctx, argv[0])) {
	case 1:
	    smfi_setreply(ctx, "550", "5.7.1", REPLY_TEXT);
	    return SMFIS_REJECT;
	case 0:
	    return SMFIS_CONTINUE;
	default:
	    smfi_setreply(ctx, "451", "4.3.0", "Reputation lookup failed");
	    return SMFIS_TEMPFAIL;
	}
    }
    for (i = 0; argv[i] != NULL; i++) {
	if (IsBlacklisted(argv[i])) {
	    smfi_setreply(ctx, "550", "5.7.1", REPLY_TEXT);
	    return SMFIS_REJECT;
	}
    }
    return SMFIS_CONTINUE;
}

static sfsistat
HeaderCb(
    SMFICTX *ctx,
    char *name,
    char *value)
{
    if (strcasecmp(name, "From") == 0 && IsBlacklisted(value)) {
	smfi_setreply(ctx, "550", "5.7.1", REPLY_TEXT);
	return SMFIS_REJECT;
    }
    return SMFIS_CONTINUE;
}

static sfsistat
EomCb(
    SMFICTX *ctx)
{
    if (smfi_addheader(ctx, "X-Scanned", "cmilter") != MI_SUCCESS) {
	return SMFIS_TEMPFAIL;
    }
    return SMFIS_CONTINUE;
}

/*
 *----------------------------------------------------------------------
 *
 * CloseCb --
 *
 *	The close callback (registered only with -r): closes the session's
 *	connection to the reputation service.
 *
 * Results:
 *	SMFIS_CONTINUE.
 *
 * Side effects:
 *	Frees the private data.
 *
 *----------------------------------------------------------------------
 */

static sfsistat
CloseCb(
    SMFICTX *ctx)
{
    Session *sessPtr = smfi_getpriv(ctx);

    if (sessPtr != NULL) {
	if (sessPtr->fd >= 0) {
	    close(sessPtr->fd);
	}
	free(sessPtr);
	smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    "CBench",			/* filter name */
    SMFI_VERSION,		/* version code */
    SMFIF_ADDHDRS,		/* flags */
    NULL,			/* connection info filter */
    NULL,			/* SMTP HELO command filter */
    EnvfromCb,			/* envelope sender filter */
    NULL,			/* envelope recipient filter */
    HeaderCb,			/* header filter */
    NULL,			/* end of header */
    NULL,			/* body block filter */
    EomCb,			/* end of message */
    NULL,			/* message aborted */
    NULL,			/* connection cleanup */
    NULL,			/* unknown SMTP commands */
    NULL,			/* DATA command */
    NULL			/* negotiation */
};

/*
 *----------------------------------------------------------------------
 *
 * ParseRep --
 *
 *	Parses the -r argument, PORT or PORT@HOST (HOST numeric IPv4,
 *	default 127.0.0.1), into repAddr.
 *
 * Results:
 *	0, or -1 if it is malformed.
 *
 * Side effects:
 *	Sets repAddr.
 *
 *----------------------------------------------------------------------
 */

static int
ParseRep(
    const char *arg)
{
    const char *at = strchr(arg, '@');
    const char *host = at ? at + 1 : "127.0.0.1";
    char *end;
    long port = strtol(arg, &end, 10);

    if (end == arg || (at ? end != at : *end != '\0')
	    || port < 1 || port > 65535) {
	return -1;
    }
    memset(&repAddr, 0, sizeof(repAddr));
    repAddr.sin_family = AF_INET;
    repAddr.sin_port = htons((unsigned short) port);
    return inet_pton(AF_INET, host, &repAddr.sin_addr) == 1 ? 0 : -1;
}

int
main(
    int argc,
    char **argv)
{
    int opt, bad = 0;

    while ((opt = getopt(argc, argv, "Vr:R:")) != -1) {
	switch (opt) {
	case 'V': {
	    unsigned int major, minor, pl;

	    smfi_version(&major, &minor, &pl);
	    printf("%u.%u.%u\n", major, minor, pl);
	    return 0;
	}
	case 'r':
	    if (ParseRep(optarg) != 0) {
		fprintf(stderr, "cmilter: bad -r \"%s\"\n", optarg);
		return 2;
	    }
	    repEnabled = 1;
	    break;
	case 'R':
	    if (strcmp(optarg, "query") == 0) {
		repPerQuery = 1;
	    } else if (strcmp(optarg, "session") == 0) {
		repPerQuery = 0;
	    } else {
		fprintf(stderr, "cmilter: bad -R \"%s\"\n", optarg);
		return 2;
	    }
	    break;
	default:
	    bad = 1;
	    break;
	}
    }
    if (bad || optind != argc - 1) {
	fprintf(stderr, "usage: %s [-r PORT[@HOST] [-R session|query]]"
		" CONNSPEC | -V\n", argv[0]);
	return 2;
    }
    if (repEnabled) {
	desc.xxfi_close = CloseCb;
    }
    if (smfi_setconn(argv[optind]) != MI_SUCCESS
	    || smfi_register(desc) != MI_SUCCESS
	    || smfi_opensocket(1) != MI_SUCCESS) {
	fprintf(stderr, "cmilter: cannot set up %s\n", argv[optind]);
	return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
