/*
 * milterSession.c --
 *
 *	The protocol state machine of one MTA connection. See
 *	milterSession.h for how a driver runs it. Behaviour follows
 *	libmilter's engine where the MTAs depend on it (negotiation, macro
 *	lifetimes, reply rules) and is stricter where libmilter would hang an
 *	MTA (a command that cannot be placed closes the connection instead of
 *	being dropped without a reply).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterSession.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * The largest number of strings accepted in an envelope command (address
 * plus ESMTP arguments). SMTP allows far fewer.
 */

#define MAX_ARGS	64

/*
 * Libmilter's limits on a reply: lines and characters per line.
 */

#define MAX_REPLY_LINES	32
#define MAX_REPLY_LEN	980

/*
 * Pseudo command used for the end of a connection (EOF, timeout, stop, or
 * a protocol error).
 */

#define CMD_END		0

/*
 * The copy of one D packet's name/value strings for one stage.
 */

typedef struct MacroStage {
    unsigned char *data;	/* name\0value\0... or NULL. */
    size_t len;
} MacroStage;

/*
 * The session. Owned by one driver at a time; see milterServer.c for how
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
    MilterBuf mods;		/* Pending header/envelope modifications. */
    MilterBuf body;		/* Pending replacement body packets. */
    char *reply;		/* Pending SMTP reply text, or NULL. */

    MilterBuf out;		/* Bytes to send to the MTA. */

    unsigned char cmd;		/* Command being processed. */
    int phase;			/* How far its processing has got. */
    int verdict;		/* Verdict for the last event. */
    MilterEvent *cmdEvent;	/* The command's own event, copied at
				 * Feed time, or NULL. */
    MilterEvent *current;	/* Event handed out and not yet resumed. */
    MilterOptneg offered;	/* What the MTA offered in OPTNEG. */

    char problem[160];		/* Last protocol problem, for the log. */
};

static MilterEvent *	Run(MilterSession *s);

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionNew, MilterSessionFree --
 *
 *	Create a session for a new connection, or release one.
 *
 * Results:
 *	The new session (New); none (Free).
 *
 * Side effects:
 *	Allocates or frees memory.
 *
 *----------------------------------------------------------------------
 */

MilterSession *
MilterSessionNew(
    size_t maxData)
{
    MilterSession *s = MilterAlloc(sizeof(MilterSession));

    memset(s, 0, sizeof(MilterSession));
    s->state = MILTER_ST_INIT;
    s->maxData = maxData;
    s->sessionOpen = 1;
    s->pending = -1;
    MilterBufInit(&s->mods);
    MilterBufInit(&s->body);
    MilterBufInit(&s->out);
    return s;
}

static void
ClearMacros(
    MilterSession *s,
    int fromStage)		/* Clear this stage and all later ones. */
{
    int stage;

    for (stage = fromStage; stage < SMFIM_COUNT; stage++) {
	MilterFree(s->macros[stage].data);
	s->macros[stage].data = NULL;
	s->macros[stage].len = 0;
    }
}

void
MilterSessionFree(
    MilterSession *s)
{
    int stage;

    ClearMacros(s, 0);
    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	MilterFree(s->symlists[stage]);
    }
    MilterFree(s->cmdEvent);
    MilterFree(s->current);
    MilterFree(s->reply);
    MilterBufFree(&s->mods);
    MilterBufFree(&s->body);
    MilterBufFree(&s->out);
    MilterFree(s);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionSetWanted, MilterSessionSetLeadingSpace --
 *
 *	Tell the session which events have callbacks (this decides both the
 *	SMFIP_NO* bits asked for in negotiation and which events are handed
 *	out), and whether to ask for SMFIP_HDR_LEADSPC.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the session's settings.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionSetWanted(
    MilterSession *s,
    unsigned eventMask)
{
    s->wanted = eventMask;
}

void
MilterSessionSetLeadingSpace(
    MilterSession *s,
    int on)
{
    s->leadingSpace = on;
}

/*
 *----------------------------------------------------------------------
 *
 * Simple accessors --
 *
 *	MilterSessionOutput: the buffer of bytes to send.
 *	MilterSessionClosed: whether the connection must now be closed.
 *	MilterSessionInMessage: whether a transaction is open.
 *	MilterSessionProblem: the last protocol problem (then forgotten),
 *	    or NULL.
 *	MilterSessionNegotiated: the agreed version, actions, protocol.
 *
 * Results:
 *	As above.
 *
 * Side effects:
 *	MilterSessionProblem clears the problem.
 *
 *----------------------------------------------------------------------
 */

MilterBuf *
MilterSessionOutput(
    MilterSession *s)
{
    return &s->out;
}

int
MilterSessionClosed(
    const MilterSession *s)
{
    return s->state == MILTER_ST_CLOSED;
}

int
MilterSessionInMessage(
    const MilterSession *s)
{
    return s->inMessage;
}

const char *
MilterSessionProblem(
    MilterSession *s)
{
    static __thread char copy[sizeof(s->problem)];

    if (s->problem[0] == '\0') {
	return NULL;
    }
    memcpy(copy, s->problem, sizeof(copy));
    s->problem[0] = '\0';
    return copy;
}

void
MilterSessionNegotiated(
    const MilterSession *s,
    MilterOptneg *optPtr)
{
    *optPtr = s->agreed;
}

