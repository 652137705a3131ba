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

#include "milterSessionInt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * The largest number of strings accepted in an envelope command (address
 * plus ESMTP arguments). SMTP allows far fewer.
 */

#define MAX_ARGS	64

/*
 * Pseudo command used for the end of a connection (EOF, timeout, stop, or
 * a protocol error).
 */

#define CMD_END		0

/*
 * The place of a command in a mail transaction (Position): a command may
 * not come after one of a later place. Content begins with the headers.
 */

typedef enum MilterPosition {
    POS_NONE,			/* Outside a transaction. */
    POS_MAIL,
    POS_RCPT,
    POS_DATA,
    POS_HEADER,
    POS_EOH,
    POS_BODY,
    POS_EOM
} MilterPosition;

static MilterEvent *	Run(MilterSession *s);

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionNew --
 *
 *	Creates a session for a new connection; 'maxData' bounds the
 *	payload of one packet.
 *
 * Results:
 *	The new session, to be released with MilterSessionFree.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

MilterSession *
MilterSessionNew(
    size_t maxData)		/* Largest packet payload accepted. */
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

/*
 *----------------------------------------------------------------------
 *
 * ClearMacros --
 *
 *	Forgets the macros of stage 'fromStage' and of every later
 *	stage.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees the macro buffers.
 *
 *----------------------------------------------------------------------
 */

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

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionFree --
 *
 *	Releases a session and everything it holds; a message still open
 *	is counted as aborted.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees memory; may count statistics.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionFree(
    MilterSession *s)
{
    int stage;

    if (s->msgStart != 0) {
	MilterStatsMessage(s->stats, MILTER_STAT_ABORTED, s->msgStart);
    }
    ClearMacros(s, SMFIM_CONNECT);
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
 * MilterSessionSetWanted --
 *
 *	Tells the session which events have callbacks: this decides both
 *	the SMFIP_NO* bits asked for in negotiation and which events are
 *	handed out.
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
    unsigned eventMask)		/* MILTER_EVBIT bits. */
{
    s->wanted = eventMask;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionSetLeadingSpace --
 *
 *	Tells the session whether to ask the MTA for SMFIP_HDR_LEADSPC
 *	(header values with their leading space).
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
MilterSessionSetLeadingSpace(
    MilterSession *s,
    int on)			/* Non-zero: ask for it. */
{
    s->leadingSpace = on;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionSetStats --
 *
 *	Tells the session where to count (sessions, messages, verdicts,
 *	modifications, protocol errors). Given before the first packet.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	The session counts from now on.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionSetStats(
    MilterSession *s,
    MilterStats *stats)
{
    s->stats = stats;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionOutput --
 *
 *	The buffer of bytes the session wants sent to the MTA; the caller
 *	consumes what it wrote.
 *
 * Results:
 *	The session's output buffer.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

MilterBuf *
MilterSessionOutput(
    MilterSession *s)
{
    return &s->out;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionClosed --
 *
 *	Whether the connection must now be closed.
 *
 * Results:
 *	1 when the session is closed, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSessionClosed(
    const MilterSession *s)
{
    return s->state == MILTER_ST_CLOSED;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionInMessage --
 *
 *	Whether a mail transaction is open.
 *
 * Results:
 *	1 inside a transaction, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSessionInMessage(
    const MilterSession *s)
{
    return s->inMessage;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionProblem --
 *
 *	The last protocol problem, which is then forgotten.
 *
 * Results:
 *	A thread-local copy of the problem text, or NULL when there is
 *	none.
 *
 * Side effects:
 *	Clears the session's problem.
 *
 *----------------------------------------------------------------------
 */

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

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionNegotiated --
 *
 *	The version, actions and protocol bits agreed in negotiation.
 *
 * Results:
 *	None; fills *optPtr.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

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
    MilterStatsCount(s->stats, MILTER_STAT_PROTOCOL_ERRORS, 1);
    MilterFree(s->cmdEvent);
    s->cmdEvent = NULL;
    s->cmd = CMD_END;
    s->phase = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * BeginMessage --
 *
 *	Statistics: a message begins.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Counts the message; sets s->msgStart.
 *
 *----------------------------------------------------------------------
 */

static void
BeginMessage(
    MilterSession *s)
{
    if (s->stats != NULL) {
	MilterStatsCount(s->stats, MILTER_STAT_MESSAGES, 1);
	s->msgStart = MilterStatsNow();
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CountMessage --
 *
 *	Statistics: the open message ends with this final verdict
 *	(MILTER_STAT_ABORTED when nothing decided it). A message is
 *	counted once, at its first end.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Counts the message; clears s->msgStart.
 *
 *----------------------------------------------------------------------
 */

static void
CountMessage(
    MilterSession *s,
    int verdict)		/* MILTER_* or MILTER_STAT_ABORTED. */
{
    if (s->msgStart != 0) {
	MilterStatsMessage(s->stats, verdict, s->msgStart);
	s->msgStart = 0;
    }
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
    int fromStage)		/* First SMFIM_* stage to clear. */
{
    CountMessage(s, s->pending >= 0 ? s->pending : MILTER_STAT_ABORTED);
    s->inMessage = 0;
    s->info.sender[0] = '\0';
    s->info.recipients = 0;
    s->position = POS_NONE;
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
 * NoReplyBit --
 *
 *	The SMFIP_NR_* bit that lets the MTA skip waiting for the reply to
 *	a command.
 *
 * Results:
 *	The bit, or 0 for a command that always gets a reply.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
NoReplyBit(
    unsigned char cmd)		/* An SMFIC_* command. */
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

/*
 *----------------------------------------------------------------------
 *
 * Position --
 *
 *	The place of a command in a mail transaction.
 *
 * Results:
 *	A MilterPosition, POS_NONE for a command outside a transaction.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static MilterPosition
Position(
    unsigned char cmd)		/* An SMFIC_* command. */
{
    switch (cmd) {
    case SMFIC_MAIL:	return POS_MAIL;
    case SMFIC_RCPT:	return POS_RCPT;
    case SMFIC_DATA:	return POS_DATA;
    case SMFIC_HEADER:	return POS_HEADER;
    case SMFIC_EOH:	return POS_EOH;
    case SMFIC_BODY:	return POS_BODY;
    case SMFIC_BODYEOB:	return POS_EOM;
    default:		return POS_NONE;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * IsContent --
 *
 *	Whether a command carries message content (a header, the end of
 *	headers, body or end of message).
 *
 * Results:
 *	1 for content commands, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
IsContent(
    unsigned char cmd)		/* An SMFIC_* command. */
{
    return Position(cmd) >= POS_HEADER;
}

/*
 *----------------------------------------------------------------------
 *
 * AbortOwed --
 *
 *	Whether ending the current transaction now calls for an ABORT event:
 *	a message is open, nothing has decided it yet, and the abort event
 *	has a callback. A final verdict given at a no-reply stage (pending)
 *	has decided the message already, and no callback runs for a decided
 *	message, even if the MTA aborts it before that verdict was sent.
 *
 * Results:
 *	1 if the ABORT event is to be handed out, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
AbortOwed(
    const MilterSession *s)
{
    return s->inMessage && s->pending < 0
	    && (s->wanted & MILTER_EVBIT(MILTER_EV_ABORT));
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
    int verdict)		/* A MILTER_* value. */
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
    int verdict)		/* A MILTER_* value. */
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
	    CountMessage(s, verdict);
	    EndMessage(s, SMFIM_ENVFROM);
	}
	break;
    default:
	CountMessage(s, verdict);
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
 * TakeCommandEvent --
 *
 *	Hands out the command's own event, copied when the packet was fed,
 *	if its callback is wanted; without one the command goes on as if a
 *	callback had said continue.
 *
 * Results:
 *	The event, or NULL.
 *
 * Side effects:
 *	Clears s->cmdEvent; without an event sets s->verdict to
 *	MILTER_CONTINUE.
 *
 *----------------------------------------------------------------------
 */

static MilterEvent *
TakeCommandEvent(
    MilterSession *s)
{
    MilterEvent *ev = s->cmdEvent;

    s->cmdEvent = NULL;
    if (ev == NULL) {
	s->verdict = MILTER_CONTINUE;
    }
    return ev;
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
	    MilterStatsCount(s->stats, MILTER_STAT_PROTOCOL_ERRORS, -1);
				/* Stats: a refusal, not an MTA error. */
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
	MilterStatsCount(s->stats, MILTER_STAT_SESSIONS, 1);
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
 *	out ABORT if a transaction is open and undecided (AbortOwed), then
 *	CLOSE once per session.
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
	if (AbortOwed(s)) {
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
	ClearMacros(s, SMFIM_CONNECT);
	MilterFree(s->reply);	/* Set by the close callback: it must not */
	s->reply = NULL;	/* answer the next session after QUIT_NC. */
	s->connected = 0;
	if (s->cmd == SMFIC_QUIT_NC) {
	    s->sessionOpen = 1;
	    MilterStatsCount(s->stats, MILTER_STAT_SESSIONS, 1);
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
 *	The body or EOM event, or NULL once the final reply is written.
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
	if ((ev = TakeCommandEvent(s)) != NULL) {
	    return ev;
	}
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
	    if (s->stats != NULL) {
		MilterStatsModifications(s->stats, MilterBufData(&s->mods),
			MilterBufLength(&s->mods));
		MilterStatsModifications(s->stats, MilterBufData(&s->body),
			MilterBufLength(&s->body));
	    }
	    MilterBufAppendBuf(&s->out, &s->mods);
	    MilterBufAppendBuf(&s->out, &s->body);
	}
	WriteVerdict(s, s->verdict);
	CountMessage(s, s->verdict);
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

	    s->clearFrom = keepFrom;
	    if (AbortOwed(s)) {
		s->inMessage = 0;
		return NewEvent(MILTER_EV_ABORT, 0, NULL, 0);
	    }
	} else {
	    s->clearFrom = -1;
	}
	/* FALLTHRU */
    case 1:
	if (s->clearFrom >= 0) {
	    EndMessage(s, s->clearFrom);
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
	    BeginMessage(s);
	    ClearMacros(s, SMFIM_ENVRCPT);
	    break;
	case SMFIC_RCPT:
	    ClearMacros(s, SMFIM_DATA);
	    break;
	}
	if (Position(s->cmd) > POS_NONE) {
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
	if ((ev = TakeCommandEvent(s)) != NULL) {
	    return ev;
	}
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
	    if (AbortOwed(s)) {
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
	MilterSessionCopyInfo(s->info.client, sizeof(s->info.client),
		&info.hostname);
	if (info.family == 'U') {
	    s->info.address[0] = '\0';
	} else {
	    MilterSessionCopyInfo(s->info.address, sizeof(s->info.address),
		    &info.address);
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
    case SMFIC_MAIL:
	type = MILTER_EV_ENVFROM;
	minArgs = 1;
	maxArgs = MAX_ARGS;
	break;
    case SMFIC_RCPT:
	type = MILTER_EV_ENVRCPT;
	minArgs = 1;
	maxArgs = MAX_ARGS;
	break;
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
    if (pktPtr->cmd == SMFIC_MAIL) {		/* milter sessions */
	MilterSessionCopyInfo(s->info.sender, sizeof(s->info.sender),
		&strs[0]);
	s->info.recipients = 0;
    } else if (pktPtr->cmd == SMFIC_RCPT) {
	s->info.recipients++;
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
 * FeedOptneg --
 *
 *	The first packet of a session, which must be the MTA's option
 *	negotiation: checks it and decides what to agree on.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets s->offered and s->agreed, or fails the session.
 *
 *----------------------------------------------------------------------
 */

static void
FeedOptneg(
    MilterSession *s,
    const MilterPacket *pktPtr)
{
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
	    s->offered.actions = SMFI_V1_ACTS;
	}
	if (s->offered.protocol == 0) {
	    s->offered.protocol = SMFI_V1_PROT;
	}
	Negotiate(s);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * FeedMessageCommand --
 *
 *	A command that belongs inside a mail transaction (RCPT to end of
 *	message): checks that a transaction is open (or opens one when MAIL
 *	was switched off) and that the command comes in order, then
 *	prepares its event.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May open a transaction, prepare an event or fail the session.
 *
 *----------------------------------------------------------------------
 */

static void
FeedMessageCommand(
    MilterSession *s,
    const MilterPacket *pktPtr)
{
    int opened = 0;

    if (!s->inMessage && (s->agreed.protocol & SMFIP_NOMAIL)) {
	/*
	 * MAIL was switched off in negotiation, so the first command of a
	 * message is what opens it.
	 */

	s->inMessage = 1;
	s->position = POS_NONE;
	opened = 1;
	BeginMessage(s);
    }
    if (!s->inMessage) {
	Fail(s, "command '%c' outside a transaction", pktPtr->cmd);
    } else if ((int) Position(pktPtr->cmd) < s->position) {
	Fail(s, "command '%c' out of order", pktPtr->cmd);
    } else if (!PrepareEvent(s, pktPtr)) {
	if (opened) {
	    s->inMessage = 0;	/* A malformed command opened nothing
				 * there is to abort. */
	    if (s->msgStart != 0) {
		s->msgStart = 0;	/* ... nor to count. */
		MilterStatsCount(s->stats, MILTER_STAT_MESSAGES, -1);
	    }
	}
    } else if (pktPtr->cmd == SMFIC_BODYEOB) {
	s->phase = 1;		/* RunEom starts with the body chunk. */
    }
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
    MilterFree(s->current);
    s->current = NULL;
    if (s->state == MILTER_ST_CLOSED) {
	return NULL;
    }
    s->cmd = pktPtr->cmd;
    s->phase = 0;
    s->verdict = MILTER_CONTINUE;
    MilterSessionNoteStage(s, pktPtr->cmd);

    if (s->state == MILTER_ST_INIT) {
	FeedOptneg(s, pktPtr);
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
	FeedMessageCommand(s, pktPtr);
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
    int verdict)		/* A MILTER_* value. */
{
    if (s->current != NULL) {
	MilterStatsVerdict(s->stats, (int) s->current->type, verdict);
    }
    MilterFree(s->current);
    s->current = NULL;
    s->verdict = verdict;	/* That of an implicit abort is not used. */
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
 * MilterSessionDetach --
 *
 *	Hands the event being decided to the caller, for when its verdict
 *	is given by someone other than whoever holds it (milter session
 *	abort answers a command while a callback still runs): the next
 *	Resume then frees nothing, and the holder can go on reading the
 *	event until the caller frees it.
 *
 * Results:
 *	The event (the caller frees it with MilterFree), or NULL if none is
 *	being decided.
 *
 * Side effects:
 *	The session forgets the event.
 *
 *----------------------------------------------------------------------
 */

MilterEvent *
MilterSessionDetach(
    MilterSession *s)
{
    MilterEvent *ev = s->current;

    s->current = NULL;
    return ev;
}
