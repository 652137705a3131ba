/*
 * milterCapture.c --
 *
 *	Capture of sessions (milter configure -capture): the packets the
 *	MTA sends and the replies the milter sends back, decoded with the
 *	wire codec into one text line each, buffered per session in memory
 *	(bounded by -capturesize) and written to a file of its own in the
 *	capture directory when the session ends, if the session is still
 *	to be captured then ($ctx capture). The format is documented in
 *	doc/tclmilter.n, section CAPTURE; every line is a Tcl list whose
 *	elements are strings of characters U+0000 to U+00FF, one per byte.
 *
 *	No Tcl here: the network thread (or whichever thread holds the
 *	connection's lock) calls these functions, with that lock held.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Bytes kept free at the end of a capture for its last two lines (the
 * "truncated" and "end" lines), so that a file never exceeds its limit.
 */

#define CAPTURE_RESERVE	64

/*
 * Masked local parts (-capturemask): "m" and eight hexadecimal digits of
 * a 64-bit FNV-1a hash (its offset basis and prime).
 */

#define MASK_TAG_SIZE	16
#define FNV_OFFSET	14695981039346656037ULL
#define FNV_PRIME	1099511628211ULL

/*
 * The first element of a capture file's first line, and the version of
 * the format.
 */

#define CAPTURE_FORMAT	"tclmilter-capture"
#define CAPTURE_VERSION	1

/*
 * The milter's answer to SMFIC_OPTNEG has the same command byte; its
 * payload begins with three 32-bit numbers (version, actions, protocol).
 */

#define SMFIR_OPTNEG	SMFIC_OPTNEG
#define OPTNEG_FIXED	12

/*
 * One session's capture. Owned by its connection and touched only with
 * the connection's lock held.
 */

struct MilterCapture {
    MilterBuf text;		/* The file's contents so far. */
    MilterBuf line;		/* The line being built. */
    char *dir;			/* Where the file goes. */
    size_t limit;		/* -capturesize: most bytes in the file. */
    size_t bodyLimit;		/* -capturebody: body bytes kept per
				 * message. */
    size_t bodyKept;		/* Body bytes kept of this message. */
    size_t replKept;		/* Replacement body bytes kept of this
				 * message. */
    int mask;			/* -capturemask: hide local parts. */
    int on;			/* Write the file at the end. */
    int full;			/* The limit was reached. */
    uint64_t salt;		/* Makes the masks of one file its own. */
    int64_t born;		/* Monotonic ms of the session's start. */
    time_t started;		/* Wall clock of the same, for the name. */
    unsigned long id;		/* The connection's number. */
};