/*
 *----------------------------------------------------------------------
 *
 * NewEvent --
 *
 *	Allocates an event with room for 'argc' strings and 'len' bytes of
 *	copied payload (plus a NUL), in one block.
 *
 * Results:
 *	The event.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
NewEvent(
    MilterEventType type,
    int argc,
    const unsigned char *data,
    size_t len)
{
    size_t head = sizeof(MilterEvent) + (size_t) argc * sizeof(MilterStr);
    MilterEvent *ev = MilterAlloc(head + len + 1);

    memset(ev, 0, sizeof(MilterEvent));
    ev->type = type;
    ev->argc = argc;
    ev->argv = (MilterStr *) (ev + 1);
    ev->data = (unsigned char *) ev + head;
    ev->len = len;
    if (len > 0) {
	memcpy(ev->data, data, len);
    }
    ev->data[len] = '\0';
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * EventFromStrings --
 *
 *	Makes an event whose arguments are strings of the packet: the
 *	payload is copied and each string is re-pointed into the copy,
 *	where it is still NUL-terminated.
 *
 * Results:
 *	The event.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
EventFromStrings(
    MilterEventType type,
    const MilterPacket *pktPtr,
    const MilterStr *strs,
    int count)
{
    MilterEvent *ev = NewEvent(type, count, pktPtr->data, pktPtr->len);
    int i;

    for (i = 0; i < count; i++) {
	ev->argv[i].ptr = (const char *) ev->data
		+ (strs[i].ptr - (const char *) pktPtr->data);
	ev->argv[i].len = strs[i].len;
    }
    return ev;
}

/*
 *----------------------------------------------------------------------
 *
 * Fail --
 *
 *	Records a protocol problem and turns the rest of the processing into
 *	the end of the connection: the abort and close events still owed
 *	are handed out, then the session is closed.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the command being processed to CMD_END.
 *
 *----------------------------------------------------------------------
 */

