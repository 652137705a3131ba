/*
 * milterSessionInfo.c --
 *
 *	What milter sessions shows of a session: the client, the stage, the
 *	open message's sender and recipient count, noted by the state
 *	machine (milterSession.c) as commands pass, and handed out on
 *	request. No I/O, no threads, no Tcl.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterSessionInt.h"

#include <stdio.h>
#include <string.h>

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionCopyInfo --
 *
 *	For milter sessions: copies a string of a packet into a fixed
 *	buffer of 'size' bytes, cut to fit and NUL-terminated.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes 'dst' (a field of s->info).
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionCopyInfo(
    char *dst,
    size_t size,
    const MilterStr *strPtr)
{
    size_t len = strPtr->len < size - 1 ? strPtr->len : size - 1;

    memcpy(dst, strPtr->ptr, len);
    dst[len] = '\0';
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionNoteStage --
 *
 *	For milter sessions: notes the stage a command puts the session
 *	in, as the name the sessions command reports.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes s->info.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionNoteStage(
    MilterSession *s,
    unsigned char cmd)		/* An SMFIC_* command, or CMD_END. */
{
    const char *stage;

    switch (cmd) {
    case SMFIC_OPTNEG:	stage = "negotiate";	break;
    case SMFIC_CONNECT:	stage = "connect";	break;
    case SMFIC_HELO:	stage = "helo";		break;
    case SMFIC_MAIL:	stage = "envfrom";	break;
    case SMFIC_RCPT:	stage = "envrcpt";	break;
    case SMFIC_DATA:	stage = "data";		break;
    case SMFIC_HEADER:	stage = "header";	break;
    case SMFIC_EOH:	stage = "eoh";		break;
    case SMFIC_BODY:	stage = "body";		break;
    case SMFIC_BODYEOB:	stage = "eom";		break;
    case SMFIC_ABORT:	stage = "abort";	break;
    case SMFIC_UNKNOWN:	stage = "unknown";	break;
    case SMFIC_QUIT:
    case SMFIC_QUIT_NC:	stage = "quit";		break;
    default:		return;	/* Macros: the stage stays. */
    }
    snprintf(s->info.stage, sizeof(s->info.stage), "%s", stage);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionDescribe --
 *
 *	What milter sessions shows of a session.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills *infoPtr.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionDescribe(
    const MilterSession *s,
    MilterSessionInfo *infoPtr)
{
    *infoPtr = s->info;
    infoPtr->inMessage = s->inMessage;
    if (!s->inMessage) {
	infoPtr->sender[0] = '\0';
	infoPtr->recipients = 0;
    }
}