/*
 *----------------------------------------------------------------------
 *
 * AppendElement --
 *
 *	Appends one list element to the line being built, preceded by a
 *	space unless it is the first: bare when that is safe, in braces
 *	when the bytes are printable ASCII without backslashes and with
 *	balanced braces, else with every other byte written as a backslash
 *	escape (\n, \r, \t or \xHH), so that the file is ASCII and every
 *	line parses as a Tcl list whose elements hold one character per
 *	byte.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static void
AppendElement(
    MilterCapture *capPtr,
    const void *data,
    size_t len)
{
    const unsigned char *s = data;
    MilterBuf *b = &capPtr->line;
    int plain = 1, quote = 0, depth = 0;
    size_t i;
    char hex[5];

    if (MilterBufLength(b) > 0) {
	MilterBufAppend(b, " ", 1);
    }
    if (len == 0) {
	MilterBufAppend(b, "{}", 2);
	return;
    }
    for (i = 0; i < len; i++) {
	unsigned char c = s[i];

	if (c < 0x20 || c >= 0x7f || c == '\\') {
	    plain = 0;
	} else if (c == '{') {
	    depth++;
	    quote = 1;
	} else if (c == '}') {
	    if (--depth < 0) {
		plain = 0;
	    }
	    quote = 1;
	} else if (c == ' ' || c == '"' || c == '[' || c == ']' || c == '$'
		|| c == ';' || (i == 0 && c == '#')) {
	    quote = 1;
	}
    }
    if (depth != 0) {
	plain = 0;
    }
    if (plain) {
	if (quote) {
	    MilterBufAppend(b, "{", 1);
	}
	MilterBufAppend(b, s, len);
	if (quote) {
	    MilterBufAppend(b, "}", 1);
	}
	return;
    }
    for (i = 0; i < len; i++) {
	unsigned char c = s[i];

	if (c == '\n') {
	    MilterBufAppend(b, "\\n", 2);
	} else if (c == '\r') {
	    MilterBufAppend(b, "\\r", 2);
	} else if (c == '\t') {
	    MilterBufAppend(b, "\\t", 2);
	} else if (c <= 0x20 || c >= 0x7f || strchr("{}\\\"[]$;", c) != NULL
		|| (i == 0 && c == '#')) {
	    snprintf(hex, sizeof(hex), "\\x%02x", c);
	    MilterBufAppend(b, hex, 4);
	} else {
	    MilterBufAppend(b, &c, 1);
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * AppendWord --
 *
 *	Appends a C string as one element.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static void
AppendWord(
    MilterCapture *capPtr,
    const char *word)
{
    AppendElement(capPtr, word, strlen(word));
}

/*
 *----------------------------------------------------------------------
 *
 * AppendNumber --
 *
 *	Appends a number, decimal or (hex) hexadecimal with 0x, as one
 *	element.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static void
AppendNumber(
    MilterCapture *capPtr,
    unsigned long long value,
    int hex)
{
    char num[32];

    snprintf(num, sizeof(num), hex ? "0x%llx" : "%llu", value);
    AppendWord(capPtr, num);
}

/*
 *----------------------------------------------------------------------
 *
 * MaskStop --
 *
 *	Whether a byte ends the local part of an address, looking back
 *	from its "@".
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
MaskStop(
    unsigned char c)
{
    return c <= ' ' || c >= 0x7f || strchr("<>:,;\"()[]", c) != NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * MaskHash --
 *
 *	What a local part masks to: 32 bits of a 64-bit FNV-1a hash of the
 *	capture's salt, then of the local part.
 *
 * Results:
 *	The hash.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static unsigned
MaskHash(
    uint64_t salt,		/* The capture's own. */
    const unsigned char *part,	/* The local part. */
    size_t len)
{
    uint64_t hash = FNV_OFFSET;
    size_t k;

    for (k = 0; k < sizeof(salt); k++) {
	hash = (hash ^ ((salt >> (8 * k)) & 0xff)) * FNV_PRIME;
    }
    for (k = 0; k < len; k++) {
	hash = (hash ^ part[k]) * FNV_PRIME;
    }
    return (unsigned) ((hash >> 32) ^ hash);
}

/*
 *----------------------------------------------------------------------
 *
 * AppendText --
 *
 *	Appends one string element; with -capturemask, the local part of
 *	every address in it (the bytes before an "@" back to a space,
 *	angle bracket, colon, comma, semicolon, quote or parenthesis) is
 *	replaced by "m" and eight hexadecimal digits of a hash of it and of
 *	the capture's salt, so that one address masks the same way all
 *	through one file and differently in another.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static void
AppendText(
    MilterCapture *capPtr,
    const void *data,
    size_t len)
{
    const unsigned char *s = data;
    MilterBuf masked;
    size_t i, j, done = 0;

    if (!capPtr->mask || memchr(s, '@', len) == NULL) {
	AppendElement(capPtr, s, len);
	return;
    }
    MilterBufInit(&masked);
    for (i = 0; i < len; i++) {
	char tag[MASK_TAG_SIZE];

	if (s[i] != '@') {
	    continue;
	}
	for (j = i; j > done && !MaskStop(s[j - 1]); j--) {
	    /* Back to the start of the local part. */
	}
	if (j == i) {
	    continue;
	}
	snprintf(tag, sizeof(tag), "m%08x", MaskHash(capPtr->salt, s + j,
		i - j));
	MilterBufAppend(&masked, s + done, j - done);
	MilterBufAppend(&masked, tag, strlen(tag));
	done = i;
    }
    MilterBufAppend(&masked, s + done, len - done);
    AppendElement(capPtr, MilterBufData(&masked), MilterBufLength(&masked));
    MilterBufFree(&masked);
}

