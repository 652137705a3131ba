/*
 * milterSessionInt.h --
 *
 *	The session's insides, shared by the state machine
 *	(milterSession.c), the actions a callback asks of it
 *	(milterSessionActions.c) and what milter sessions shows of it
 *	(milterSessionInfo.c). Nothing else includes this file.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef MILTER_SESSION_INT_H
#define MILTER_SESSION_INT_H

#include "milterSession.h"

/*
 * The copy of one D packet's name/value strings for one stage.
 */

typedef struct MacroStage {
    unsigned char *data;	/* name\0value\0... or NULL. */
    size_t len;
} MacroStage;

/*
 * The session. Owned by one driver at a time; see unix/milterConn.c for how
 * threads take turns.
 */

struct MilterSession {
    MilterSessionState state;
    size_t maxData;		/* Largest payload accepted. */
    unsigned wanted;		/* MILTER_EVBIT mask of events with a
				 * callback. */
    int leadingSpace;		/* Ask for SMFIP_HDR_LEADSPC. */
    MilterOptneg agreed;	/* Negotiated version, actions and
				 * protocol bits. */
    char *symlists[SMFIM_COUNT];/* Macro lists asked for in negotiation. */
    MacroStage macros[SMFIM_COUNT];

    int sessionOpen;		/* The close event is still owed. */
    int connected;		/* CONNECT was seen in this session. */
    int inMessage;		/* A transaction is open (MAIL seen and not
				 * ended). */
    int position;		/* Order of the last message command. */
    int pending;		/* A final verdict given at a no-reply
				 * stage and not yet sent, or -1. */
    int skipBody;		/* Drop further body chunks. */
    int inEom;			/* The EOM event is being decided. */
    int inNegotiate;		/* The NEGOTIATE event is being decided. */
    int peerGone;		/* Nothing more can reach the MTA: the
				 * callbacks' actions fail. */
    MilterBuf mods;		/* Pending header/envelope modifications. */
    MilterBuf body;		/* Pending replacement body packets. */
    char *reply;		/* Pending SMTP reply text, or NULL. */

    MilterBuf out;		/* Bytes to send to the MTA. */

    unsigned char cmd;		/* Command being processed. */
    int phase;			/* How far its processing has got. */
    int verdict;		/* Verdict for the last event. */
    int clearFrom;		/* RunCommand: the first macro stage that
				 * the end of the message it implies clears
				 * (SMFIM_*), or -1 when it implies none. */
    MilterEvent *cmdEvent;	/* The command's own event, copied at
				 * Feed time, or NULL. */
    MilterEvent *current;	/* Event handed out and not yet resumed. */
    MilterOptneg offered;	/* What the MTA offered in OPTNEG. */

    char problem[160];		/* Last protocol problem, for the log. */

    MilterStats *stats;		/* Where to count, or NULL. */
    MilterSessionInfo info;	/* What milter sessions shows. */
    int64_t msgStart;		/* Statistics: when the open message began
				 * (MilterStatsNow), or 0 when none is open
				 * or it is counted already. */
};

/*
 * milterSessionInfo.c: what milter sessions shows.
 */

MODULE_SCOPE void	MilterSessionCopyInfo(char *dst, size_t size,
			    const MilterStr *strPtr);
MODULE_SCOPE void	MilterSessionNoteStage(MilterSession *s,
			    unsigned char cmd);

#endif /* MILTER_SESSION_INT_H */
