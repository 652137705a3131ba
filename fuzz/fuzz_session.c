/*
 * fuzz_session.c --
 *
 *	libFuzzer target for the session state machine
 *	(generic/milterSession.c). A byte stream from a pretend MTA is
 *	framed with MilterWireFrame and fed packet by packet, the way
 *	unix/milterConn.c does it; every event is answered with a verdict
 *	taken from a script at the end of the input, and while an event is
 *	out the script may also call the modification, reply, progress,
 *	symlist and macro functions, as the Tcl context commands do, and
 *	discard the queued modifications, as the Tcl layer does when an eom
 *	callback fails, and now and then say that the MTA hung up
 *	(MilterSessionSetPeerGone), as the Tcl layer does when it finds the
 *	connection gone. The output is checked after every step against a
 *	model of the protocol (the milter protocol as Sendmail's libmilter
 *	and Postfix speak it, and the CALLBACKS, RETURN CODES and CONTEXT
 *	COMMANDS sections of doc/tclmilter.n):
 *
 *	  - the output is always a sequence of whole, well-formed packets
 *	    of the milter-to-MTA kinds;
 *	  - the first packet is 'O', answering the MTA's OPTNEG with a
 *	    version no higher than offered and only offered bits;
 *	  - every replying command gets exactly one final reply unless a
 *	    negotiated no-reply bit applies, in which case it gets none;
 *	    A, Q, K and D get none;
 *	  - the reply agrees with the verdict (a deferred no-reply verdict
 *	    travels with the next replying content command);
 *	  - modifications and progress come only during end of message,
 *	    before its final reply, exactly as queued, the replaced body
 *	    last; never when the message was not accepted; header
 *	    modifications carry a field name and a value folded with LF
 *	    only, addresses and reasons are never empty;
 *	  - REPLYCODE text is the text set, in the form Postfix accepts
 *	    (never a bare code; a digit after "ddd " or "ddd-" only as an
 *	    enhanced code of the reply's class);
 *	  - the events are the ones the command calls for, only for wanted
 *	    callbacks, with arguments copied correctly; one close per
 *	    session; no abort for a message a deferred verdict decided;
 *	  - macros are visible with the lifetimes libmilter gives them;
 *	  - after MilterSessionClosed nothing more comes out.
 *
 *	Any broken invariant prints a line and aborts, which libFuzzer
 *	reports as a crash.
 *
 *	Input layout:
 *	    byte 0	bits 0-2: largest data size (maxDataTable); bits 3-5:
 *			how the stream is cut into reads (chunkTable); bit 6:
 *			ask for SMFIP_HDR_LEADSPC; bit 7: the script may
 *			change the wanted-events mask before each packet.
 *	    bytes 1-2	wanted-events mask (MILTER_EVBIT bits, big-endian).
 *	    byte 3	bit 0: also look macros up between packets.
 *	    bytes 4-5	length of the script (big-endian), taken from the
 *			end of the input; the bytes between are the stream.
 *	When the script runs out every verdict is SMFIS_CONTINUE and no
 *	extra calls are made, so a plain recording of MTA traffic after a
 *	six-byte header is a useful seed.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterSession.h"
#include "fuzzCheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


/*
 * Built with -DTRACE the harness prints what goes in and out, which is
 * what one wants when reading a crash.
 */

#ifdef TRACE
#   define Trace(...)	fprintf(stderr, __VA_ARGS__)
#else
#   define Trace(...)	((void) 0)
#endif

#define HEADER_LEN	6
#define MAX_EVENTS	16	/* Per packet; more means a loop. */
#define CMD_END		0	/* Pseudo command: MilterSessionEnd. */
#define NUM_EVENTS	13
#define ALL_EVENTS	((1u << NUM_EVENTS) - 1)
#define EV(x)		MILTER_EVBIT(MILTER_EV_ ## x)

static const size_t maxDataTable[8] = {
    65535, 65535, 65535, 262143, 0, 12, 255, 1048575
};
static const size_t chunkTable[8] = {
    (size_t) -1, 1, 2, 3, 7, 64, 4096, 65536
};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/*
 * One packet of output, copied.
 */

typedef struct OutPkt {
    unsigned char cmd;
    unsigned char *data;
    size_t len;
} OutPkt;

/*
 * A copy of one macro stage as the model keeps it: name\0value\0...
 */

typedef struct Stage {
    unsigned char *data;
    size_t len;
} Stage;

/*
 * Everything the harness knows about the session.
 */

typedef struct Model {
    MilterSession *s;

    /* The script. */
    const unsigned char *script;
    size_t scriptLen, scriptPos;

    /* Settings. */
    unsigned wanted;		/* Mask last given to SetWanted. */
    int leadingSpace;
    int varyWanted;
    int lookupBetween;
    int closeAlwaysWanted;	/* CLOSE was wanted at every moment. */

    /* Negotiation. */
    int negotiated;		/* The 'O' answer was seen. */
    int everOutput;		/* Some packet was output. */
    MilterOptneg offered;
    MilterOptneg agreed;
    char *symlists[SMFIM_COUNT];/* Lists set in the negotiate event. */

    /* Session and message. */
    int sessions;		/* Sessions started (1 + QUIT_NC). */
    int closes;			/* CLOSE events seen. */
    int closeSeen;		/* CLOSE seen in the current session. */
    int connected;		/* CONNECT accepted in this session. */
    int pending;		/* Verdict deferred at a no-reply stage. */
    int skip;			/* Body skipped. */
    char *replyText;		/* Last reply text set, or NULL. */
    int peerGone;		/* MilterSessionSetPeerGone was called:
				 * allowed actions now fail CLOSED. */
    MilterBuf expMods;		/* Modifications queued in this EOM. */
    MilterBuf expBody;		/* Replacement body queued. */
    int progressCalls;		/* Successful progress calls. */
    Stage macros[SMFIM_COUNT];
    char history[16][64];	/* Names of macros seen, cleared or not. */
    int nHistory;

    /* The packet being processed. */
    unsigned char cmd;
    const MilterPacket *pkt;
    unsigned wantedAtFeed;
    unsigned unionWanted;
    int nEvents;
    MilterEventType evType[MAX_EVENTS];
    int evVerdict[MAX_EVENTS];
    int ownClearDone;		/* The command's macro clearing applied. */
    MilterEventType currentType;/* Type of the event out, or -1. */
    int replySetNow;		/* A reply was set during this packet. */
    OutPkt *out;
    int nOut, capOut;
} Model;

/*
 * Script readers: bytes of the script, then zeros.
 */

/*
 *----------------------------------------------------------------------
 *
 * Next --
 *
 *	Reads the next byte of the script; past its end, zeros.
 *
 * Results:
 *	The byte, or 0.
 *
 * Side effects:
 *	Advances the script position.
 *
 *----------------------------------------------------------------------
 */

