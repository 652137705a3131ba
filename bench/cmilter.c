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
 *	Usage: cmilter CONNSPEC      (unix:/path, inet:port@host, ...)
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <libmilter/mfapi.h>

static const char *const blacklist[] = {
    "friend@public.com",
    "spammer@spamdomain.com",
    NULL
};

#define REPLY_TEXT "Sender is blacklisted"

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

static sfsistat
EnvfromCb(
    SMFICTX *ctx,
    char **argv)
{
    int i;

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

int
main(
    int argc,
    char **argv)
{
    if (argc == 2 && strcmp(argv[1], "-V") == 0) {
	unsigned int major, minor, pl;

	smfi_version(&major, &minor, &pl);
	printf("%u.%u.%u\n", major, minor, pl);
	return 0;
    }
    if (argc != 2) {
	fprintf(stderr, "usage: %s CONNSPEC | -V\n", argv[0]);
	return 2;
    }
    if (smfi_setconn(argv[1]) != MI_SUCCESS
	    || smfi_register(desc) != MI_SUCCESS
	    || smfi_opensocket(1) != MI_SUCCESS) {
	fprintf(stderr, "cmilter: cannot set up %s\n", argv[1]);
	return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