static void
Fail(
    MilterSession *s,
    const char *format,
    ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(s->problem, sizeof(s->problem), format, args);
    va_end(args);
    MilterFree(s->cmdEvent);
    s->cmdEvent = NULL;
    s->cmd = CMD_END;
    s->phase = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * EndMessage --
 *
 *	Forgets everything that belongs to the current transaction.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Clears transaction state and the macros of stage 'fromStage' on.
 *
 *----------------------------------------------------------------------
 */

static void
EndMessage(
    MilterSession *s,
    int fromStage)
{
    s->inMessage = 0;
    s->position = 0;
    s->pending = -1;
    s->skipBody = 0;
    s->inEom = 0;
    MilterBufReset(&s->mods);
    MilterBufReset(&s->body);
    MilterBufTrim(&s->body, 0);
    MilterFree(s->reply);
    s->reply = NULL;
    ClearMacros(s, fromStage);
}

/*
 *----------------------------------------------------------------------
 *
 * NoReplyBit, Position --
 *
 *	The SMFIP_NR_* bit of a command, and its place in a transaction
 *	(0 for commands outside one).
 *
 *----------------------------------------------------------------------
 */

static uint32_t
NoReplyBit(
    unsigned char cmd)
{
    switch (cmd) {
    case SMFIC_CONNECT:	return SMFIP_NR_CONN;
    case SMFIC_HELO:	return SMFIP_NR_HELO;
    case SMFIC_MAIL:	return SMFIP_NR_MAIL;
    case SMFIC_RCPT:	return SMFIP_NR_RCPT;
    case SMFIC_DATA:	return SMFIP_NR_DATA;
    case SMFIC_UNKNOWN:	return SMFIP_NR_UNKN;
    case SMFIC_HEADER:	return SMFIP_NR_HDR;
    case SMFIC_EOH:	return SMFIP_NR_EOH;
    case SMFIC_BODY:	return SMFIP_NR_BODY;
    default:		return 0;
    }
}

static int
Position(
    unsigned char cmd)
{
    switch (cmd) {
    case SMFIC_MAIL:	return 1;
    case SMFIC_RCPT:	return 2;
    case SMFIC_DATA:	return 3;
    case SMFIC_HEADER:	return 4;
    case SMFIC_EOH:	return 5;
    case SMFIC_BODY:	return 6;
    case SMFIC_BODYEOB:	return 7;
    default:		return 0;
    }
}

static int
IsContent(
    unsigned char cmd)
{
    int pos = Position(cmd);

    return pos >= 4;
}

/*
 *----------------------------------------------------------------------
 *
 * WriteVerdict --
 *
 *	Appends the reply packet for a verdict. A pending reply text is sent
 *	as REPLYCODE instead of REJECT or TEMPFAIL when its class agrees
 *	with the verdict (never both packets).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the output; may consume the pending reply text.
 *
 *----------------------------------------------------------------------
 */

static void
WriteVerdict(
    MilterSession *s,
    int verdict)
{
    unsigned char letter;

    if (s->reply != NULL
	    && ((verdict == MILTER_REJECT && s->reply[0] == '5')
	    || (verdict == MILTER_TEMPFAIL && s->reply[0] == '4'))) {
	MilterWirePacket(&s->out, SMFIR_REPLYCODE, s->reply,
		strlen(s->reply) + 1);
	MilterFree(s->reply);
	s->reply = NULL;
	return;
    }
    switch (verdict) {
    case MILTER_REJECT:		letter = SMFIR_REJECT;		break;
    case MILTER_DISCARD:	letter = SMFIR_DISCARD;		break;
    case MILTER_ACCEPT:		letter = SMFIR_ACCEPT;		break;
    case MILTER_TEMPFAIL:	letter = SMFIR_TEMPFAIL;	break;
    case MILTER_SKIP:		letter = SMFIR_SKIP;		break;
    default:			letter = SMFIR_CONTINUE;	break;
    }
    MilterWirePacket(&s->out, letter, NULL, 0);
}

/*
 *----------------------------------------------------------------------
 *
 * ApplyVerdict --
 *
 *	Acts on the verdict for a command other than OPTNEG and EOM: sends
 *	the reply unless the stage is a no-reply stage, and ends the message
 *	when the verdict ends it. At a no-reply stage a final verdict is
 *	kept and sent as the reply to the next command that has one; the
 *	SMTP client cannot tell, since content verdicts reach it only after
 *	the whole message.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the output and updates transaction state.
 *
 *----------------------------------------------------------------------
 */

static void
ApplyVerdict(
    MilterSession *s,
    int verdict)
{
    unsigned char cmd = s->cmd;
    int noReply = (s->agreed.protocol & NoReplyBit(cmd)) != 0;

    if (verdict == MILTER_SKIP) {
	/*
	 * Only body callbacks may skip. Without SMFIP_SKIP the MTA keeps
	 * sending the body; the chunks are then acknowledged unseen.
	 */

	s->skipBody = 1;
	if ((s->agreed.protocol & SMFIP_SKIP) == 0) {
	    verdict = MILTER_CONTINUE;
	}
    }
    if (verdict == MILTER_CONTINUE || verdict == MILTER_SKIP) {
	if (!noReply) {
	    WriteVerdict(s, verdict);
	}
	return;
    }
    if (noReply) {
	s->pending = verdict;
	return;
    }
    WriteVerdict(s, verdict);
    switch (cmd) {
    case SMFIC_CONNECT:
    case SMFIC_HELO:
    case SMFIC_UNKNOWN:
	break;
    case SMFIC_RCPT:
	if (verdict == MILTER_DISCARD || verdict == MILTER_ACCEPT) {
	    EndMessage(s, SMFIM_ENVFROM);
	}
	break;
    default:
	EndMessage(s, SMFIM_ENVFROM);
	break;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Negotiate --
 *
 *	Works out the answer to the MTA's OPTNEG: the lower of the two
 *	versions, every offered action, SMFIP_NO* for events nobody listens
 *	to, no-reply for headers and end of headers (their verdicts are
 *	sent later, see ApplyVerdict), SKIP, and leading space if asked.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets s->agreed.
 *
 *----------------------------------------------------------------------
 */

static void
Negotiate(
    MilterSession *s)
{
    static const struct {
	MilterEventType type;
	uint32_t bit;
    } offBits[] = {
	{MILTER_EV_CONNECT, SMFIP_NOCONNECT},
	{MILTER_EV_HELO, SMFIP_NOHELO},
	{MILTER_EV_ENVFROM, SMFIP_NOMAIL},
	{MILTER_EV_ENVRCPT, SMFIP_NORCPT},
	{MILTER_EV_BODY, SMFIP_NOBODY},
	{MILTER_EV_HEADER, SMFIP_NOHDRS},
	{MILTER_EV_EOH, SMFIP_NOEOH},
	{MILTER_EV_UNKNOWN, SMFIP_NOUNKNOWN},
	{MILTER_EV_DATA, SMFIP_NODATA},
    };
    uint32_t offeredActions = s->offered.actions;
    uint32_t offeredProtocol = s->offered.protocol;
    uint32_t protocol = 0;
    size_t i;

    for (i = 0; i < sizeof(offBits) / sizeof(offBits[0]); i++) {
	if (!(s->wanted & MILTER_EVBIT(offBits[i].type))) {
	    protocol |= offBits[i].bit;
	}
    }
    protocol |= SMFIP_SKIP | SMFIP_NR_HDR | SMFIP_NR_EOH;
    if (s->leadingSpace) {
	protocol |= SMFIP_HDR_LEADSPC;
    }
    s->agreed.version = s->offered.version < MILTER_VERSION_MAX
	    ? s->offered.version : MILTER_VERSION_MAX;
    s->agreed.actions = offeredActions & SMFIF_ALL;
    s->agreed.protocol = protocol & offeredProtocol;
}

/*
 *----------------------------------------------------------------------
 *
 * RunOptneg --
 *
 *	OPTNEG: check, hand out the NEGOTIATE event, answer.
 *
 * Results:
 *	An event, or NULL when the command is done.
 *
 * Side effects:
 *	Negotiates; may close the session.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
RunOptneg(
    MilterSession *s)
{
    int stage;

    switch (s->phase) {
    case 0:
	s->phase = 1;
	if (s->wanted & MILTER_EVBIT(MILTER_EV_NEGOTIATE)) {
	    MilterEvent *ev = NewEvent(MILTER_EV_NEGOTIATE, 0, NULL, 0);

	    ev->offered = s->offered;
	    ev->offered.actions &= SMFIF_ALL;
	    ev->offered.protocol &= SMFIP_ALL;
	    s->inNegotiate = 1;
	    return ev;
	}
	s->verdict = MILTER_CONTINUE;
	/* FALLTHRU */
    case 1:
	s->inNegotiate = 0;
	if (s->verdict != MILTER_CONTINUE) {
	    Fail(s, "negotiation refused by the negotiate callback");
	    return Run(s);
	}
	if (s->agreed.version < MILTER_VERSION_MAX) {
	    for (stage = 0; stage < SMFIM_COUNT; stage++) {
		MilterFree(s->symlists[stage]);
		s->symlists[stage] = NULL;
	    }
	}
	MilterWireOptnegReply(&s->out, &s->agreed, s->symlists);
	s->state = MILTER_ST_READY;
	break;
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * RunEnd --
 *
 *	The end of an SMTP session: QUIT, QUIT_NC, EOF or a failure. Hands
 *	out ABORT if a transaction is open, then CLOSE once per session.
 *
 * Results:
 *	An event, or NULL when done.
 *
 * Side effects:
 *	QUIT_NC starts a new session on the same connection; everything else
 *	closes the session.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
RunEnd(
    MilterSession *s)
{
    switch (s->phase) {
    case 0:
	s->phase = 1;
	if (s->inMessage && (s->wanted & MILTER_EVBIT(MILTER_EV_ABORT))) {
	    return NewEvent(MILTER_EV_ABORT, 0, NULL, 0);
	}
	/* FALLTHRU */
    case 1:
	s->phase = 2;
	EndMessage(s, SMFIM_ENVFROM);
	if (s->sessionOpen) {
	    s->sessionOpen = 0;
	    if (s->wanted & MILTER_EVBIT(MILTER_EV_CLOSE)) {
		return NewEvent(MILTER_EV_CLOSE, 0, NULL, 0);
	    }
	}
	/* FALLTHRU */
    case 2:
	ClearMacros(s, 0);
	MilterFree(s->reply);	/* Set by the close callback: it must not */
	s->reply = NULL;	/* answer the next session after QUIT_NC. */
	s->connected = 0;
	if (s->cmd == SMFIC_QUIT_NC) {
	    s->sessionOpen = 1;
	} else {
	    s->state = MILTER_ST_CLOSED;
	}
	break;
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * RunEom --
 *
 *	BODYEOB: an optional last body chunk, then the EOM event, then the
 *	modifications and the one final reply.
 *
 * Results:
 *	An event, or NULL when done.
 *
 * Side effects:
 *	Grows the output and ends the message.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
RunEom(
    MilterSession *s)
{
    MilterEvent *ev;

    switch (s->phase) {
    case 1:
	s->phase = 2;
	if (s->cmdEvent != NULL) {
	    ev = s->cmdEvent;
	    s->cmdEvent = NULL;
	    return ev;
	}
	s->verdict = MILTER_CONTINUE;
	/* FALLTHRU */
    case 2:
	if (s->verdict != MILTER_CONTINUE && s->verdict != MILTER_SKIP) {
	    s->pending = s->verdict;
	}
	s->phase = 3;
	if (s->pending < 0 && (s->wanted & MILTER_EVBIT(MILTER_EV_EOM))) {
	    s->inEom = 1;
	    return NewEvent(MILTER_EV_EOM, 0, NULL, 0);
	}
	s->verdict = MILTER_CONTINUE;
	/* FALLTHRU */
    case 3:
	s->inEom = 0;
	if (s->pending >= 0) {
	    s->verdict = s->pending;
	} else if (s->verdict == MILTER_CONTINUE
		|| s->verdict == MILTER_ACCEPT) {
	    MilterBufAppendBuf(&s->out, &s->mods);
	    MilterBufAppendBuf(&s->out, &s->body);
	}
	WriteVerdict(s, s->verdict);
	EndMessage(s, SMFIM_ENVFROM);
	break;
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * RunCommand --
 *
 *	Every command that gets a reply, other than OPTNEG and EOM. Phase 0
 *	places the command in the transaction (an implicit abort for MAIL or
 *	HELO inside an open one), phase 1 hands out its event, phase 2
 *	replies.
 *
 * Results:
 *	An event, or NULL when done.
 *
 * Side effects:
 *	Updates transaction state and grows the output.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
RunCommand(
    MilterSession *s)
{
    MilterEvent *ev;

    switch (s->phase) {
    case 0:
	s->phase = 1;
	if (s->inMessage
		&& (s->cmd == SMFIC_MAIL || s->cmd == SMFIC_HELO)) {
	    /*
	     * A new transaction or greeting while one is open: the MTA
	     * reset it (RSET) without telling us. The MAIL's own macros
	     * arrived just before it and are kept.
	     */

	    int keepFrom = s->cmd == SMFIC_MAIL ? SMFIM_ENVRCPT
		    : SMFIM_ENVFROM;

	    if (s->wanted & MILTER_EVBIT(MILTER_EV_ABORT)) {
		s->inMessage = 0;
		s->verdict = keepFrom;
		return NewEvent(MILTER_EV_ABORT, 0, NULL, 0);
	    }
	    s->verdict = keepFrom;
	} else {
	    s->verdict = -1;
	}
	/* FALLTHRU */
    case 1:
	if (s->verdict >= 0) {
	    EndMessage(s, s->verdict);
	}
	s->phase = 2;
	switch (s->cmd) {
	case SMFIC_CONNECT:
	    s->connected = 1;
	    ClearMacros(s, SMFIM_HELO);
	    break;
	case SMFIC_HELO:
	    ClearMacros(s, SMFIM_ENVFROM);
	    break;
	case SMFIC_MAIL:
	    s->inMessage = 1;
	    ClearMacros(s, SMFIM_ENVRCPT);
	    break;
	case SMFIC_RCPT:
	    ClearMacros(s, SMFIM_DATA);
	    break;
	}
	if (Position(s->cmd) > 0) {
	    s->position = Position(s->cmd);
	}
	if (IsContent(s->cmd) && s->pending >= 0) {
	    /*
	     * The message was decided at a no-reply stage; this is the
	     * first command that can carry that verdict.
	     */

	    MilterFree(s->cmdEvent);
	    s->cmdEvent = NULL;
	    if ((s->agreed.protocol & NoReplyBit(s->cmd)) == 0) {
		int verdict = s->pending;

		s->pending = -1;
		ApplyVerdict(s, verdict);
	    }
	    return NULL;
	}
	if (s->cmdEvent != NULL) {
	    ev = s->cmdEvent;
	    s->cmdEvent = NULL;
	    return ev;
	}
	s->verdict = MILTER_CONTINUE;
	/* FALLTHRU */
    case 2:
	ApplyVerdict(s, s->verdict);
	break;
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * Run --
 *
 *	Continues processing the current command from where it stopped.
 *
 * Results:
 *	The next event for the driver, or NULL when the command is done.
 *
 * Side effects:
 *	See the Run* procedures.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
Run(
    MilterSession *s)
{
    switch (s->cmd) {
    case SMFIC_OPTNEG:
	return RunOptneg(s);
    case SMFIC_BODYEOB:
	return RunEom(s);
    case SMFIC_QUIT:
    case SMFIC_QUIT_NC:
    case CMD_END:
	return RunEnd(s);
    case SMFIC_ABORT:
	if (s->phase == 0 && s->inMessage) {
	    s->phase = 1;
	    if (s->wanted & MILTER_EVBIT(MILTER_EV_ABORT)) {
		return NewEvent(MILTER_EV_ABORT, 0, NULL, 0);
	    }
	}
	EndMessage(s, SMFIM_ENVFROM);
	return NULL;
    default:
	return RunCommand(s);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * StoreMacros --
 *
 *	SMFIC_MACRO: keeps a copy of the name/value pairs for the stage. A
 *	stage byte libmilter does not know (Postfix sends L, B and U) is
 *	ignored, as is a malformed packet (with a note for the log).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Replaces the stage's macros.
 *
 *----------------------------------------------------------------------
 */

static void
StoreMacros(
    MilterSession *s,
    const MilterPacket *pktPtr)
{
    int stage;
    const unsigned char *nul;

    if (pktPtr->len == 0) {
	snprintf(s->problem, sizeof(s->problem),
		"macro packet without a stage ignored");
	return;
    }
    stage = MilterWireMacroStage(pktPtr->data[0]);
    if (stage < 0) {
	return;
    }
    if (pktPtr->len > 1 && pktPtr->data[pktPtr->len - 1] != '\0') {
	snprintf(s->problem, sizeof(s->problem),
		"unterminated macro packet for stage '%c' ignored",
		pktPtr->data[0]);
	return;
    }
    nul = pktPtr->data + 1;
    MilterFree(s->macros[stage].data);
    s->macros[stage].len = pktPtr->len - 1;
    s->macros[stage].data = MilterAlloc(pktPtr->len);
    memcpy(s->macros[stage].data, nul, pktPtr->len - 1);
}

/*
 *----------------------------------------------------------------------
 *
 * PrepareEvent --
 *
 *	Decodes a replying command's payload and, if its event is wanted,
 *	copies it into s->cmdEvent.
 *
 * Results:
 *	1 if the payload is well formed, else 0 (with a problem noted).
 *
 * Side effects:
 *	May set s->cmdEvent.
 *
 *----------------------------------------------------------------------
 */

static int
PrepareEvent(
    MilterSession *s,
    const MilterPacket *pktPtr)
{
    MilterStr strs[MAX_ARGS];
    MilterConnectInfo info;
    MilterEventType type;
    int count = 0, minArgs = 0, maxArgs = 0;

    switch (pktPtr->cmd) {
    case SMFIC_CONNECT:
	if (!MilterWireConnect(pktPtr, &info)) {
	    Fail(s, "malformed connect information");
	    return 0;
	}
	if (s->wanted & MILTER_EVBIT(MILTER_EV_CONNECT)) {
	    strs[0] = info.hostname;
	    strs[1] = info.address;
	    if (info.family == 'U') {
		/* No address: point at the NUL that ends the copy. */
		strs[1].ptr = (const char *) pktPtr->data + pktPtr->len;
	    }
	    s->cmdEvent = EventFromStrings(MILTER_EV_CONNECT, pktPtr, strs, 2);
	    s->cmdEvent->family = info.family;
	    s->cmdEvent->port = info.port;
	}
	return 1;
    case SMFIC_BODY:
    case SMFIC_BODYEOB:
	if ((s->wanted & MILTER_EVBIT(MILTER_EV_BODY)) && !s->skipBody
		&& s->pending < 0
		&& (pktPtr->cmd == SMFIC_BODY || pktPtr->len > 0)) {
	    s->cmdEvent = NewEvent(MILTER_EV_BODY, 0, pktPtr->data,
		    pktPtr->len);
	}
	return 1;
    case SMFIC_HELO:	type = MILTER_EV_HELO; minArgs = maxArgs = 1; break;
    case SMFIC_UNKNOWN:	type = MILTER_EV_UNKNOWN; minArgs = maxArgs = 1; break;
    case SMFIC_HEADER:	type = MILTER_EV_HEADER; minArgs = maxArgs = 2; break;
    case SMFIC_MAIL:	type = MILTER_EV_ENVFROM; minArgs = 1; maxArgs = MAX_ARGS; break;
    case SMFIC_RCPT:	type = MILTER_EV_ENVRCPT; minArgs = 1; maxArgs = MAX_ARGS; break;
    case SMFIC_DATA:	type = MILTER_EV_DATA; break;
    case SMFIC_EOH:	type = MILTER_EV_EOH; break;
    default:
	return 1;
    }
    if (maxArgs > 0) {
	if (!MilterWireStrings(pktPtr, 0, strs, maxArgs, &count)
		|| count < minArgs) {
	    Fail(s, "malformed payload for command '%c'", pktPtr->cmd);
	    return 0;
	}
    }
    if ((s->wanted & MILTER_EVBIT(type))
	    && !(IsContent(pktPtr->cmd) && s->pending >= 0)) {
	s->cmdEvent = EventFromStrings(type, pktPtr, strs, count);
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionFeed --
 *
 *	Starts processing one packet from the MTA.
 *
 * Results:
 *	The first event to decide, or NULL when the packet needs no callback
 *	(its reply, if any, is then in the output).
 *
 * Side effects:
 *	Any: see the Run* procedures.
 *
 *----------------------------------------------------------------------
 */

MilterEvent *
MilterSessionFeed(
    MilterSession *s,
    const MilterPacket *pktPtr)
{
    int opened;

    MilterFree(s->current);
    s->current = NULL;
    if (s->state == MILTER_ST_CLOSED) {
	return NULL;
    }
    s->cmd = pktPtr->cmd;
    s->phase = 0;
    s->verdict = MILTER_CONTINUE;

    if (s->state == MILTER_ST_INIT) {
	if (pktPtr->cmd != SMFIC_OPTNEG) {
	    Fail(s, "command 0x%02x before option negotiation", pktPtr->cmd);
	} else if (!MilterWireOptneg(pktPtr, &s->offered)) {
	    Fail(s, "short option negotiation packet");
	} else if (s->offered.version < MILTER_VERSION_MIN) {
	    Fail(s, "MTA offers protocol version %d, below 2",
		    (int) s->offered.version);
	} else {
	    /*
	     * Zero means "version 1 defaults", as in libmilter.
	     */

	    if (s->offered.actions == 0) {
		s->offered.actions = 0x0F;
	    }
	    if (s->offered.protocol == 0) {
		s->offered.protocol = 0x3F;
	    }
	    Negotiate(s);
	}
	return s->current = Run(s);
    }

    switch (pktPtr->cmd) {
    case SMFIC_MACRO:
	StoreMacros(s, pktPtr);
	return NULL;
    case SMFIC_OPTNEG:
	Fail(s, "repeated option negotiation");
	break;
    case SMFIC_ABORT:
    case SMFIC_QUIT:
    case SMFIC_QUIT_NC:
	break;
    case SMFIC_CONNECT:
	if (s->connected) {
	    Fail(s, "second connect in one session");
	    break;
	}
	PrepareEvent(s, pktPtr);
	break;
    case SMFIC_HELO:
    case SMFIC_MAIL:
    case SMFIC_UNKNOWN:
	PrepareEvent(s, pktPtr);
	break;
    case SMFIC_RCPT:
    case SMFIC_DATA:
    case SMFIC_HEADER:
    case SMFIC_EOH:
    case SMFIC_BODY:
    case SMFIC_BODYEOB:
	opened = 0;
	if (!s->inMessage && (s->agreed.protocol & SMFIP_NOMAIL)) {
	    /*
	     * MAIL was switched off in negotiation, so the first command
	     * of a message is what opens it.
	     */

	    s->inMessage = 1;
	    s->position = 0;
	    opened = 1;
	}
	if (!s->inMessage) {
	    Fail(s, "command '%c' outside a transaction", pktPtr->cmd);
	} else if (Position(pktPtr->cmd) < s->position) {
	    Fail(s, "command '%c' out of order", pktPtr->cmd);
	} else if (!PrepareEvent(s, pktPtr)) {
	    if (opened) {
		s->inMessage = 0;	/* A malformed command opened nothing
					 * there is to abort. */
	    }
	} else if (pktPtr->cmd == SMFIC_BODYEOB) {
	    s->phase = 1;
	}
	break;
    default:
	Fail(s, "unknown command 0x%02x", pktPtr->cmd);
	break;
    }
    return s->current = Run(s);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionResume --
 *
 *	Gives the verdict for the event last handed out and continues.
 *
 * Results:
 *	The next event, or NULL when the packet is done.
 *
 * Side effects:
 *	Frees the previous event.
 *
 *----------------------------------------------------------------------
 */

MilterEvent *
MilterSessionResume(
    MilterSession *s,
    int verdict)
{
    MilterFree(s->current);
    s->current = NULL;
    if (s->phase == 1 && (s->cmd == SMFIC_MAIL || s->cmd == SMFIC_HELO)) {
	/*
	 * The verdict of an implicit abort is ignored; phase 1 still needs
	 * the stage to clear, stored in s->verdict by phase 0.
	 */
    } else {
	s->verdict = verdict;
    }
    return s->current = Run(s);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionEnd --
 *
 *	The connection is over (EOF, error, timeout, shutdown): hand out the
 *	abort and close events still owed. Safe to call more than once and
 *	after QUIT.
 *
 * Results:
 *	The first event, or NULL.
 *
 * Side effects:
 *	Closes the session.
 *
 *----------------------------------------------------------------------
 */

MilterEvent *
MilterSessionEnd(
    MilterSession *s)
{
    MilterFree(s->current);
    s->current = NULL;
    MilterFree(s->cmdEvent);
    s->cmdEvent = NULL;
    s->cmd = CMD_END;
    s->phase = 0;
    return s->current = Run(s);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionMacro --
 *
 *	Looks a macro up, newest stage first. "x" and "{x}" are the same
 *	name.
 *
 * Results:
 *	1 and the value if found, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static void
StripBraces(
    const char **namePtr,
    size_t *lenPtr)
{
    if (*lenPtr >= 2 && (*namePtr)[0] == '{' && (*namePtr)[*lenPtr-1] == '}') {
	(*namePtr)++;
	*lenPtr -= 2;
    }
}

int
MilterSessionMacro(
    const MilterSession *s,
    const char *name,
    size_t nameLen,
    MilterStr *valuePtr)
{
    static const int newestFirst[SMFIM_COUNT] = {
	SMFIM_EOM, SMFIM_EOH, SMFIM_DATA, SMFIM_ENVRCPT, SMFIM_ENVFROM,
	SMFIM_HELO, SMFIM_CONNECT
    };
    int i;

    StripBraces(&name, &nameLen);
    for (i = 0; i < SMFIM_COUNT; i++) {
	const MacroStage *mPtr = &s->macros[newestFirst[i]];
	const char *p = (const char *) mPtr->data;
	const char *end;

	if (p == NULL) {
	    continue;		/* No arithmetic on a null pointer. */
	}
	end = p + mPtr->len;
	while (p < end) {
	    const char *key = p;
	    size_t keyLen = strlen(key);
	    const char *value = key + keyLen + 1;

	    if (value >= end) {
		break;		/* A name without a value. */
	    }
	    p = value + strlen(value) + 1;
	    StripBraces(&key, &keyLen);
	    if (keyLen == nameLen && memcmp(key, name, nameLen) == 0) {
		valuePtr->ptr = value;
		valuePtr->len = strlen(value);
		return 1;
	    }
	}
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionModify --
 *
 *	Queues a modification packet (h i m + 2 - e q) to be sent before the
 *	final end-of-message reply. Allowed only while the EOM event is
 *	being decided and only for negotiated actions.
 *
 * Results:
 *	MILTER_ERR_NONE, or an error class with *msgPtr set.
 *
 * Side effects:
 *	Grows the pending modifications.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
ActionFor(
    unsigned char cmd)
{
    switch (cmd) {
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:	return SMFIF_ADDHDRS;
    case SMFIR_CHGHEADER:	return SMFIF_CHGHDRS;
    case SMFIR_ADDRCPT:		return SMFIF_ADDRCPT;
    case SMFIR_ADDRCPT_PAR:	return SMFIF_ADDRCPT_PAR;
    case SMFIR_DELRCPT:		return SMFIF_DELRCPT;
    case SMFIR_CHGFROM:		return SMFIF_CHGFROM;
    case SMFIR_QUARANTINE:	return SMFIF_QUARANTINE;
    case SMFIR_REPLBODY:	return SMFIF_CHGBODY;
    default:			return 0;
    }
}

static MilterSessionError
CheckModify(
    MilterSession *s,
    unsigned char cmd,
    const char **msgPtr)
{
    if (!s->inEom) {
	*msgPtr = "message modifications are only allowed in the eom callback";
	return MILTER_ERR_STATE;
    }
    if ((s->agreed.actions & ActionFor(cmd)) == 0) {
	*msgPtr = "the MTA did not grant this action in negotiation";
	return MILTER_ERR_ACTION;
    }
    return MILTER_ERR_NONE;
}

MilterSessionError
MilterSessionModify(
    MilterSession *s,
    unsigned char cmd,
    int useIndex,
    uint32_t index,
    const MilterStr *strs,
    int count,
    const char **msgPtr)
{
    MilterSessionError err = CheckModify(s, cmd, msgPtr);

    if (err == MILTER_ERR_NONE) {
	MilterWirePacketStrings(&s->mods, cmd, useIndex, index, strs, count);
    }
    return err;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionDiscardModifications --
 *
 *	Forgets the modifications queued so far in this message (an eom
 *	callback failed half-way: its partial changes must not be applied).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Empties the pending modifications and body.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionDiscardModifications(
    MilterSession *s)
{
    MilterBufReset(&s->mods);
    MilterBufReset(&s->body);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionReplaceBody --
 *
 *	Appends to the replacement body; it is sent in packets of at most
 *	65535 bytes, after every other modification.
 *
 * Results:
 *	MILTER_ERR_NONE or an error class with *msgPtr set.
 *
 * Side effects:
 *	Grows the pending body.
 *
 *----------------------------------------------------------------------
 */

MilterSessionError
MilterSessionReplaceBody(
    MilterSession *s,
    const unsigned char *data,
    size_t len,
    const char **msgPtr)
{
    MilterSessionError err = CheckModify(s, SMFIR_REPLBODY, msgPtr);

    if (err == MILTER_ERR_NONE) {
	MilterWireBody(&s->body, SMFIR_REPLBODY, data, len);
    }
    return err;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionProgress --
 *
 *	Sends PROGRESS at once so the MTA restarts its timeout. Allowed
 *	only while the EOM event is being decided, the one place Sendmail
 *	accepts it.
 *
 * Results:
 *	MILTER_ERR_NONE or MILTER_ERR_STATE.
 *
 * Side effects:
 *	Grows the output; the driver must flush it.
 *
 *----------------------------------------------------------------------
 */

MilterSessionError
MilterSessionProgress(
    MilterSession *s,
    const char **msgPtr)
{
    if (!s->inEom) {
	*msgPtr = "progress is only allowed in the eom callback";
	return MILTER_ERR_STATE;
    }
    MilterWirePacket(&s->out, SMFIR_PROGRESS, NULL, 0);
    return MILTER_ERR_NONE;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionSetReply --
 *
 *	Validates and stores the SMTP reply to use with the next REJECT or
 *	TEMPFAIL of its class, as libmilter's smfi_setreply and
 *	smfi_setmlreply do: a 4xx or 5xx code; an optional enhanced code
 *	n.n.n whose class matches; 1 to 32 lines of at most 980 bytes with
 *	no CR or LF; '%' doubled because Sendmail reads the text as a
 *	format. Several lines become a multi-line reply.
 *
 * Results:
 *	MILTER_ERR_NONE or MILTER_ERR_VALUE with *msgPtr set.
 *
 * Side effects:
 *	Replaces the pending reply text.
 *
 *----------------------------------------------------------------------
 */

static int
IsEnhancedCode(
    const char *xcode,
    char class)
{
    int part, digits;
    const char *p = xcode;

    if (p[0] != class) {
	return 0;
    }
    for (part = 0; part < 3; part++) {
	for (digits = 0; *p >= '0' && *p <= '9'; p++) {
	    digits++;
	}
	if (digits == 0 || digits > 3 || (part == 0 && digits != 1)) {
	    return 0;
	}
	if (part < 2 && *p++ != '.') {
	    return 0;
	}
    }
    return *p == '\0';
}

MilterSessionError
MilterSessionSetReply(
    MilterSession *s,
    const char *rcode,
    const char *xcode,
    const MilterStr *lines,
    int count,
    const char **msgPtr)
{
    MilterBuf text;
    int i;
    size_t j;

    if (strlen(rcode) != 3 || (rcode[0] != '4' && rcode[0] != '5')
	    || rcode[1] < '0' || rcode[1] > '9'
	    || rcode[2] < '0' || rcode[2] > '9') {
	*msgPtr = "reply code must be 4xx or 5xx";
	return MILTER_ERR_VALUE;
    }
    if (xcode[0] != '\0' && !IsEnhancedCode(xcode, rcode[0])) {
	*msgPtr = "enhanced status code must be n.n.n of the reply code's class";
	return MILTER_ERR_VALUE;
    }
    if (count > MAX_REPLY_LINES) {
	*msgPtr = "a reply has at most 32 lines";
	return MILTER_ERR_VALUE;
    }
    for (i = 0; i < count; i++) {
	if (lines[i].len > MAX_REPLY_LEN) {
	    *msgPtr = "a reply line has at most 980 bytes";
	    return MILTER_ERR_VALUE;
	}
	if (memchr(lines[i].ptr, '\r', lines[i].len)
		|| memchr(lines[i].ptr, '\n', lines[i].len)
		|| memchr(lines[i].ptr, '\0', lines[i].len)) {
	    *msgPtr = "a reply line may not contain CR, LF or NUL";
	    return MILTER_ERR_VALUE;
	}
    }
    if (count > 1 && xcode[0] == '\0') {
	xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
    }

    MilterBufInit(&text);
    i = 0;
    do {
	MilterBufAppend(&text, rcode, 3);
	MilterBufAppend(&text, (i < count - 1) ? "-" : " ", 1);
	if (xcode[0] != '\0') {
	    MilterBufAppend(&text, xcode, strlen(xcode));
	    if (count > 0) {
		MilterBufAppend(&text, " ", 1);
	    }
	}
	if (count > 0) {
	    for (j = 0; j < lines[i].len; j++) {
		if (lines[i].ptr[j] == '%') {
		    MilterBufAppend(&text, "%", 1);
		}
		MilterBufAppend(&text, lines[i].ptr + j, 1);
	    }
	}
	if (i < count - 1) {
	    MilterBufAppend(&text, "\r\n", 2);
	}
    } while (++i < count);
    if (xcode[0] == '\0' && count == 0) {
	text.len--;		/* No trailing space after a bare code. */
    }
    MilterFree(s->reply);
    s->reply = MilterStrdup((const char *) MilterBufData(&text),
	    MilterBufLength(&text));
    MilterBufFree(&text);
    return MILTER_ERR_NONE;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionSetSymlist --
 *
 *	Asks the MTA, in the negotiation answer, to send only these macros
 *	at one stage (libmilter's smfi_setsymlist). Only while the
 *	NEGOTIATE event is being decided, and once per stage.
 *
 * Results:
 *	MILTER_ERR_NONE or an error class with *msgPtr set.
 *
 * Side effects:
 *	Stores the list.
 *
 *----------------------------------------------------------------------
 */

MilterSessionError
MilterSessionSetSymlist(
    MilterSession *s,
    int stage,
    const char *list,
    const char **msgPtr)
{
    if (!s->inNegotiate) {
	*msgPtr = "setsymlist is only allowed in the negotiate callback";
	return MILTER_ERR_STATE;
    }
    if (stage < 0 || stage >= SMFIM_COUNT) {
	*msgPtr = "unknown macro stage";
	return MILTER_ERR_VALUE;
    }
    if ((s->offered.actions & SMFIF_SETSYMLIST) == 0
	    || s->offered.version < MILTER_VERSION_MAX) {
	*msgPtr = "the MTA does not accept macro lists";
	return MILTER_ERR_ACTION;
    }
    if (s->symlists[stage] != NULL) {
	*msgPtr = "the macro list for this stage is already set";
	return MILTER_ERR_VALUE;
    }
    s->symlists[stage] = MilterStrdup(list, strlen(list));
    if (s->offered.actions & SMFIF_SETSYMLIST) {
	s->agreed.actions |= SMFIF_SETSYMLIST;
    }
    return MILTER_ERR_NONE;
}