static unsigned
Next(
    Model *m)
{
    if (m->scriptPos < m->scriptLen) {
	return m->script[m->scriptPos++];
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * Next16 --
 *
 *	Reads the next two script bytes as a big-endian number.
 *
 * Results:
 *	The number, 0 to 65535.
 *
 * Side effects:
 *	Advances the script position.
 *
 *----------------------------------------------------------------------
 */

static unsigned
Next16(
    Model *m)
{
    unsigned v = Next(m) << 8;

    return v | Next(m);
}

/*
 *----------------------------------------------------------------------
 *
 * Next32 --
 *
 *	Reads the next four script bytes as a big-endian number.
 *
 * Results:
 *	The number.
 *
 * Side effects:
 *	Advances the script position.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
Next32(
    Model *m)
{
    uint32_t v = (uint32_t) Next16(m) << 16;

    return v | Next16(m);
}

/*
 * A pattern for long strings and bodies: printable, no NUL, some '%'.
 */

#define PATTERN_LEN	(1 << 19)
static unsigned char pattern[PATTERN_LEN];

/*
 *----------------------------------------------------------------------
 *
 * InitPattern --
 *
 *	Fills, once, the pattern for long strings and bodies: printable
 *	letters, no NUL, some '%'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes the static pattern on the first call.
 *
 *----------------------------------------------------------------------
 */

static void
InitPattern(void)
{
    size_t i;

    if (pattern[0] != 0) {
	return;
    }
    for (i = 0; i < PATTERN_LEN; i++) {
	pattern[i] = (i % 97 == 13) ? '%' : (unsigned char) ('a' + i % 26);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * GenString --
 *
 *	A string of script bytes (NUL turned into '%'), sometimes a long
 *	piece of the pattern, of at most cap - 1 bytes, with a NUL after
 *	it.
 *
 * Results:
 *	The length of the string.
 *
 * Side effects:
 *	Writes buf; advances the script position.
 *
 *----------------------------------------------------------------------
 */

static size_t
GenString(
    Model *m,
    char *buf,
    size_t cap)
{
    size_t len = Next(m) % 24, i;

    if (len == 23) {
	len = Next16(m) % (cap - 1);
	memcpy(buf, pattern + Next(m), len);
    } else {
	for (i = 0; i < len; i++) {
	    unsigned c = Next(m);

	    buf[i] = (char) (c == 0 ? '%' : c);
	}
    }
    buf[len] = '\0';
    return len;
}

/*
 * Reference helpers, independent of the code under test.
 */

/*
 *----------------------------------------------------------------------
 *
 * CountStrings --
 *
 *	Counts the NUL-terminated strings filling [d, d+len).
 *
 * Results:
 *	The number of strings, or -1 when the last one is not
 *	terminated.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
CountStrings(
    const unsigned char *d,
    size_t len)
{
    size_t i;
    int n = 0;

    if (len > 0 && d[len - 1] != '\0') {
	return -1;
    }
    for (i = 0; i < len; i++) {
	n += d[i] == '\0';
    }
    return n;
}

/*
 *----------------------------------------------------------------------
 *
 * RefHeaderName --
 *
 *	The header name rule, written again: one or more bytes of 33 to
 *	126 but ':'.
 *
 * Results:
 *	1 if the name is acceptable, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefHeaderName(
    const unsigned char *d,
    size_t len)
{
    size_t i;

    if (len == 0) {
	return 0;
    }
    for (i = 0; i < len; i++) {
	if (d[i] <= ' ' || d[i] >= 127 || d[i] == ':') {
	    return 0;
	}
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * RefHeaderValue --
 *
 *	The header value rule, written again: every LF is followed by SP
 *	or HT, every CR by LF, no NUL, and the value does not end in a
 *	line break. 'sent' asks for the form on the wire, where folds
 *	are LF only.
 *
 * Results:
 *	1 if the value is acceptable, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefHeaderValue(
    const unsigned char *d,
    size_t len,
    int sent)
{
    size_t i;

    for (i = 0; i < len; i++) {
	if (d[i] == '\0') {
	    return 0;
	}
	if (d[i] == '\r' && (sent || i + 1 == len || d[i + 1] != '\n')) {
	    return 0;
	}
	if (d[i] == '\n' && (i + 1 == len
		|| (d[i + 1] != ' ' && d[i + 1] != '\t'))) {
	    return 0;
	}
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MacroStageOf --
 *
 *	The macro stage of the command a macro packet names, in the
 *	order of the SMFIM_* stages.
 *
 * Results:
 *	The stage, or -1 for a command without macros.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
MacroStageOf(
    unsigned char cmd)
{
    switch (cmd) {
    case 'C': return 0;
    case 'H': return 1;
    case 'M': return 2;
    case 'R': return 3;
    case 'T': return 4;
    case 'E': return 5;
    case 'N': return 6;
    default: return -1;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * NrBit --
 *
 *	The negotiated no-reply bit of a command.
 *
 * Results:
 *	The SMFIP_NR_* bit, or 0 for a command that always gets a reply.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
NrBit(
    unsigned char cmd)
{
    switch (cmd) {
    case 'C': return SMFIP_NR_CONN;
    case 'H': return SMFIP_NR_HELO;
    case 'M': return SMFIP_NR_MAIL;
    case 'R': return SMFIP_NR_RCPT;
    case 'T': return SMFIP_NR_DATA;
    case 'U': return SMFIP_NR_UNKN;
    case 'L': return SMFIP_NR_HDR;
    case 'N': return SMFIP_NR_EOH;
    case 'B': return SMFIP_NR_BODY;
    default: return 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * OwnEvent --
 *
 *	The event a command hands out itself.
 *
 * Results:
 *	A MILTER_EV_*, or -1 for commands with no event of their own.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
OwnEvent(
    unsigned char cmd)
{
    switch (cmd) {
    case 'C': return MILTER_EV_CONNECT;
    case 'H': return MILTER_EV_HELO;
    case 'M': return MILTER_EV_ENVFROM;
    case 'R': return MILTER_EV_ENVRCPT;
    case 'T': return MILTER_EV_DATA;
    case 'L': return MILTER_EV_HEADER;
    case 'N': return MILTER_EV_EOH;
    case 'B': return MILTER_EV_BODY;
    case 'U': return MILTER_EV_UNKNOWN;
    default: return -1;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Opener --
 *
 *	Whether a command opens a transaction when MAIL was switched
 *	off.
 *
 * Results:
 *	1 if so, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
Opener(
    unsigned char cmd)
{
    return cmd == 'R' || cmd == 'T' || cmd == 'L' || cmd == 'N'
	    || cmd == 'B' || cmd == 'E';
}

/*
 *----------------------------------------------------------------------
 *
 * IsContentCmd --
 *
 *	Whether a command carries message content (header, end of
 *	headers, body, end of message).
 *
 * Results:
 *	1 if so, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
IsContentCmd(
    unsigned char cmd)
{
    return cmd == 'L' || cmd == 'N' || cmd == 'B' || cmd == 'E';
}

/*
 *----------------------------------------------------------------------
 *
 * Letter --
 *
 *	The reply packet that answers a verdict.
 *
 * Results:
 *	The packet's command letter.
 *
 * Side effects:
 *	Aborts for an unknown verdict.
 *
 *----------------------------------------------------------------------
 */

static unsigned char
Letter(
    int verdict)
{
    switch (verdict) {
    case MILTER_CONTINUE:	return 'c';
    case MILTER_REJECT:		return 'r';
    case MILTER_DISCARD:	return 'd';
    case MILTER_ACCEPT:		return 'a';
    case MILTER_TEMPFAIL:	return 't';
    case MILTER_SKIP:		return 's';
    }
    Violation("unknown verdict", __FILE__, __LINE__);
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * ActionOf --
 *
 *	The SMFIF_* action a modification packet needs.
 *
 * Results:
 *	The action bit, or 0 for packets that need none.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
ActionOf(
    unsigned char cmd)
{
    switch (cmd) {
    case 'h': case 'i':	return SMFIF_ADDHDRS;
    case 'm':		return SMFIF_CHGHDRS;
    case '+':		return SMFIF_ADDRCPT;
    case '2':		return SMFIF_ADDRCPT_PAR;
    case '-':		return SMFIF_DELRCPT;
    case 'e':		return SMFIF_CHGFROM;
    case 'q':		return SMFIF_QUARANTINE;
    case 'b':		return SMFIF_CHGBODY;
    default:		return 0;
    }
}

/*
 * Macro model: stages as libmilter keeps them: D replaces a stage;
 * CONNECT clears the later stages, HELO those after HELO, MAIL those
 * after ENVFROM, RCPT those after ENVRCPT; the end of a message clears
 * ENVFROM on; the end of a session clears everything. Lookups go newest
 * stage first (EOM, EOH, DATA, ENVRCPT, ENVFROM, HELO, CONNECT) and
 * treat "x" and "{x}" alike.
 */

/*
 *----------------------------------------------------------------------
 *
 * ModelClear --
 *
 *	Forgets the model's macros of stage 'from' on.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees the model's macro copies.
 *
 *----------------------------------------------------------------------
 */

static void
ModelClear(
    Model *m,
    int from)
{
    int i;

    for (i = from; i < SMFIM_COUNT; i++) {
	free(m->macros[i].data);
	m->macros[i].data = NULL;
	m->macros[i].len = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ModelStoreMacros --
 *
 *	Stores a macro packet in the model, as libmilter does (a packet
 *	replaces its stage), and remembers the names it defined for
 *	later lookups.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the model's macros and name history.
 *
 *----------------------------------------------------------------------
 */

static void
ModelStoreMacros(
    Model *m,
    const MilterPacket *pkt)
{
    int stage;

    if (pkt->len == 0) {
	return;
    }
    stage = MacroStageOf(pkt->data[0]);
    if (stage < 0) {
	return;
    }
    if (pkt->len > 1 && pkt->data[pkt->len - 1] != '\0') {
	return;
    }
    free(m->macros[stage].data);
    m->macros[stage].len = pkt->len - 1;
    m->macros[stage].data = malloc(pkt->len);
    memcpy(m->macros[stage].data, pkt->data + 1, pkt->len - 1);

    /*
     * Remember the names, so that lookups also ask for macros whose
     * stage has been cleared since.
     */

    {
	size_t p = 1;
	int pair = 0;

	while (p < pkt->len) {
	    const char *name = (const char *) pkt->data + p;
	    size_t len = strlen(name);

	    if (pair % 2 == 0 && len < sizeof(m->history[0])) {
		memcpy(m->history[m->nHistory % 16], name, len + 1);
		m->nHistory++;
	    }
	    pair++;
	    p += len + 1;
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Strip --
 *
 *	Drops the braces of a macro name written "{x}".
 *
 * Results:
 *	None; may change *namePtr and *lenPtr.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static void
Strip(
    const char **namePtr,
    size_t *lenPtr)
{
    if (*lenPtr >= 2 && (*namePtr)[0] == '{'
	    && (*namePtr)[*lenPtr - 1] == '}') {
	(*namePtr)++;
	*lenPtr -= 2;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ModelLookup --
 *
 *	Looks a macro up in the model, newest stage first (EOM, EOH,
 *	DATA, ENVRCPT, ENVFROM, HELO, CONNECT), treating "x" and "{x}"
 *	alike.
 *
 * Results:
 *	1 with *valuePtr set if found, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
ModelLookup(
    Model *m,
    const char *name,
    size_t nameLen,
    const char **valuePtr)
{
    static const int order[SMFIM_COUNT] = {5, 6, 4, 3, 2, 1, 0};
    int i;

    Strip(&name, &nameLen);
    for (i = 0; i < SMFIM_COUNT; i++) {
	const Stage *st = &m->macros[order[i]];
	size_t p = 0;

	while (p < st->len) {
	    const char *key = (const char *) st->data + p;
	    size_t keyLen = strlen(key);

	    if (p + keyLen + 1 >= st->len) {
		break;		/* A name without a value. */
	    }
	    *valuePtr = key + keyLen + 1;
	    p += keyLen + 1 + strlen(*valuePtr) + 1;
	    Strip(&key, &keyLen);
	    if (keyLen == nameLen && memcmp(key, name, nameLen) == 0) {
		return 1;
	    }
	}
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * ApplyOwnClear --
 *
 *	The macro clearing a command does just before its own event,
 *	done once per command.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Clears later stages of the model.
 *
 *----------------------------------------------------------------------
 */

static void
ApplyOwnClear(
    Model *m)
{
    if (m->ownClearDone) {
	return;
    }
    m->ownClearDone = 1;
    switch (m->cmd) {
    case 'C': ModelClear(m, 1); break;
    case 'H': ModelClear(m, 2); break;
    case 'M': ModelClear(m, 3); break;
    case 'R': ModelClear(m, 4); break;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Lookup --
 *
 *	Looks a name up in the session and in the model; they must
 *	agree.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Aborts on a disagreement.
 *
 *----------------------------------------------------------------------
 */

static void
Lookup(
    Model *m,
    const char *name,
    size_t nameLen)
{
    MilterStr value;
    const char *expect = NULL;
    int found = MilterSessionMacro(m->s, name, nameLen, &value);

    CHECK(found == ModelLookup(m, name, nameLen, &expect));
    if (found) {
	CHECK(value.len == strlen(value.ptr));
	CHECK(value.len == strlen(expect));
	CHECK(memcmp(value.ptr, expect, value.len) == 0);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * RandomLookup --
 *
 *	Looks up a name chosen by the script: one seen in an earlier
 *	macro packet, one the model holds now (maybe with braces added
 *	or removed), or a generated one.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Advances the script position; aborts on a disagreement.
 *
 *----------------------------------------------------------------------
 */

static void
RandomLookup(
    Model *m)
{
    char buf[64];
    unsigned how = Next(m);
    const Stage *st = &m->macros[how % SMFIM_COUNT];
    size_t len;

    if ((how & 0x90) == 0x10 && m->nHistory > 0) {
	/* A name seen in some macro packet, maybe cleared since. */
	const char *name = m->history[Next(m) % (m->nHistory < 16
		? m->nHistory : 16)];

	Lookup(m, name, strlen(name));
	return;
    }
    if ((how & 0x80) == 0 && st->len > 0) {
	/* A name the model knows, maybe with braces added or removed. */
	const char *key = (const char *) st->data;
	unsigned skip = Next(m) % 8;

	while (skip-- > 0 && key + strlen(key) + 1
		< (const char *) st->data + st->len) {
	    key += strlen(key) + 1;
	}
	len = strlen(key);
	if ((how & 0x40) && len + 2 < sizeof(buf)) {
	    buf[0] = '{';
	    memcpy(buf + 1, key, len);
	    buf[len + 1] = '}';
	    Lookup(m, buf, len + 2);
	} else if ((how & 0x20) && len >= 2 && key[0] == '{'
		&& key[len - 1] == '}') {
	    Lookup(m, key + 1, len - 2);
	} else {
	    Lookup(m, key, len);
	}
	return;
    }
    len = GenString(m, buf, sizeof(buf));
    Lookup(m, buf, len);
}

/*
 * Output checks: Collect takes the session's output (as the server's
 * flush does), requires it to be whole packets, checks each with
 * CheckOutPacket and keeps a copy in the list of the current command.
 */

/*
 *----------------------------------------------------------------------
 *
 * IsPercentSafe --
 *
 *	Whether every run of '%' in a reply text is of even length, so
 *	that the MTA's formatting leaves it alone.
 *
 * Results:
 *	1 if so, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
IsPercentSafe(
    const unsigned char *d,
    size_t len)
{
    size_t i = 0;

    while (i < len) {
	size_t run = 0;

	while (i < len && d[i] == '%') {
	    run++;
	    i++;
	}
	if (run % 2) {
	    return 0;
	}
	i++;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * RefEnhanced --
 *
 *	Reference check of an enhanced status code n.n.n (1, 1-3, 1-3
 *	digits) of class 'cls'.
 *
 * Results:
 *	1 if it is one, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefEnhanced(
    const unsigned char *x,
    size_t len,
    char cls)
{
    size_t i = 0;
    int part;

    if (len == 0 || x[0] != (unsigned char) cls) {
	return 0;
    }
    for (part = 0; part < 3; part++) {
	size_t digits = 0;

	while (i < len && x[i] >= '0' && x[i] <= '9') {
	    i++;
	    digits++;
	}
	if (digits < 1 || digits > 3 || (part == 0 && digits != 1)) {
	    return 0;
	}
	if (part < 2) {
	    if (i == len || x[i] != '.') {
		return 0;
	    }
	    i++;
	}
    }
    return i == len;
}

/*
 *----------------------------------------------------------------------
 *
 * CheckReplyText --
 *
 *	Checks a REPLYCODE text: lines joined by CRLF, each "ddd-" but
 *	the last "ddd ", the same 4xx/5xx code throughout, and a digit
 *	after the separator only as the first of an enhanced code of the
 *	same class (what Postfix requires; a bare "ddd" it refuses).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE void
CheckReplyText(
    const unsigned char *d,
    size_t len)
{
    size_t p = 0;

    CHECK(len >= 4 && d[len - 1] == '\0');
    CHECK(memchr(d, '\0', len - 1) == NULL);
    CHECK(d[0] == '4' || d[0] == '5');
    CHECK(IsPercentSafe(d, len - 1));
    len--;
    for (;;) {
	const unsigned char *crlf = NULL;
	size_t i;

	for (i = p; i + 1 < len; i++) {
	    if (d[i] == '\r' && d[i + 1] == '\n') {
		crlf = d + i;
		break;
	    }
	}
	CHECK(len - p >= 4);
	CHECK(memcmp(d + p, d, 3) == 0);
	CHECK(d[p + 1] >= '0' && d[p + 1] <= '9');
	CHECK(d[p + 2] >= '0' && d[p + 2] <= '9');
	if (p + 4 < len && d[p + 4] >= '0' && d[p + 4] <= '9') {
	    size_t w = p + 4;

	    while (w < len && d[w] != ' ' && d[w] != '\r') {
		w++;
	    }
	    CHECK(RefEnhanced(d + p + 4, w - (p + 4), (char) d[0]));
	}
	if (crlf == NULL) {
	    CHECK(d[p + 3] == ' ');
	    CHECK(memchr(d + p, '\r', len - p) == NULL);
	    CHECK(memchr(d + p, '\n', len - p) == NULL);
	    break;
	}
	CHECK(d[p + 3] == '-');
	CHECK(memchr(d + p, '\n', (size_t) (crlf - (d + p))) == NULL);
	CHECK(memchr(d + p, '\r', (size_t) (crlf - (d + p))) == NULL);
	p = (size_t) (crlf - d) + 2;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckOutPacket --
 *
 *	Checks one packet the session sent: its kind, the form of its
 *	data, and that a modification or progress comes only at end of
 *	message for a granted action.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Notes that output was seen; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckOutPacket(
    Model *m,
    unsigned char cmd,
    const unsigned char *d,
    size_t len)
{
    int n = CountStrings(d, len);

    switch (cmd) {
    case 'c': case 'a': case 'r': case 't': case 'd': case 's': case 'p':
	CHECK(len == 0);
	break;
    case 'y':
	CheckReplyText(d, len);
	break;
    case 'O':
	CHECK(!m->everOutput);
	CHECK(len >= 12);
	break;
    case 'h': case 'i': case 'm': {
	const unsigned char *name = d, *value;
	size_t nameLen;

	if (cmd == 'h') {
	    CHECK(n == 2);
	} else {
	    CHECK(len >= 4);
	    CHECK(CountStrings(d + 4, len - 4) == 2);
	    name += 4;
	}
	/* Only well-formed header lines reach the MTA. */
	nameLen = strlen((const char *) name);
	value = name + nameLen + 1;
	CHECK(RefHeaderName(name, nameLen));
	CHECK(RefHeaderValue(value, strlen((const char *) value), 1));
	break;
    }
    case 'e': case '2':
	CHECK(n == 1 || n == 2);
	CHECK(d[0] != '\0');		/* Never an empty address. */
	break;
    case '+': case '-': case 'q':
	CHECK(n == 1);
	CHECK(d[0] != '\0');
	break;
    case 'b':
	CHECK(len <= MILTER_CHUNK_SIZE);
	break;
    default:
	Violation("unknown packet kind in the output", __FILE__, __LINE__);
    }
    if (ActionOf(cmd) != 0) {
	CHECK(m->cmd == 'E');
	CHECK(m->agreed.actions & ActionOf(cmd));
    }
    if (cmd == 'p') {
	CHECK(m->cmd == 'E');
    }
    m->everOutput = 1;
}

/*
 *----------------------------------------------------------------------
 *
 * Collect --
 *
 *	Takes the session's output (as the server's flush does),
 *	requires it to be whole packets, checks each with CheckOutPacket
 *	and keeps a copy in the list of the current command.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Empties the session's output; grows the model's packet list.
 *
 *----------------------------------------------------------------------
 */

static void
Collect(
    Model *m)
{
    MilterBuf *out = MilterSessionOutput(m->s);
    const unsigned char *p;
    size_t avail = MilterBufLength(out);

    if (avail == 0) {
	return;
    }
    p = MilterBufData(out);

    while (avail > 0) {
	MilterPacket pkt;
	size_t used;
	OutPkt *o;

	CHECK(MilterWireFrame(p, avail, (size_t) -1, &pkt, &used)
		== MILTER_FRAME_OK);
	Trace("    out '%c' %zu bytes\n", pkt.cmd, pkt.len);
	CheckOutPacket(m, pkt.cmd, pkt.data, pkt.len);
	if (m->nOut == m->capOut) {
	    m->capOut = m->capOut ? 2 * m->capOut : 16;
	    m->out = realloc(m->out, m->capOut * sizeof(OutPkt));
	}
	o = &m->out[m->nOut++];
	o->cmd = pkt.cmd;
	o->len = pkt.len;
	o->data = malloc(pkt.len + 1);
	memcpy(o->data, pkt.data, pkt.len);
	p += used;
	avail -= used;
    }
    MilterBufConsume(out, MilterBufLength(out));
}

/*
 *----------------------------------------------------------------------
 *
 * ForgetOutput --
 *
 *	Forgets the packets kept for the current command.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees the copies.
 *
 *----------------------------------------------------------------------
 */

static void
ForgetOutput(
    Model *m)
{
    int i;

    for (i = 0; i < m->nOut; i++) {
	free(m->out[i].data);
    }
    m->nOut = 0;
}

/*
 * Calls made while an event is out: each mirrors a context command and
 * checks the error class the session gives against the rules:
 * modifications and progress only in EOM and only for granted actions,
 * well-formed headers (folds sent as LF), no empty address or reason;
 * setsymlist only in negotiate, once per stage; setreply validated as
 * libmilter does, and made into a reply Postfix accepts.
 */

/*
 *----------------------------------------------------------------------
 *
 * AppendExpected --
 *
 *	Appends to 'buf' the modification packet the session should send
 *	for a call that succeeded.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows the buffer.
 *
 *----------------------------------------------------------------------
 */

static void
AppendExpected(
    MilterBuf *buf,
    unsigned char cmd,
    int useIndex,
    uint32_t index,
    const MilterStr *strs,
    int count)
{
    unsigned char head[9];
    size_t len = 1 + (useIndex ? 4 : 0);
    int i;

    for (i = 0; i < count; i++) {
	len += strs[i].len + 1;
    }
    MilterWirePut32(head, (uint32_t) len);
    head[4] = cmd;
    MilterWirePut32(head + 5, index);
    MilterBufAppend(buf, head, useIndex ? 9 : 5);
    for (i = 0; i < count; i++) {
	MilterBufAppend(buf, strs[i].ptr, strs[i].len);
	MilterBufAppend(buf, "", 1);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DoModify --
 *
 *	Mirrors a header, envelope or quarantine context command with
 *	script-made strings, and checks the error class the session
 *	gives against the rules.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May queue a modification and its expected packet; aborts on a
 *	violation.
 *
 *----------------------------------------------------------------------
 */

static void
DoModify(
    Model *m)
{
    static const unsigned char cmds[8] = {
	'h', 'i', 'm', 'e', '+', '2', '-', 'q'
    };
    static char bufs[3][2100];
    unsigned char cmd = cmds[Next(m) % 8];
    MilterStr strs[3];
    int count, useIndex = 0, i, isHeader;
    uint32_t index = 0;
    const char *msg = NULL;
    MilterSessionError err, expect;

    switch (cmd) {
    case 'h':
	count = 2;
	break;
    case 'i': case 'm':
	useIndex = 1;
	index = Next32(m);
	count = 2;
	break;
    case 'e': case '2':
	count = 1 + (Next(m) & 1);
	break;
    default:
	count = 1;
	break;
    }
    for (i = 0; i < count; i++) {
	strs[i].len = GenString(m, bufs[i], sizeof(bufs[i]));
	strs[i].ptr = bufs[i];
    }
    isHeader = cmd == 'h' || cmd == 'i' || cmd == 'm';
    if (isHeader && ((strs[0].len ^ strs[1].len) & 1)) {
	/*
	 * Mostly random bytes make bad headers: half the time, make
	 * these good ones (any LF left is a fold, CR LF sometimes).
	 */

	char *name = bufs[0], *value = bufs[1];
	size_t j;

	for (j = 0; j < strs[0].len; j++) {
	    unsigned char c = (unsigned char) name[j];

	    name[j] = (char) (c <= ' ' || c >= 127 || c == ':' ? 'X' : c);
	}
	for (j = 0; j < strs[1].len; j++) {
	    int fold = j + 1 < strs[1].len
		    && (value[j + 1] == ' ' || value[j + 1] == '\t');

	    if (value[j] == '\r') {
		value[j] = ' ';
	    } else if (value[j] == '\n' && !fold) {
		value[j] = ' ';
	    } else if (value[j] == '\n' && j > 0 && (value[j - 1] & 1)) {
		value[j - 1] = '\r';
	    }
	}
	if (strs[0].len == 0) {
	    strs[0].len = 1;
	    name[0] = 'X';
	    name[1] = '\0';
	}
    }
    if (m->currentType != MILTER_EV_EOM) {
	expect = MILTER_ERR_STATE;
    } else if ((m->agreed.actions & ActionOf(cmd)) == 0) {
	expect = MILTER_ERR_ACTION;
    } else if (isHeader
	    && (!RefHeaderName((const unsigned char *) strs[0].ptr,
		    strs[0].len)
	    || !RefHeaderValue((const unsigned char *) strs[1].ptr,
		    strs[1].len, 0))) {
	expect = MILTER_ERR_VALUE;
    } else if (!isHeader && strs[0].len == 0) {
	expect = MILTER_ERR_VALUE;
    } else if (m->peerGone) {
	expect = MILTER_ERR_CLOSED;
    } else {
	expect = MILTER_ERR_NONE;
    }
    err = MilterSessionModify(m->s, cmd, useIndex, index, strs, count, &msg);
    CHECK(err == expect);
    CHECK(err == MILTER_ERR_NONE || msg != NULL);
    if (err == MILTER_ERR_NONE) {
	if (isHeader) {
	    /* On the wire the folds are LF only. */
	    size_t j, n = 0;

	    for (j = 0; j < strs[1].len; j++) {
		if (bufs[1][j] != '\r') {
		    bufs[2][n++] = bufs[1][j];
		}
	    }
	    strs[1].ptr = bufs[2];
	    strs[1].len = n;
	}
	AppendExpected(&m->expMods, cmd, useIndex, index, strs, count);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DoReplaceBody --
 *
 *	Mirrors $ctx replacebody with a piece of the pattern, and checks
 *	the error class.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May queue body data; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
DoReplaceBody(
    Model *m)
{
    size_t len = Next16(m), off = Next(m);
    const char *msg = NULL;
    MilterSessionError err, expect;

    if ((Next(m) & 3) == 0) {
	len *= 4;		/* Up to 262140 bytes: several packets. */
    }
    if (m->currentType != MILTER_EV_EOM) {
	expect = MILTER_ERR_STATE;
    } else if ((m->agreed.actions & SMFIF_CHGBODY) == 0) {
	expect = MILTER_ERR_ACTION;
    } else if (m->peerGone) {
	expect = MILTER_ERR_CLOSED;
    } else {
	expect = MILTER_ERR_NONE;
    }
    err = MilterSessionReplaceBody(m->s, pattern + off, len, &msg);
    CHECK(err == expect);
    CHECK(err == MILTER_ERR_NONE || msg != NULL);
    if (err == MILTER_ERR_NONE) {
	MilterBufAppend(&m->expBody, pattern + off, len);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DoProgress --
 *
 *	Mirrors $ctx progress: a 'p' packet goes out at once, only in
 *	end of message.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May send a packet; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
DoProgress(
    Model *m)
{
    const char *msg = NULL;
    int before = m->nOut;
    MilterSessionError err = MilterSessionProgress(m->s, &msg);

    CHECK(err == (m->currentType != MILTER_EV_EOM ? MILTER_ERR_STATE
	    : m->peerGone ? MILTER_ERR_CLOSED : MILTER_ERR_NONE));
    Collect(m);
    if (err == MILTER_ERR_NONE) {
	m->progressCalls++;
	CHECK(m->nOut == before + 1 && m->out[before].cmd == 'p');
    } else {
	CHECK(msg != NULL);
	CHECK(m->nOut == before);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DoSetReply --
 *
 *	Mirrors $ctx setreply with script-made codes and lines, and
 *	checks that the session validates them as libmilter does and
 *	makes them into a reply Postfix accepts.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May set the model's expected reply text; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
DoSetReply(
    Model *m)
{
    static const char *const rcodes[8] = {
	"550", "451", "421", "250", "5", "5500", "55a", NULL
    };
    static const char *const xcodes[12] = {
	"", "", "5.7.1", "4.2.0", "5.1.10", "2.0.0", "5.7", "5.1234.1",
	"4.7.1x", "55.1.1", "5.1.1.", "4.0.0"
    };
    static char lineBufs[36][1100];
    MilterStr lineStrs[36], *lines = lineStrs, fallback;
    char raw[4];
    const char *rcode = rcodes[Next(m) % 8];
    const char *xcode = xcodes[Next(m) % 12];
    int count = (int) (Next(m) % 36), i, valid = 1;
    const char *msg = NULL;
    MilterSessionError err;
    MilterBuf text;

    if (rcode == NULL) {
	for (i = 0; i < 3; i++) {
	    unsigned c = Next(m);

	    raw[i] = (char) (c == 0 ? '5' : c);
	}
	raw[3] = '\0';
	rcode = raw;
    }
    if (count > 4 && (Next(m) & 7) != 0) {
	count %= 4;		/* Mostly short replies. */
    }
    for (i = 0; i < count; i++) {
	size_t len = Next(m) % 16;

	if (len == 15) {
	    len = 970 + Next(m) % 20;	/* Around the 980-byte limit. */
	    memcpy(lineBufs[i], pattern + Next(m), len);
	} else {
	    size_t j;

	    for (j = 0; j < len; j++) {
		unsigned c = Next(m);

		lineBufs[i][j] = (char) (c == 0 ? '%' : c);
	    }
	}
	lines[i].ptr = lineBufs[i];
	lines[i].len = len;
    }
    if (count > 0 && lines[0].len > 0 && (lineBufs[0][0] & 3) == 0) {
	/*
	 * A text that begins with something like an enhanced code (chosen
	 * by the text itself: no more script bytes are used than before).
	 */

	static const char *const starts[8] = {
	    "5.7.1 ", "4.7.1 ", "5.7 ", "2 ", "5.1.10", "4.0.0x", "9.9.9 ",
	    "5.1234.1 "
	};
	const char *start = starts[(lineBufs[0][0] >> 2) & 7];
	size_t n = strlen(start);

	if (lines[0].len < n) {
	    lines[0].len = n;
	}
	memcpy(lineBufs[0], start, n);
    }

    /*
     * The call, then validity by the rules and the text that should be
     * sent.
     */

    err = MilterSessionSetReply(m->s, rcode, xcode, lines, count, &msg);
    if (strlen(rcode) != 3 || (rcode[0] != '4' && rcode[0] != '5')
	    || rcode[1] < '0' || rcode[1] > '9'
	    || rcode[2] < '0' || rcode[2] > '9') {
	valid = 0;
    } else if (xcode[0] != '\0' && !RefEnhanced(
	    (const unsigned char *) xcode, strlen(xcode), rcode[0])) {
	valid = 0;
    } else if (count > 32) {
	valid = 0;
    }
    for (i = 0; valid && i < count; i++) {
	if (lines[i].len > 980
		|| memchr(lines[i].ptr, '\r', lines[i].len)
		|| memchr(lines[i].ptr, '\n', lines[i].len)) {
	    valid = 0;
	}
    }
    if (valid && (count == 0 || (count == 1 && lines[0].len == 0))) {
	/* No text: the MTAs' own. */
	if (xcode[0] == '\0') {
	    xcode = rcode[0] == '4' ? "4.7.1" : "5.7.1";
	}
	fallback.ptr = rcode[0] == '4'
		? "Service unavailable - try again later" : "Command rejected";
	fallback.len = strlen(fallback.ptr);
	lines = &fallback;
	count = 1;
    } else if (valid && count == 1 && xcode[0] == '\0'
	    && lines[0].ptr[0] >= '0' && lines[0].ptr[0] <= '9') {
	size_t word = 0, j;
	int onlyCode = 1, dots = 0;

	while (word < lines[0].len && lines[0].ptr[word] != ' ') {
	    word++;
	}
	for (j = 0; j < word; j++) {
	    if (lines[0].ptr[j] == '.') {
		dots++;
	    } else if (lines[0].ptr[j] < '0' || lines[0].ptr[j] > '9') {
		onlyCode = 0;
	    }
	}
	if (RefEnhanced((const unsigned char *) lines[0].ptr, word,
		rcode[0])) {
	    /* The text's own code. */
	} else if (onlyCode && dots > 0) {
	    valid = 0;
	} else {
	    xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
	}
    } else if (count > 1 && xcode[0] == '\0') {
	xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
    }
    CHECK(err == (!valid ? MILTER_ERR_VALUE
	    : m->peerGone ? MILTER_ERR_CLOSED : MILTER_ERR_NONE));
    if (err != MILTER_ERR_NONE) {
	CHECK(msg != NULL);
	return;			/* The previous reply stays. */
    }
    MilterBufInit(&text);
    for (i = 0; i < count; i++) {
	size_t j;

	MilterBufAppend(&text, rcode, 3);
	MilterBufAppend(&text, i < count - 1 ? "-" : " ", 1);
	if (xcode[0] != '\0') {
	    MilterBufAppend(&text, xcode, strlen(xcode));
	    MilterBufAppend(&text, " ", 1);
	}
	for (j = 0; j < lines[i].len; j++) {
	    if (lines[i].ptr[j] == '%') {
		MilterBufAppend(&text, "%", 1);
	    }
	    MilterBufAppend(&text, lines[i].ptr + j, 1);
	}
	if (i < count - 1) {
	    MilterBufAppend(&text, "\r\n", 2);
	}
    }
    MilterBufAppend(&text, "", 1);
    free(m->replyText);
    m->replyText = malloc(MilterBufLength(&text));
    memcpy(m->replyText, MilterBufData(&text), MilterBufLength(&text));
    MilterBufFree(&text);
    m->replySetNow = 1;
    if (m->currentType == MILTER_EV_ABORT
	    || m->currentType == MILTER_EV_CLOSE) {
	/*
	 * The message (or session) ends right after these events, and the
	 * reply with it: it must never be sent.
	 */

	free(m->replyText);
	m->replyText = NULL;
	m->replySetNow = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * DoSetSymlist --
 *
 *	Mirrors $ctx setsymlist: only in negotiate, once per stage, only
 *	when the MTA reads symbol lists.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May note the stage's list; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
DoSetSymlist(
    Model *m)
{
    char list[200];
    int stage = (int) (Next(m) % 9) - 1;
    const char *msg = NULL;
    MilterSessionError err, expect;

    GenString(m, list, sizeof(list));
    if (m->currentType != MILTER_EV_NEGOTIATE) {
	expect = MILTER_ERR_STATE;
    } else if (stage < 0 || stage >= SMFIM_COUNT) {
	expect = MILTER_ERR_VALUE;
    } else if ((m->offered.actions & SMFIF_SETSYMLIST) == 0
	    || m->offered.version < 6) {
	expect = MILTER_ERR_ACTION;	/* The MTA would not read them. */
    } else if (m->symlists[stage] != NULL) {
	expect = MILTER_ERR_VALUE;
    } else if (m->peerGone) {
	expect = MILTER_ERR_CLOSED;
    } else {
	expect = MILTER_ERR_NONE;
    }
    err = MilterSessionSetSymlist(m->s, stage, list, &msg);
    CHECK(err == expect);
    CHECK(err == MILTER_ERR_NONE || msg != NULL);
    if (err == MILTER_ERR_NONE) {
	m->symlists[stage] = strdup(list);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckStr --
 *
 *	An event argument must be NUL-terminated with no NUL inside.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckStr(
    const MilterStr *str)
{
    CHECK(str->ptr != NULL);
    CHECK(str->ptr[str->len] == '\0');
    CHECK(memchr(str->ptr, '\0', str->len) == NULL);
}

/*
 *----------------------------------------------------------------------
 *
 * CheckEvent --
 *
 *	The event's arguments must be what the packet carried.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckEvent(
    Model *m,
    const MilterEvent *ev)
{
    const MilterPacket *pkt = m->pkt;
    int i;

    CHECK((unsigned) ev->type < MILTER_EV_COUNT);
    CHECK(m->unionWanted & MILTER_EVBIT(ev->type));
    CHECK(ev->argc >= 0);
    for (i = 0; i < ev->argc; i++) {
	CheckStr(&ev->argv[i]);
    }
    switch (ev->type) {
    case MILTER_EV_NEGOTIATE:
	CHECK(m->cmd == 'O');
	CHECK(ev->argc == 0);
	/* Zero offers mean the version 1 defaults, as in libmilter. */
	CHECK(ev->offered.version == MilterWireGet32(pkt->data));
	CHECK(ev->offered.actions == (m->offered.actions & SMFIF_ALL));
	CHECK(ev->offered.protocol == (m->offered.protocol & SMFIP_ALL));
	break;
    case MILTER_EV_CONNECT: {
	size_t h = strlen((const char *) pkt->data);
	const unsigned char *addr;
	size_t addrLen;

	CHECK(m->cmd == 'C');
	CHECK(ev->argc == 2);
	CHECK(ev->argv[0].len == h);
	CHECK(memcmp(ev->argv[0].ptr, pkt->data, h) == 0);
	CHECK(ev->family == (char) pkt->data[h + 1]);
	if (ev->family == 'U') {
	    CHECK(ev->port == 0 && ev->argv[1].len == 0);
	    break;
	}
	CHECK(ev->port == ((unsigned) pkt->data[h + 2] << 8
		| pkt->data[h + 3]));
	addr = pkt->data + h + 4;
	addrLen = pkt->len - (h + 4) - 1;
	if (ev->family == '6' && addrLen >= 5
		&& strncasecmp((const char *) addr, "IPv6:", 5) == 0) {
	    addr += 5;
	    addrLen -= 5;
	}
	CHECK(ev->argv[1].len == addrLen);
	CHECK(memcmp(ev->argv[1].ptr, addr, addrLen) == 0);
	break;
    }
    case MILTER_EV_HELO:
    case MILTER_EV_UNKNOWN:
    case MILTER_EV_ENVFROM:
    case MILTER_EV_ENVRCPT:
    case MILTER_EV_HEADER: {
	size_t p = 0;

	CHECK(m->cmd == (ev->type == MILTER_EV_HELO ? 'H'
		: ev->type == MILTER_EV_UNKNOWN ? 'U'
		: ev->type == MILTER_EV_ENVFROM ? 'M'
		: ev->type == MILTER_EV_ENVRCPT ? 'R' : 'L'));
	CHECK(ev->argc == CountStrings(pkt->data, pkt->len));
	if (ev->type == MILTER_EV_HEADER) {
	    CHECK(ev->argc == 2);
	} else if (ev->type == MILTER_EV_HELO
		|| ev->type == MILTER_EV_UNKNOWN) {
	    CHECK(ev->argc == 1);
	} else {
	    CHECK(ev->argc >= 1);
	}
	for (i = 0; i < ev->argc; i++) {
	    CHECK(memcmp(ev->argv[i].ptr, pkt->data + p,
		    ev->argv[i].len + 1) == 0);
	    p += ev->argv[i].len + 1;
	}
	CHECK(p == pkt->len);
	break;
    }
    case MILTER_EV_DATA:
	CHECK(m->cmd == 'T' && ev->argc == 0);
	break;
    case MILTER_EV_EOH:
	CHECK(m->cmd == 'N' && ev->argc == 0);
	break;
    case MILTER_EV_BODY:
	CHECK(m->cmd == 'B' || m->cmd == 'E');
	CHECK(ev->argc == 0);
	CHECK(ev->len == pkt->len);
	CHECK(ev->len == 0 || memcmp(ev->data, pkt->data, ev->len) == 0);
	break;
    case MILTER_EV_EOM:
	CHECK(m->cmd == 'E' && ev->argc == 0);
	break;
    case MILTER_EV_ABORT:
    case MILTER_EV_CLOSE:
	CHECK(ev->argc == 0);
	break;
    default:
	break;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Decide --
 *
 *	Answers one event: checks it, records it, makes the extra calls
 *	the script asks for and returns the scripted verdict, restricted
 *	to what the Tcl layer can return for that event.
 *
 * Results:
 *	The verdict, a MILTER_* value.
 *
 * Side effects:
 *	Advances the script; records the event; may change the wanted
 *	events.
 *
 *----------------------------------------------------------------------
 */

static int
Decide(
    Model *m,
    const MilterEvent *ev)
{
    static const int verdicts[8] = {
	MILTER_CONTINUE, MILTER_REJECT, MILTER_DISCARD, MILTER_ACCEPT,
	MILTER_TEMPFAIL, MILTER_SKIP, MILTER_CONTINUE, MILTER_CONTINUE
    };
    unsigned b;
    int verdict, nActs, i;

    CheckEvent(m, ev);
    CHECK(m->nEvents < MAX_EVENTS);
    if (m->negotiated) {
	MilterOptneg opt;

	MilterSessionNegotiated(m->s, &opt);
	CHECK(opt.version == m->agreed.version);
	CHECK(opt.actions == m->agreed.actions);
	CHECK(opt.protocol == m->agreed.protocol);
    }
    if (ev->type == MILTER_EV_CLOSE) {
	CHECK(!m->closeSeen);
	m->closeSeen = 1;
	m->closes++;
	ModelClear(m, 2);	/* The message is over by now. */
    } else if (ev->type != MILTER_EV_ABORT) {
	ApplyOwnClear(m);
    }
    m->currentType = ev->type;

    b = Next(m);
    verdict = verdicts[b & 7];
    if (verdict == MILTER_SKIP && ev->type != MILTER_EV_BODY) {
	verdict = MILTER_CONTINUE;
    }
    nActs = (int) ((b >> 3) & 7);
    Trace("  event %d -> verdict %d, %d calls\n", (int) ev->type, verdict,
	    nActs);
    if ((b >> 6) == 3 && nActs == 7) {
	/*
	 * The MTA hangs up while this event is out (the top bits of the
	 * same byte: the script is read as before).
	 */

	MilterSessionSetPeerGone(m->s);
	m->peerGone = 1;
    }
    for (i = 0; i < nActs; i++) {
	switch (Next(m) % 8) {
	case 0: DoModify(m); break;
	case 1: DoReplaceBody(m); break;
	case 2: DoProgress(m); break;
	case 3: DoSetReply(m); break;
	case 4: DoSetSymlist(m); break;
	case 5: RandomLookup(m); break;
	case 6:
	    m->wanted ^= EV(CLOSE);
	    if (!(m->wanted & EV(CLOSE))) {
		m->closeAlwaysWanted = 0;
	    }
	    m->unionWanted |= m->wanted;
	    MilterSessionSetWanted(m->s, m->wanted);
	    break;
	case 7:
	    /*
	     * What the Tcl layer does when an eom callback fails half-way:
	     * nothing queued so far may reach the MTA.
	     */

	    MilterSessionDiscardModifications(m->s);
	    MilterBufReset(&m->expMods);
	    MilterBufReset(&m->expBody);
	    break;
	}
    }
    Collect(m);
    m->evType[m->nEvents] = ev->type;
    m->evVerdict[m->nEvents] = verdict;
    m->nEvents++;
    m->currentType = (MilterEventType) -1;
    return verdict;
}

/*
 * Expectations: after a packet (or the end) has been processed: the
 * events and output must be what the command calls for.
 */

/*
 *----------------------------------------------------------------------
 *
 * TakeEvent --
 *
 *	Checks that event number *iPtr is 'type' if 'expected' (and
 *	advances), or that it is not.
 *
 * Results:
 *	The verdict given to the event, or -1 when it was not expected.
 *
 * Side effects:
 *	Advances *iPtr; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static int
TakeEvent(
    Model *m,
    int *iPtr,
    int type,
    int expected)
{
    if (!expected) {
	CHECK(*iPtr >= m->nEvents
		|| m->evType[*iPtr] != (MilterEventType) type);
	return -1;
    }
    CHECK(*iPtr < m->nEvents);
    CHECK(m->evType[*iPtr] == (MilterEventType) type);
    return m->evVerdict[(*iPtr)++];
}

/*
 *----------------------------------------------------------------------
 *
 * TakeOptionalClose --
 *
 *	The rest of the events may only be one close.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Advances *iPtr; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
TakeOptionalClose(
    Model *m,
    int *iPtr)
{
    if (*iPtr < m->nEvents) {
	CHECK(m->evType[*iPtr] == MILTER_EV_CLOSE);
	(*iPtr)++;
    }
    CHECK(*iPtr == m->nEvents);
}

/*
 *----------------------------------------------------------------------
 *
 * Matches --
 *
 *	Whether a reply packet answers a verdict letter; a 'y' answers r
 *	or t when its code is of that class.
 *
 * Results:
 *	1 if so, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
Matches(
    const OutPkt *o,
    unsigned char letter)
{
    if (o->cmd == letter) {
	return 1;
    }
    if (o->cmd == 'y' && (letter == 'r' || letter == 't')) {
	return o->data[0] == (letter == 'r' ? '5' : '4');
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * CheckFinal --
 *
 *	Checks a final reply: it matches the letter; a 'y' must be the
 *	text set; a reply set during this packet and of the verdict's
 *	class must be used.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Forgets the used reply text; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckFinal(
    Model *m,
    const OutPkt *o,
    unsigned char letter)
{
    CHECK(Matches(o, letter));
    if (o->cmd == 'y') {
	CHECK(m->replyText != NULL);
	CHECK(o->len == strlen(m->replyText) + 1);
	CHECK(memcmp(o->data, m->replyText, o->len) == 0);
	free(m->replyText);
	m->replyText = NULL;
    } else if ((letter == 'r' || letter == 't') && m->replySetNow
	    && m->replyText != NULL) {
	CHECK(m->replyText[0] != (letter == 'r' ? '5' : '4'));
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckNegotiation --
 *
 *	Checks the answer to OPTNEG: a version no higher than offered,
 *	only offered bits, the symbol lists set; and notes what was
 *	agreed.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets the model's agreed options; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckNegotiation(
    Model *m,
    int closed)
{
    const MilterPacket *pkt = m->pkt;
    int i = 0, v, stage;
    uint32_t offA, offP, a, p, version;
    const OutPkt *o;
    size_t off;
    static const struct {
	int type;
	uint32_t bit;
    } noBits[] = {
	{MILTER_EV_CONNECT, SMFIP_NOCONNECT}, {MILTER_EV_HELO, SMFIP_NOHELO},
	{MILTER_EV_ENVFROM, SMFIP_NOMAIL}, {MILTER_EV_ENVRCPT, SMFIP_NORCPT},
	{MILTER_EV_BODY, SMFIP_NOBODY}, {MILTER_EV_HEADER, SMFIP_NOHDRS},
	{MILTER_EV_EOH, SMFIP_NOEOH}, {MILTER_EV_UNKNOWN, SMFIP_NOUNKNOWN},
	{MILTER_EV_DATA, SMFIP_NODATA}
    };

    if (m->cmd != 'O' || pkt->len < 12 || MilterWireGet32(pkt->data) < 2) {
	CHECK(closed);
	CHECK(m->nOut == 0);
	TakeOptionalClose(m, &i);
	return;
    }
    v = TakeEvent(m, &i, MILTER_EV_NEGOTIATE,
	    (m->wantedAtFeed & EV(NEGOTIATE)) != 0);
    if (v > 0) {
	CHECK(closed);
	CHECK(m->nOut == 0);
	TakeOptionalClose(m, &i);
	return;
    }
    CHECK(i == m->nEvents);
    CHECK(!closed);
    CHECK(m->nOut == 1);
    o = &m->out[0];
    CHECK(o->cmd == 'O');
    version = MilterWireGet32(o->data);
    a = MilterWireGet32(o->data + 4);
    p = MilterWireGet32(o->data + 8);
    offA = m->offered.actions;		/* Zero already made 0x0F. */
    offP = m->offered.protocol;		/* Zero already made 0x3F. */

    /* Version: min(6, offered), never above the MTA's. */
    CHECK(version >= 2 && version <= m->offered.version && version <= 6);
    CHECK(version == (m->offered.version < 6 ? m->offered.version : 6));
    /* Only what was offered: every offered action. */
    CHECK((a & ~offA) == 0);
    CHECK(a == (offA & SMFIF_ALL));
    CHECK((p & ~offP) == 0);
    CHECK((p & ~(uint32_t) SMFIP_ALL) == 0);
    /* Never switch off an event somebody listens to. */
    for (i = 0; i < (int) (sizeof(noBits) / sizeof(noBits[0])); i++) {
	if (m->wantedAtFeed & MILTER_EVBIT(noBits[i].type)) {
	    CHECK((p & noBits[i].bit) == 0);
	} else {
	    CHECK((p & noBits[i].bit) == (offP & noBits[i].bit));
	}
    }
    /* Only the no-reply stages the session handles; SKIP if offered. */
    CHECK((p & (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL
	    | SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN
	    | SMFIP_NR_BODY)) == 0);
    CHECK((p & (SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_SKIP))
	    == (offP & (SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_SKIP)));
    CHECK((p & SMFIP_RCPT_REJ) == 0);
    CHECK(((p & SMFIP_HDR_LEADSPC) != 0)
	    == (m->leadingSpace && (offP & SMFIP_HDR_LEADSPC) != 0));

    /* Macro lists: those set, in stage order, for version 6 only. */
    off = 12;
    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	size_t n;

	if (m->symlists[stage] == NULL || version < 6) {
	    continue;
	}
	n = strlen(m->symlists[stage]);
	CHECK(o->len - off >= 4 + n + 1);
	CHECK(MilterWireGet32(o->data + off) == (uint32_t) stage);
	CHECK(memcmp(o->data + off + 4, m->symlists[stage], n + 1) == 0);
	off += 4 + n + 1;
    }
    CHECK(off == o->len);

    m->negotiated = 1;
    m->agreed.version = version;
    m->agreed.actions = a;
    m->agreed.protocol = p;
}

/*
 *----------------------------------------------------------------------
 *
 * MustClose --
 *
 *	Whether the session has to close the connection for this
 *	command; only the cases that do not need the message position.
 *
 * Results:
 *	1 if it must, 0 if it must not, -1 when it depends on the order
 *	and is not checked.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
MustClose(
    Model *m,
    int wasInMsg)
{
    const MilterPacket *pkt = m->pkt;
    int n;

    switch (m->cmd) {
    case CMD_END: case 'Q': case 'O':
	return 1;
    case 'H': case 'U':
	return CountStrings(pkt->data, pkt->len) != 1;
    case 'M':
	n = CountStrings(pkt->data, pkt->len);
	return n < 1 || n > 64;
    case 'C': {
	MilterConnectInfo info;

	return m->connected || !MilterWireConnect(pkt, &info);
    }
    case 'R': case 'T': case 'L': case 'N': case 'B': case 'E':
	if (!wasInMsg && !(m->agreed.protocol & SMFIP_NOMAIL)) {
	    return 1;
	}
	if (m->cmd == 'R') {
	    n = CountStrings(pkt->data, pkt->len);
	    return n < 1 || n > 64 ? 1 : -1;
	}
	if (m->cmd == 'L') {
	    return CountStrings(pkt->data, pkt->len) != 2 ? 1 : -1;
	}
	return -1;		/* Depends on the order: not checked. */
    case 'A': case 'D': case 'K':
	return 0;
    default:
	return 1;		/* Unknown command. */
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckEom --
 *
 *	Checks the output of end of message: progress, then, for an
 *	accepted message, exactly the queued modifications and the
 *	replaced body last, then the final reply.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckEom(
    Model *m,
    int pendingBefore,
    int skipBefore)
{
    int i = 0, v = -1, letterVerdict, k, sawBody = 0;
    unsigned char letter;
    const OutPkt *final;
    MilterBuf mods;

    if (pendingBefore >= 0) {
	CHECK(m->nEvents == 0);
	letterVerdict = pendingBefore;
    } else {
	int bodyWanted = (m->wantedAtFeed & EV(BODY)) && !skipBefore
		&& m->pkt->len > 0;

	v = TakeEvent(m, &i, MILTER_EV_BODY, bodyWanted);
	if (v >= 0 && v != MILTER_CONTINUE && v != MILTER_SKIP) {
	    letterVerdict = v;
	    TakeEvent(m, &i, MILTER_EV_EOM, 0);
	} else {
	    v = TakeEvent(m, &i, MILTER_EV_EOM,
		    (m->wantedAtFeed & EV(EOM)) != 0);
	    letterVerdict = v >= 0 ? v : MILTER_CONTINUE;
	}
	CHECK(i == m->nEvents);
    }
    letter = Letter(letterVerdict);
    CHECK(letter != 's');
    CHECK(m->nOut >= 1);
    final = &m->out[m->nOut - 1];
    CheckFinal(m, final, letter);

    /* Progress first, then modifications, the body last. */
    for (k = 0; k < m->progressCalls; k++) {
	CHECK(m->out[k].cmd == 'p');
    }
    MilterBufInit(&mods);
    for (; k < m->nOut - 1; k++) {
	const OutPkt *o = &m->out[k];
	unsigned char head[5];

	CHECK(o->cmd != 'p');
	if (o->cmd == 'b') {
	    sawBody = 1;
	    continue;
	}
	CHECK(!sawBody);
	MilterWirePut32(head, (uint32_t) o->len + 1);
	head[4] = o->cmd;
	MilterBufAppend(&mods, head, 5);
	MilterBufAppend(&mods, o->data, o->len);
    }
    if (letter == 'c' || letter == 'a') {
	size_t done = 0;

	CHECK(MilterBufLength(&mods) == MilterBufLength(&m->expMods));
	CHECK(MilterBufLength(&mods) == 0
		|| memcmp(MilterBufData(&mods), MilterBufData(&m->expMods),
		MilterBufLength(&mods)) == 0);
	for (k = m->progressCalls; k < m->nOut - 1; k++) {
	    const OutPkt *o = &m->out[k];

	    if (o->cmd != 'b') {
		continue;
	    }
	    CHECK(done + o->len <= MilterBufLength(&m->expBody));
	    CHECK(o->len == 0 || memcmp(o->data,
		    MilterBufData(&m->expBody) + done, o->len) == 0);
	    done += o->len;
	}
	CHECK(done == MilterBufLength(&m->expBody));
	if (MilterBufLength(&m->expBody) > 0) {
	    CHECK(sawBody);
	}
    } else {
	/* Not accepted: nothing but progress and the reply. */
	CHECK(m->nOut == m->progressCalls + 1);
    }
    MilterBufFree(&mods);
}

/*
 *----------------------------------------------------------------------
 *
 * CheckCommand --
 *
 *	After a packet has been processed: the events and output must be
 *	what the command calls for.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Updates the model's message state; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
CheckCommand(
    Model *m,
    int wasInMsg,
    int pendingBefore,
    int skipBefore,
    int closed)
{
    unsigned char cmd = m->cmd;
    int i = 0, v, own = OwnEvent(cmd), mustClose, abortOwed;
    unsigned char letter;
    int nr = (m->agreed.protocol & NrBit(cmd)) != 0;
    int inMsg = MilterSessionInMessage(m->s);

    /*
     * A message decided by a deferred verdict (pendingBefore) gets no
     * abort: no callback runs for a decided message.
     */

    abortOwed = wasInMsg && pendingBefore < 0
	    && (m->wantedAtFeed & EV(ABORT)) != 0;
    mustClose = MustClose(m, wasInMsg);
    if (mustClose == 1) {
	CHECK(closed);
    } else if (mustClose == 0) {
	CHECK(!closed);
    }
    if (closed) {
	/* A failure, QUIT or the end: no output; abort, then close. */
	CHECK(m->nOut == 0);
	TakeEvent(m, &i, MILTER_EV_ABORT, abortOwed);
	TakeOptionalClose(m, &i);
	return;
    }

    switch (cmd) {
    case 'D':
	CHECK(m->nOut == 0 && m->nEvents == 0);
	return;
    case 'A':
	CHECK(m->nOut == 0);
	TakeEvent(m, &i, MILTER_EV_ABORT, abortOwed);
	CHECK(i == m->nEvents);
	CHECK(!inMsg);
	return;
    case 'K':
	CHECK(m->nOut == 0);
	TakeEvent(m, &i, MILTER_EV_ABORT, abortOwed);
	TakeOptionalClose(m, &i);
	CHECK(!inMsg);
	return;
    case 'E':
	CheckEom(m, pendingBefore, skipBefore);
	CHECK(!inMsg);
	return;
    }

    /* C H M R T U L N B: the replying commands. */
    CHECK(own >= 0);
    if (cmd == 'H' || cmd == 'M') {
	TakeEvent(m, &i, MILTER_EV_ABORT, abortOwed);
    }
    if (IsContentCmd(cmd) && pendingBefore >= 0) {
	v = TakeEvent(m, &i, own, 0);
    } else if (cmd == 'B' && skipBefore) {
	v = TakeEvent(m, &i, own, 0);
    } else {
	v = TakeEvent(m, &i, own,
		(m->wantedAtFeed & MILTER_EVBIT(own)) != 0);
    }
    CHECK(i == m->nEvents);
    if (v == MILTER_SKIP) {
	m->skip = 1;
    }

    if (nr) {
	CHECK(m->nOut == 0);
	if (pendingBefore < 0 && v > 0 && v != MILTER_SKIP) {
	    m->pending = v;
	}
	CHECK(inMsg == (wasInMsg
		|| (Opener(cmd) && (m->agreed.protocol & SMFIP_NOMAIL))));
	return;
    }
    if (IsContentCmd(cmd) && pendingBefore >= 0) {
	letter = Letter(pendingBefore);
    } else if (v == MILTER_SKIP) {
	letter = (m->agreed.protocol & SMFIP_SKIP) ? 's' : 'c';
    } else {
	letter = Letter(v >= 0 ? v : MILTER_CONTINUE);
    }
    CHECK(m->nOut == 1);
    CheckFinal(m, &m->out[0], letter);

    /* Whether a transaction is open now. */
    switch (cmd) {
    case 'M':
	CHECK(inMsg == (letter == 'c'));
	break;
    case 'R':
	CHECK(inMsg == (letter != 'd' && letter != 'a'));
	break;
    case 'T': case 'L': case 'N': case 'B':
	CHECK(inMsg == (letter == 'c' || letter == 's'));
	break;
    case 'H':
	CHECK(!inMsg);
	break;
    default:
	CHECK(inMsg == wasInMsg);
	break;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * Process --
 *
 *	Feeds one packet (pkt != NULL) or ends the connection (pkt ==
 *	NULL), answers the events and checks everything.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes the session and the model; aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
Process(
    Model *m,
    const MilterPacket *pkt)
{
    static const MilterPacket endPkt = {
	CMD_END, (const unsigned char *) "", 0
    };
    int wasClosed = MilterSessionClosed(m->s);
    int wasInMsg = MilterSessionInMessage(m->s);
    int negotiatedBefore = m->negotiated;
    int pendingBefore = m->pending, skipBefore = m->skip;
    int closed, i;
    MilterEvent *ev;

    if (m->varyWanted && pkt != NULL && !wasClosed) {
	unsigned b = Next(m);

	if (b & 0x80) {
	    m->wanted ^= 1u << (b % NUM_EVENTS);
	    if (!(m->wanted & EV(CLOSE))) {
		m->closeAlwaysWanted = 0;
	    }
	}
    }
    MilterSessionSetWanted(m->s, m->wanted);
    m->wantedAtFeed = m->unionWanted = m->wanted;
    m->pkt = pkt != NULL ? pkt : &endPkt;
    m->cmd = m->pkt->cmd;
    m->nEvents = 0;
    m->ownClearDone = 0;
    m->replySetNow = 0;
    m->progressCalls = 0;
    m->currentType = (MilterEventType) -1;
    MilterBufReset(&m->expMods);
    MilterBufReset(&m->expBody);
    ForgetOutput(m);

    Trace("packet '%c' (0x%02x) %zu bytes\n", m->cmd >= 32 && m->cmd < 127
	    ? m->cmd : '?', m->cmd, m->pkt->len);
    if (m->cmd == 'O' && !negotiatedBefore && m->pkt->len >= 12) {
	m->offered.version = MilterWireGet32(m->pkt->data);
	m->offered.actions = MilterWireGet32(m->pkt->data + 4);
	m->offered.protocol = MilterWireGet32(m->pkt->data + 8);
	if (m->offered.actions == 0) {
	    m->offered.actions = 0x0F;
	}
	if (m->offered.protocol == 0) {
	    m->offered.protocol = 0x3F;
	}
    }
    if (m->cmd == 'D' && !wasClosed && negotiatedBefore) {
	ModelStoreMacros(m, m->pkt);
    }
    ev = pkt != NULL ? MilterSessionFeed(m->s, pkt) : MilterSessionEnd(m->s);
    Collect(m);
    while (ev != NULL) {
	int verdict = Decide(m, ev);

	ev = MilterSessionResume(m->s, verdict);
	Collect(m);
    }
    closed = MilterSessionClosed(m->s);
    {
	const char *problem = MilterSessionProblem(m->s);

	if (problem != NULL) {
	    CHECK(strlen(problem) < 160);
	    Trace("  problem: %s\n", problem);
	}
	CHECK(MilterSessionProblem(m->s) == NULL);	/* Forgotten. */
    }

    if (wasClosed) {
	/* After the close: silence. */
	CHECK(closed);
	CHECK(m->nEvents == 0);
	CHECK(m->nOut == 0);
	return;
    }
    if (!negotiatedBefore) {
	if (pkt == NULL) {
	    CHECK(closed && m->nOut == 0);
	    i = 0;
	    TakeOptionalClose(m, &i);
	} else {
	    CheckNegotiation(m, closed);
	}
    } else {
	CheckCommand(m, wasInMsg, pendingBefore, skipBefore, closed);
    }

    /*
     * Bring the model up to date for what the command did.
     */

    if (closed) {
	ModelClear(m, 0);
	m->pending = -1;
	m->skip = 0;
	return;
    }
    if (!m->ownClearDone && OwnEvent(m->cmd) >= 0) {
	ApplyOwnClear(m);
    }
    if (m->cmd == 'C') {
	m->connected = 1;
    }
    if (m->cmd == 'K') {
	ModelClear(m, 0);
	m->sessions++;
	m->closeSeen = 0;
	m->connected = 0;
	free(m->replyText);
	m->replyText = NULL;
    }
    if (m->cmd == 'A' || m->cmd == 'E'
	    || (!MilterSessionInMessage(m->s) && (wasInMsg || m->cmd == 'M'
	    || (Opener(m->cmd) && (m->agreed.protocol & SMFIP_NOMAIL))))) {
	/* The message ended. */
	ModelClear(m, 2);
    }
    if (!MilterSessionInMessage(m->s) || m->cmd == 'M' || m->cmd == 'H') {
	/* No transaction, or a new one. */
	m->pending = -1;
	m->skip = 0;
    }
    if (m->lookupBetween && negotiatedBefore) {
	RandomLookup(m);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * LLVMFuzzerTestOneInput --
 *
 *	The fuzz target: reads the stream in chunks into an input buffer
 *	and frames it as unix/milterConn.c does; a bad length ends the
 *	connection.
 *
 * Results:
 *	Always 0.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

int
LLVMFuzzerTestOneInput(
    const unsigned char *data,
    size_t size)
{
    Model model, *m = &model;
    MilterBuf in;
    size_t maxData, chunk, scriptLen, streamLen, fed = 0;
    const unsigned char *stream;
    int stage;

    if (size < HEADER_LEN) {
	return 0;
    }
    InitPattern();
    memset(m, 0, sizeof(*m));
    maxData = maxDataTable[data[0] & 7];
    chunk = chunkTable[(data[0] >> 3) & 7];
    m->leadingSpace = (data[0] >> 6) & 1;
    m->varyWanted = (data[0] >> 7) & 1;
    m->wanted = (((unsigned) data[1] << 8) | data[2]) & ALL_EVENTS;
    m->closeAlwaysWanted = (m->wanted & EV(CLOSE)) != 0;
    m->lookupBetween = data[3] & 1;
    scriptLen = ((size_t) data[4] << 8) | data[5];
    if (scriptLen > size - HEADER_LEN) {
	scriptLen = size - HEADER_LEN;
    }
    streamLen = size - HEADER_LEN - scriptLen;
    stream = data + HEADER_LEN;
    m->script = stream + streamLen;
    m->scriptLen = scriptLen;
    m->pending = -1;
    m->sessions = 1;
    MilterBufInit(&m->expMods);
    MilterBufInit(&m->expBody);
    MilterBufInit(&in);

    m->s = MilterSessionNew(maxData);
    MilterSessionSetLeadingSpace(m->s, m->leadingSpace);

    for (;;) {
	MilterPacket pkt;
	size_t used;
	MilterFrameResult res = in.bytes == NULL ? MILTER_FRAME_SHORT
		: MilterWireFrame(MilterBufData(&in), MilterBufLength(&in),
		maxData, &pkt, &used);

	if (res == MILTER_FRAME_OK) {
	    /*
	     * An exact-size copy of the payload, so AddressSanitizer sees
	     * any read past it; freed at once, so it also sees any pointer
	     * the session kept into it.
	     */

	    unsigned char *copy = malloc(pkt.len);
	    MilterPacket cp;

	    CHECK(pkt.len <= maxData && used == pkt.len + 5);
	    if (pkt.len > 0) {
		memcpy(copy, pkt.data, pkt.len);
	    }
	    cp.cmd = pkt.cmd;
	    cp.data = copy;
	    cp.len = pkt.len;
	    Process(m, &cp);
	    free(copy);
	    MilterBufConsume(&in, used);
	    continue;
	}
	if (res != MILTER_FRAME_SHORT || fed == streamLen) {
	    break;		/* Bad length or end of input: EOF. */
	}
	{
	    size_t n = streamLen - fed < chunk ? streamLen - fed : chunk;

	    MilterBufAppend(&in, stream + fed, n);
	    fed += n;
	}
    }

    /*
     * End of the connection, twice: the second must do nothing.
     */

    Process(m, NULL);
    CHECK(MilterSessionClosed(m->s));
    Process(m, NULL);
    CHECK(m->closes <= m->sessions);
    if (m->closeAlwaysWanted) {
	CHECK(m->closes == m->sessions);
    }

    MilterSessionFree(m->s);
    MilterBufFree(&in);
    MilterBufFree(&m->expMods);
    MilterBufFree(&m->expBody);
    ForgetOutput(m);
    free(m->out);
    free(m->replyText);
    ModelClear(m, 0);
    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	free(m->symlists[stage]);
    }
    return 0;
}