/*
 *----------------------------------------------------------------------
 *
 * AppendStrings --
 *
 *	Appends the NUL-terminated strings of a payload from 'offset' on,
 *	each as an element (AppendText).
 *
 * Results:
 *	The number of strings appended, or -1 (with nothing appended) when
 *	the payload does not end in a NUL.
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static int
AppendStrings(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr,
    size_t offset)
{
    const unsigned char *p = pktPtr->data + offset;
    const unsigned char *end = pktPtr->data + pktPtr->len;
    int count = 0;

    if (offset > pktPtr->len
	    || (pktPtr->len > offset && end[-1] != '\0')) {
	return -1;
    }
    while (p < end) {
	const unsigned char *nul = memchr(p, '\0', (size_t) (end - p));

	AppendText(capPtr, p, (size_t) (nul - p));
	p = nul + 1;
	count++;
    }
    return count;
}

/*
 *----------------------------------------------------------------------
 *
 * Strings --
 *
 *	AppendStrings, with the number of strings the packet must hold.
 *
 * Results:
 *	1 if the payload holds from min to max strings, else 0 (the line
 *	may hold some words).
 *
 * Side effects:
 *	Appends to capPtr->line.
 *
 *----------------------------------------------------------------------
 */

static int
Strings(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr,
    size_t offset,
    int min,
    int max)
{
    int count = AppendStrings(capPtr, pktPtr, offset);

    return count >= min && count <= max;
}

/*
 *----------------------------------------------------------------------
 *
 * AppendBody --
 *
 *	Appends the length of a body chunk, then as much of it as the
 *	message's allowance (-capturebody) still has room for.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to capPtr->line; counts the bytes kept in *keptPtr.
 *
 *----------------------------------------------------------------------
 */

static void
AppendBody(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr,
    size_t *keptPtr)
{
    size_t room = capPtr->bodyLimit > *keptPtr
	    ? capPtr->bodyLimit - *keptPtr : 0;
    size_t keep = pktPtr->len < room ? pktPtr->len : room;

    AppendNumber(capPtr, pktPtr->len, 0);
    AppendElement(capPtr, pktPtr->data, keep);
    *keptPtr += keep;
}

/*
 *----------------------------------------------------------------------
 *
 * StartLine --
 *
 *	Begins a line with its time (milliseconds since the session began)
 *	and side (NULL for none).
 *
 * Results:
 *	0 when nothing more is recorded (the limit was reached), else 1.
 *
 * Side effects:
 *	Appends to the capture.
 *
 *----------------------------------------------------------------------
 */

static int
StartLine(
    MilterCapture *capPtr,
    int64_t now,
    const char *side)
{
    if (capPtr->full) {
	return 0;
    }
    MilterBufReset(&capPtr->line);
    AppendNumber(capPtr, (unsigned long long) (now > capPtr->born
	    ? now - capPtr->born : 0), 0);
    if (side != NULL) {
	AppendWord(capPtr, side);
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * EndLine --
 *
 *	Ends a line: it joins the file if it fits under the limit with room
 *	for the last lines, else the file gets a "truncated" line and
 *	records nothing more but its "end" line.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends to the capture.
 *
 *----------------------------------------------------------------------
 */

static void
EndLine(
    MilterCapture *capPtr,
    int64_t now)
{
    MilterBufAppend(&capPtr->line, "\n", 1);
    if (MilterBufLength(&capPtr->text) + MilterBufLength(&capPtr->line)
	    + CAPTURE_RESERVE > capPtr->limit) {
	StartLine(capPtr, now, NULL);
	AppendWord(capPtr, "truncated");
	MilterBufAppend(&capPtr->line, "\n", 1);
	capPtr->full = 1;
    }
    MilterBufAppendBuf(&capPtr->text, &capPtr->line);
    MilterBufReset(&capPtr->line);
    MilterBufTrim(&capPtr->line, 4096);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureNew --
 *
 *	A capture for a new session, started with its header line.
 *
 * Results:
 *	The capture.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

MilterCapture *
MilterCaptureNew(
    const MilterServerConfig *cfg,
    const char *listenSpec,	/* The address the milter listens on. */
    unsigned long id,
    int64_t now)		/* Monotonic ms. */
{
    MilterCapture *capPtr = MilterAlloc(sizeof(MilterCapture));
    struct timespec ts;

    memset(capPtr, 0, sizeof(MilterCapture));
    MilterBufInit(&capPtr->text);
    MilterBufInit(&capPtr->line);
    capPtr->dir = MilterStrdup(cfg->captureDir, strlen(cfg->captureDir));
    capPtr->limit = cfg->captureSize;
    capPtr->bodyLimit = cfg->captureBody;
    capPtr->mask = cfg->captureMask;
    capPtr->on = cfg->captureAll;
    capPtr->born = now;
    capPtr->id = id;
    clock_gettime(CLOCK_REALTIME, &ts);
    capPtr->started = ts.tv_sec;
    if (getrandom(&capPtr->salt, sizeof(capPtr->salt), GRND_NONBLOCK)
	    != (ssize_t) sizeof(capPtr->salt)) {
	capPtr->salt = ((uint64_t) ts.tv_nsec << 20) ^ (uint64_t) ts.tv_sec
		^ ((uint64_t) id * 0x9e3779b97f4a7c15ULL)
		^ (uint64_t) (uintptr_t) capPtr;
    }

    StartLine(capPtr, now, NULL);
    MilterBufReset(&capPtr->line);
    AppendWord(capPtr, CAPTURE_FORMAT);
    AppendNumber(capPtr, CAPTURE_VERSION, 0);
    AppendWord(capPtr, "start");
    AppendNumber(capPtr, (unsigned long long) ts.tv_sec * 1000
	    + (unsigned long long) ts.tv_nsec / 1000000, 0);
    AppendWord(capPtr, "version");
    AppendWord(capPtr, PACKAGE_VERSION);
    AppendWord(capPtr, "connection");
    AppendNumber(capPtr, id, 0);
    AppendWord(capPtr, "listen");
    AppendWord(capPtr, listenSpec != NULL ? listenSpec : "");
    AppendWord(capPtr, "mask");
    AppendNumber(capPtr, (unsigned) capPtr->mask, 0);
    AppendWord(capPtr, "body");
    AppendNumber(capPtr, capPtr->bodyLimit, 0);
    AppendWord(capPtr, "size");
    AppendNumber(capPtr, capPtr->limit, 0);
    EndLine(capPtr, now);
    return capPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureSet --
 *
 *	Sets whether the session's file is to be written at its end
 *	($ctx capture boolean).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Changes it.
 *
 *----------------------------------------------------------------------
 */

void
MilterCaptureSet(
    MilterCapture *capPtr,
    int on)
{
    capPtr->on = (on != 0);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureGet --
 *
 *	Whether the session's file is to be written at its end.
 *
 * Results:
 *	Boolean.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterCaptureGet(
    MilterCapture *capPtr)
{
    return capPtr->on;
}

/*
 *----------------------------------------------------------------------
 *
 * MacroStage --
 *
 *	The name of the stage a macro packet's command letter stands for.
 *
 * Results:
 *	A static string, or NULL for a letter no command has.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static const char *
MacroStage(
    unsigned char letter)
{
    switch (letter) {
    case SMFIC_CONNECT:	return "connect";
    case SMFIC_HELO:	return "helo";
    case SMFIC_MAIL:	return "envfrom";
    case SMFIC_RCPT:	return "envrcpt";
    case SMFIC_DATA:	return "data";
    case SMFIC_HEADER:	return "header";
    case SMFIC_EOH:	return "eoh";
    case SMFIC_BODY:	return "body";
    case SMFIC_BODYEOB:	return "eom";
    case SMFIC_UNKNOWN:	return "unknown";
    default:		return NULL;
    }
}

/*
 * The packets whose payload has a simple shape: nothing, some strings
 * (after a 32-bit index for the header changes), or body bytes. OPTNEG,
 * MACRO and CONNECT have their own code (MtaSpecialPacket,
 * MilterSpecialPacket). One table for each side: the command bytes of
 * the MTA and of the milter overlap.
 */

typedef enum PacketShape {
    SHAPE_EMPTY,		/* No payload. */
    SHAPE_STRINGS,		/* min to max NUL-terminated strings. */
    SHAPE_INDEXED,		/* A 32-bit index, then such strings. */
    SHAPE_BODY,			/* Body bytes (BODY, REPLBODY). */
    SHAPE_EOM			/* Body bytes, or none (BODYEOB). */
} PacketShape;

typedef struct PacketKind {
    unsigned char cmd;		/* SMFIC_* or SMFIR_* */
    const char *word;		/* Its kind in the capture. */
    PacketShape shape;
    int min, max;		/* SHAPE_STRINGS, SHAPE_INDEXED: how many
				 * strings. */
} PacketKind;

static const PacketKind mtaPackets[] = {
    {SMFIC_HELO,	"helo",		SHAPE_STRINGS,	1, 1},
    {SMFIC_MAIL,	"envfrom",	SHAPE_STRINGS,	1, INT_MAX},
    {SMFIC_RCPT,	"envrcpt",	SHAPE_STRINGS,	1, INT_MAX},
    {SMFIC_DATA,	"data",		SHAPE_EMPTY,	0, 0},
    {SMFIC_HEADER,	"header",	SHAPE_STRINGS,	2, 2},
    {SMFIC_EOH,		"eoh",		SHAPE_EMPTY,	0, 0},
    {SMFIC_BODY,	"body",		SHAPE_BODY,	0, 0},
    {SMFIC_BODYEOB,	"eom",		SHAPE_EOM,	0, 0},
    {SMFIC_ABORT,	"abort",	SHAPE_EMPTY,	0, 0},
    {SMFIC_QUIT,	"quit",		SHAPE_EMPTY,	0, 0},
    {SMFIC_QUIT_NC,	"quitnc",	SHAPE_EMPTY,	0, 0},
    {SMFIC_UNKNOWN,	"unknown",	SHAPE_STRINGS,	1, 1},
    {0, NULL, SHAPE_EMPTY, 0, 0}
};

static const PacketKind milterPackets[] = {
    {SMFIR_CONTINUE,	"continue",	SHAPE_EMPTY,	0, 0},
    {SMFIR_ACCEPT,	"accept",	SHAPE_EMPTY,	0, 0},
    {SMFIR_REJECT,	"reject",	SHAPE_EMPTY,	0, 0},
    {SMFIR_TEMPFAIL,	"tempfail",	SHAPE_EMPTY,	0, 0},
    {SMFIR_DISCARD,	"discard",	SHAPE_EMPTY,	0, 0},
    {SMFIR_SKIP,	"skip",		SHAPE_EMPTY,	0, 0},
    {SMFIR_PROGRESS,	"progress",	SHAPE_EMPTY,	0, 0},
    {SMFIR_SHUTDOWN,	"shutdown",	SHAPE_EMPTY,	0, 0},
    {SMFIR_CONN_FAIL,	"connfail",	SHAPE_EMPTY,	0, 0},
    {SMFIR_REPLYCODE,	"replycode",	SHAPE_STRINGS,	1, 1},
    {SMFIR_ADDHEADER,	"addheader",	SHAPE_STRINGS,	2, 2},
    {SMFIR_INSHEADER,	"insheader",	SHAPE_INDEXED,	2, 2},
    {SMFIR_CHGHEADER,	"chgheader",	SHAPE_INDEXED,	2, 2},
    {SMFIR_ADDRCPT,	"addrcpt",	SHAPE_STRINGS,	1, 1},
    {SMFIR_ADDRCPT_PAR,	"addrcpt_par",	SHAPE_STRINGS,	1, 2},
    {SMFIR_DELRCPT,	"delrcpt",	SHAPE_STRINGS,	1, 1},
    {SMFIR_CHGFROM,	"chgfrom",	SHAPE_STRINGS,	1, 2},
    {SMFIR_QUARANTINE,	"quarantine",	SHAPE_STRINGS,	1, 1},
    {SMFIR_REPLBODY,	"replacebody",	SHAPE_BODY,	0, 0},
    {0, NULL, SHAPE_EMPTY, 0, 0}
};

/*
 *----------------------------------------------------------------------
 *
 * FindKind --
 *
 *	The entry of a packet's command in a table of packet kinds.
 *
 * Results:
 *	The entry, or NULL when the table has none.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static const PacketKind *
FindKind(
    const PacketKind *table,	/* mtaPackets or milterPackets. */
    unsigned char cmd)
{
    for (; table->word != NULL; table++) {
	if (table->cmd == cmd) {
	    return table;
	}
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * KindWords --
 *
 *	Appends the words of a packet of a simple shape: its kind, then its
 *	arguments as the shape says.
 *
 * Results:
 *	1, or 0 (the line may hold some words) when the payload does not
 *	have that shape.
 *
 * Side effects:
 *	Appends to the line; counts body bytes kept in *keptPtr.
 *
 *----------------------------------------------------------------------
 */

static int
KindWords(
    MilterCapture *capPtr,
    const PacketKind *kindPtr,
    const MilterPacket *pktPtr,
    size_t *keptPtr)		/* Body bytes kept of this message. */
{
    AppendWord(capPtr, kindPtr->word);
    switch (kindPtr->shape) {
    case SHAPE_EMPTY:
	return pktPtr->len == 0;
    case SHAPE_STRINGS:
	return Strings(capPtr, pktPtr, 0, kindPtr->min, kindPtr->max);
    case SHAPE_INDEXED:
	if (pktPtr->len < 4) {
	    return 0;
	}
	AppendNumber(capPtr, MilterWireGet32(pktPtr->data), 0);
	return Strings(capPtr, pktPtr, 4, kindPtr->min, kindPtr->max);
    case SHAPE_EOM:
	if (pktPtr->len == 0) {
	    return 1;
	}
	/* FALLTHRU */
    case SHAPE_BODY:
	AppendBody(capPtr, pktPtr, keptPtr);
	return 1;
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * MtaSpecialPacket --
 *
 *	Appends the words of an OPTNEG, MACRO or CONNECT packet to the line
 *	(doc/tclmilter.n, CAPTURE).
 *
 * Results:
 *	1, or 0 (the line may hold some words) when the payload does not
 *	decode or the command is none of them.
 *
 * Side effects:
 *	Appends to the line.
 *
 *----------------------------------------------------------------------
 */

static int
MtaSpecialPacket(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr)
{
    MilterOptneg opt;
    MilterConnectInfo info;
    const char *stage;
    char port[16];
    int count;

    switch (pktPtr->cmd) {
    case SMFIC_OPTNEG:
	if (!MilterWireOptneg(pktPtr, &opt)) {
	    return 0;
	}
	AppendWord(capPtr, "optneg");
	AppendNumber(capPtr, opt.version, 0);
	AppendNumber(capPtr, opt.actions, 1);
	AppendNumber(capPtr, opt.protocol, 1);
	return 1;
    case SMFIC_MACRO:
	if (pktPtr->len < 1
		|| (stage = MacroStage(pktPtr->data[0])) == NULL) {
	    return 0;
	}
	AppendWord(capPtr, "macros");
	AppendWord(capPtr, stage);
	count = AppendStrings(capPtr, pktPtr, 1);
	return count >= 0 && count % 2 == 0;
    case SMFIC_CONNECT:
	if (!MilterWireConnect(pktPtr, &info)) {
	    return 0;
	}
	AppendWord(capPtr, "connect");
	AppendElement(capPtr, info.hostname.ptr, info.hostname.len);
	AppendWord(capPtr, info.family == '4' ? "inet"
		: info.family == '6' ? "inet6"
		: info.family == 'L' ? "unix" : "unknown");
	snprintf(port, sizeof(port), "%u", info.port);
	AppendWord(capPtr, port);
	AppendElement(capPtr, info.address.ptr, info.address.len);
	return 1;
    default:
	return 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MtaPacket --
 *
 *	Appends the words of one MTA packet to the line: its kind and
 *	arguments (doc/tclmilter.n, CAPTURE).
 *
 * Results:
 *	1, or 0 (the line may hold some words) when the payload does not
 *	decode: the caller then writes it as a "raw" line.
 *
 * Side effects:
 *	Appends to the line; counts body bytes kept.
 *
 *----------------------------------------------------------------------
 */

static int
MtaPacket(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr)
{
    const PacketKind *kindPtr = FindKind(mtaPackets, pktPtr->cmd);

    if (kindPtr == NULL) {
	return MtaSpecialPacket(capPtr, pktPtr);
    }
    if (pktPtr->cmd == SMFIC_MAIL) {
	capPtr->bodyKept = capPtr->replKept = 0;	/* A new message. */
    }
    return KindWords(capPtr, kindPtr, pktPtr, &capPtr->bodyKept);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureMta --
 *
 *	Records one packet the MTA sent.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends a line to the capture (unless it is full).
 *
 *----------------------------------------------------------------------
 */

void
MilterCaptureMta(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr,
    int64_t now)
{
    char cmd = (char) pktPtr->cmd;

    if (!StartLine(capPtr, now, "mta")) {
	return;
    }
    if (!MtaPacket(capPtr, pktPtr)) {
	StartLine(capPtr, now, "mta");
	AppendWord(capPtr, "raw");
	AppendElement(capPtr, &cmd, 1);
	AppendElement(capPtr, pktPtr->data, pktPtr->len);
    }
    EndLine(capPtr, now);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterOptnegWords --
 *
 *	Appends the words of the milter's OPTNEG reply: version, actions,
 *	protocol, then each macro list it asks for (stage number, list).
 *
 * Results:
 *	1, or 0 when the payload does not decode.
 *
 * Side effects:
 *	Appends to the line.
 *
 *----------------------------------------------------------------------
 */

static int
MilterOptnegWords(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr)
{
    MilterOptneg opt;
    size_t at;

    if (!MilterWireOptneg(pktPtr, &opt)) {
	return 0;
    }
    AppendWord(capPtr, "optneg");
    AppendNumber(capPtr, opt.version, 0);
    AppendNumber(capPtr, opt.actions, 1);
    AppendNumber(capPtr, opt.protocol, 1);
    for (at = OPTNEG_FIXED; at + 4 < pktPtr->len; ) {
	const unsigned char *p = pktPtr->data + at + 4;
	const unsigned char *nul = memchr(p, '\0', pktPtr->len - at - 4);

	if (nul == NULL) {
	    return 0;
	}
	AppendNumber(capPtr, MilterWireGet32(pktPtr->data + at), 0);
	AppendElement(capPtr, p, (size_t) (nul - p));
	at = (size_t) (nul - pktPtr->data) + 1;
    }
    return at == pktPtr->len || pktPtr->len == OPTNEG_FIXED;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterPacketWords --
 *
 *	Appends the words of one packet the milter sent.
 *
 * Results:
 *	1, or 0 when the payload does not decode (see MtaPacket).
 *
 * Side effects:
 *	Appends to the line.
 *
 *----------------------------------------------------------------------
 */

static int
MilterPacketWords(
    MilterCapture *capPtr,
    const MilterPacket *pktPtr)
{
    const PacketKind *kindPtr = FindKind(milterPackets, pktPtr->cmd);

    if (kindPtr != NULL) {
	return KindWords(capPtr, kindPtr, pktPtr, &capPtr->replKept);
    }
    if (pktPtr->cmd == SMFIR_OPTNEG) {
	return MilterOptnegWords(capPtr, pktPtr);
    }
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureMilter --
 *
 *	Records the packets the milter sends: 'bytes' holds whole packets,
 *	as the session put them in its output.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Appends a line per packet (unless the capture is full).
 *
 *----------------------------------------------------------------------
 */

void
MilterCaptureMilter(
    MilterCapture *capPtr,
    const unsigned char *bytes,
    size_t len,
    int64_t now)
{
    MilterPacket pkt;
    size_t used;
    char cmd;

    while (len > 0 && MilterWireFrame(bytes, len, (size_t) -1 / 2, &pkt,
	    &used) == MILTER_FRAME_OK) {
	bytes += used;
	len -= used;
	if (!StartLine(capPtr, now, "milter")) {
	    return;
	}
	if (pkt.cmd == SMFIR_ACCEPT || pkt.cmd == SMFIR_REJECT
		|| pkt.cmd == SMFIR_TEMPFAIL || pkt.cmd == SMFIR_DISCARD
		|| pkt.cmd == SMFIR_REPLYCODE) {
	    capPtr->bodyKept = capPtr->replKept = 0;
	}
	if (!MilterPacketWords(capPtr, &pkt)) {
	    StartLine(capPtr, now, "milter");
	    cmd = (char) pkt.cmd;
	    AppendWord(capPtr, "raw");
	    AppendElement(capPtr, &cmd, 1);
	    AppendElement(capPtr, pkt.data, pkt.len);
	}
	EndLine(capPtr, now);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureFinish --
 *
 *	The session is over: adds the "end" line and, if the session is to
 *	be captured, writes the file in one go, named
 *	DIR/YYYYMMDDTHHMMSS-PID-ID.capture after the session's start (UTC),
 *	the process and the connection: created as DIR/.NAME.tmp (mode
 *	0600), then linked to its name, which never replaces a file, and
 *	unlinked; so a file under its name is always complete. Frees the
 *	capture.
 *
 * Results:
 *	1, or 0 with a message in 'err' when the file could not be written.
 *
 * Side effects:
 *	Writes a file.
 *
 *----------------------------------------------------------------------
 */

int
MilterCaptureFinish(
    MilterCapture *capPtr,
    int64_t now,
    char *err,
    size_t errLen)
{
    char path[4200], tmp[4300], stamp[32];
    struct tm tm;
    const unsigned char *p;
    size_t left;
    int fd, saved, ok = 1;

    if (capPtr->on) {
	capPtr->full = 0;	/* The end line always fits. */
	StartLine(capPtr, now, NULL);
	AppendWord(capPtr, "end");
	MilterBufAppend(&capPtr->line, "\n", 1);
	MilterBufAppendBuf(&capPtr->text, &capPtr->line);

	gmtime_r(&capPtr->started, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	snprintf(path, sizeof(path), "%s/%s-%ld-%lu.capture", capPtr->dir,
		stamp, (long) getpid(), capPtr->id);
	snprintf(tmp, sizeof(tmp), "%s/.%s-%ld-%lu.tmp", capPtr->dir,
		stamp, (long) getpid(), capPtr->id);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
	    ok = 0;
	} else {
	    p = MilterBufData(&capPtr->text);
	    left = MilterBufLength(&capPtr->text);
	    while (left > 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR) {
		    continue;
		}
		if (n <= 0) {
		    ok = 0;
		    break;
		}
		p += n;
		left -= (size_t) n;
	    }
	    if (close(fd) != 0 || (ok && link(tmp, path) != 0)) {
		ok = 0;
	    }
	    saved = errno;
	    unlink(tmp);	/* No half files. */
	    errno = saved;
	}
	if (!ok) {
	    snprintf(err, errLen, "couldn't write capture file \"%s\": %s",
		    path, strerror(errno));
	}
    }
    MilterCaptureFree(capPtr);
    return ok;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterCaptureFree --
 *
 *	Frees a capture without writing it.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Frees memory.
 *
 *----------------------------------------------------------------------
 */

void
MilterCaptureFree(
    MilterCapture *capPtr)
{
    MilterBufFree(&capPtr->text);
    MilterBufFree(&capPtr->line);
    MilterFree(capPtr->dir);
    MilterFree(capPtr);
}
