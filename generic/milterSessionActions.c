/*
 * milterSessionActions.c --
 *
 *	What a callback asks of its session while it holds an event: macro
 *	values (MilterSessionMacro), header, envelope and body
 *	modifications, progress, the SMTP reply text and the macro lists
 *	asked for in negotiation. Each checks that the event and the
 *	negotiated actions allow it, that its arguments make something the
 *	MTAs accept, and that the MTA can still be reached; modifications
 *	are only queued here and sent by the state machine before the final
 *	reply of the message.
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
 * Libmilter's limits on a reply: lines and characters per line.
 */

#define MAX_REPLY_LINES	32
#define MAX_REPLY_LEN	980

/*
 * A reply code is three digits; an enhanced status code has three parts
 * (class.subject.detail), the first of one digit, the others of one to
 * three.
 */

#define REPLY_CODE_LEN	3
#define XCODE_PARTS	3
#define XCODE_MAX_DIGITS 3

/*
 *----------------------------------------------------------------------
 *
 * StripBraces --
 *
 *	Drops the braces of a macro name written "{x}", so that it
 *	matches "x".
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
StripBraces(
    const char **namePtr,
    size_t *lenPtr)
{
    if (*lenPtr >= 2 && (*namePtr)[0] == '{' && (*namePtr)[*lenPtr-1] == '}') {
	(*namePtr)++;
	*lenPtr -= 2;
    }
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
 * MilterSessionSetPeerGone --
 *
 *	The driver says that nothing more can reach the MTA (it hung up, a
 *	write failed, the connection was ended). From then on every action
 *	that would send something, and is otherwise allowed, fails with
 *	MILTER_ERR_CLOSED instead of being queued for nobody (CheckPeer).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Marks the session; there is no way back.
 *
 *----------------------------------------------------------------------
 */

void
MilterSessionSetPeerGone(
    MilterSession *s)
{
    s->peerGone = 1;
}

/*
 *----------------------------------------------------------------------
 *
 * CheckPeer --
 *
 *	The last check of each action that would send something: refuses
 *	it once the MTA can no longer be reached
 *	(MilterSessionSetPeerGone).
 *
 * Results:
 *	MILTER_ERR_NONE, or MILTER_ERR_CLOSED with *msgPtr set.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static MilterSessionError
CheckPeer(
    const MilterSession *s,
    const char **msgPtr)
{
    if (s->peerGone) {
	*msgPtr = "the MTA connection of this context is closed";
	return MILTER_ERR_CLOSED;
    }
    return MILTER_ERR_NONE;
}

/*
 * Header name bytes: printable US-ASCII, not space or ':'.
 */

#define NAME_RULE \
	"must be one or more printable US-ASCII characters, not space or \":\""
#define HEADER_NAME_MIN	33	/* '!' */
#define HEADER_NAME_MAX	126	/* '~' */

/*
 *----------------------------------------------------------------------
 *
 * MilterHeaderNameProblem --
 *
 *	Checks the bytes of a header name that a modification would send:
 *	an RFC 5322 field name is one or more printable US-ASCII characters
 *	(33 to 126) other than ':'. Anything else would let the MTA write a
 *	malformed header.
 *
 * Results:
 *	NULL if acceptable, else what is wrong (static text, written to
 *	follow 'bad header name "...": ').
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

const char *
MilterHeaderNameProblem(
    const char *name,
    size_t len)
{
    size_t i;

    if (len == 0) {
	return NAME_RULE;
    }
    for (i = 0; i < len; i++) {
	unsigned char c = (unsigned char) name[i];

	if (c < HEADER_NAME_MIN || c > HEADER_NAME_MAX || c == ':') {
	    return NAME_RULE;
	}
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterHeaderValueProblem --
 *
 *	Checks the bytes of a header value that a modification would
 *	send. A value may break its line only to fold it: every line
 *	break (LF, or CR LF) is followed by a space or a tab; it
 *	contains no other CR, no NUL, and does not end with a line
 *	break. Anything else would let the MTA write a header line the
 *	script did not mean.
 *
 * Results:
 *	NULL if acceptable, else what is wrong (static text, written to
 *	follow 'bad header value "...": ').
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

const char *
MilterHeaderValueProblem(
    const char *value,
    size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
	switch (value[i]) {
	case '\0':
	    return "may not contain NUL";
	case '\r':
	    if (i + 1 >= len || value[i + 1] != '\n') {
		return "may contain CR only before LF";
	    }
	    break;
	case '\n':
	    if (i + 1 >= len) {
		return "may not end with a line break";
	    }
	    if (value[i + 1] != ' ' && value[i + 1] != '\t') {
		return "a line break must be followed by a space or tab";
	    }
	    break;
	}
    }
    return NULL;
}

/*
 *----------------------------------------------------------------------
 *
 * ActionFor --
 *
 *	The SMFIF_* action that the MTA must have granted for a
 *	modification command.
 *
 * Results:
 *	The action bit, or 0 for a command that needs none.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static uint32_t
ActionFor(
    unsigned char cmd)		/* An SMFIR_* modification. */
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

/*
 *----------------------------------------------------------------------
 *
 * CheckModify --
 *
 *	Whether a modification may be made now: only in the eom
 *	callback, and only when the MTA granted its action.
 *
 * Results:
 *	MILTER_ERR_NONE, or MILTER_ERR_STATE or MILTER_ERR_ACTION with
 *	*msgPtr set.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static MilterSessionError
CheckModify(
    MilterSession *s,
    unsigned char cmd,		/* An SMFIR_* modification. */
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

/*
 *----------------------------------------------------------------------
 *
 * ModifyValueProblem --
 *
 *	Checks the strings of a modification: header names and values as
 *	MilterHeaderNameProblem and MilterHeaderValueProblem do, and
 *	addresses and quarantine reasons not empty.
 *
 * Results:
 *	NULL if acceptable, else what is wrong (static text).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static const char *
ModifyValueProblem(
    unsigned char cmd,		/* An SMFIR_* modification. */
    const MilterStr *strs,
    int count)
{
    switch (cmd) {
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
	if (count != 2) {
	    return "a header needs a name and a value";
	}
	if (MilterHeaderNameProblem(strs[0].ptr, strs[0].len) != NULL) {
	    return "bad header name";
	}
	if (MilterHeaderValueProblem(strs[1].ptr, strs[1].len) != NULL) {
	    return "bad header value";
	}
	return NULL;
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_DELRCPT:
    case SMFIR_CHGFROM:
	if (count < 1 || strs[0].len == 0) {
	    return "the address may not be empty";
	}
	return NULL;
    case SMFIR_QUARANTINE:
	if (count < 1 || strs[0].len == 0) {
	    return "the reason may not be empty";
	}
	return NULL;
    default:
	return NULL;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSessionModify --
 *
 *	Queues a modification packet (h i m + 2 - e q) to be sent before the
 *	final end-of-message reply. Allowed only while the EOM event is
 *	being decided and only for negotiated actions. Headers must pass
 *	MilterHeaderNameProblem and MilterHeaderValueProblem (an empty
 *	value is allowed: for 'm' it deletes the header), and their CR LF
 *	folds are sent as LF, the line end of header values in the milter
 *	protocol (a CR would reach the message as a stray byte). An
 *	address, like a quarantine reason, may not be empty (libmilter
 *	refuses those too). ModifyValueProblem makes these checks.
 *
 * Results:
 *	MILTER_ERR_NONE, or an error class with *msgPtr set.
 *
 * Side effects:
 *	Grows the pending modifications.
 *
 *----------------------------------------------------------------------
 */

MilterSessionError
MilterSessionModify(
    MilterSession *s,
    unsigned char cmd,		/* An SMFIR_* modification. */
    int useIndex,		/* Send 'index' before the strings. */
    uint32_t index,		/* Header index (i and m). */
    const MilterStr *strs,
    int count,
    const char **msgPtr)
{
    MilterSessionError err = CheckModify(s, cmd, msgPtr);
    const char *problem;
    MilterStr header[2];
    char *unfolded = NULL;

    if (err != MILTER_ERR_NONE) {
	return err;
    }
    problem = ModifyValueProblem(cmd, strs, count);
    if (problem != NULL) {
	*msgPtr = problem;
	return MILTER_ERR_VALUE;
    }
    err = CheckPeer(s, msgPtr);
    if (err != MILTER_ERR_NONE) {
	return err;
    }
    if ((cmd == SMFIR_ADDHEADER || cmd == SMFIR_INSHEADER
	    || cmd == SMFIR_CHGHEADER)
	    && memchr(strs[1].ptr, '\r', strs[1].len) != NULL) {
	size_t i, n = 0;

	/*
	 * Every CR is part of a CR LF fold here: keep only the LF.
	 */

	unfolded = MilterAlloc(strs[1].len);
	for (i = 0; i < strs[1].len; i++) {
	    if (strs[1].ptr[i] != '\r') {
		unfolded[n++] = strs[1].ptr[i];
	    }
	}
	header[0] = strs[0];
	header[1].ptr = unfolded;
	header[1].len = n;
	strs = header;
    }
    MilterWirePacketStrings(&s->mods, cmd, useIndex, index, strs, count);
    MilterFree(unfolded);
    return MILTER_ERR_NONE;
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
	err = CheckPeer(s, msgPtr);
    }
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
 *	MILTER_ERR_NONE, MILTER_ERR_STATE or MILTER_ERR_CLOSED.
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
    if (CheckPeer(s, msgPtr) != MILTER_ERR_NONE) {
	return MILTER_ERR_CLOSED;
    }
    MilterWirePacket(&s->out, SMFIR_PROGRESS, NULL, 0);
    return MILTER_ERR_NONE;
}

/*
 *----------------------------------------------------------------------
 *
 * IsEnhancedCode --
 *
 *	Whether 'len' bytes are an RFC 3463 enhanced status code of
 *	class 'class' ('2', '4' or '5'): a class digit, then two dot-
 *	separated numbers of one to three digits.
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
IsEnhancedCode(
    const char *xcode,
    size_t len,
    char class)			/* '2', '4' or '5'. */
{
    int part, digits;
    const char *p = xcode, *end = xcode + len;

    if (len == 0 || p[0] != class) {
	return 0;
    }
    for (part = 0; part < XCODE_PARTS; part++) {
	for (digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
	    digits++;
	}
	if (digits == 0 || digits > XCODE_MAX_DIGITS
		|| (part == 0 && digits != 1)) {
	    return 0;
	}
	if (part < XCODE_PARTS - 1 && (p == end || *p++ != '.')) {
	    return 0;
	}
    }
    return p == end;
}

/*
 * What a reply text without an enhanced code of its own begins with
 * (ClassifyText).
 */

enum TextStart {
    TEXT_PLAIN,			/* Not a digit: fine as it is. */
    TEXT_CODE,			/* A good enhanced code, the reply's. */
    TEXT_BAD_CODE,		/* Looks like an enhanced code, is not one
				 * of this class: refused. */
    TEXT_DIGIT			/* Some other digit: needs a code first. */
};

/*
 *----------------------------------------------------------------------
 *
 * ClassifyText --
 *
 *	Sorts the first line of a reply text by how it begins (enum
 *	TextStart), for a reply of class 'class'.
 *
 * Results:
 *	A TextStart.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static enum TextStart
ClassifyText(
    const MilterStr *line,
    char class)			/* The reply code's first digit. */
{
    size_t word, i;
    int dots = 0;

    if (line->len == 0 || line->ptr[0] < '0' || line->ptr[0] > '9') {
	return TEXT_PLAIN;
    }
    for (word = 0; word < line->len && line->ptr[word] != ' '; word++) {
	/* The first word. */
    }
    if (IsEnhancedCode(line->ptr, word, class)) {
	return TEXT_CODE;
    }
    for (i = 0; i < word; i++) {
	if (line->ptr[i] == '.') {
	    dots++;
	} else if (line->ptr[i] < '0' || line->ptr[i] > '9') {
	    return TEXT_DIGIT;
	}
    }
    return dots > 0 ? TEXT_BAD_CODE : TEXT_DIGIT;
}

/*
 *----------------------------------------------------------------------
 *
 * CheckReplyArgs --
 *
 *	Checks the reply code, the enhanced status code and the lines of
 *	a reply the script sets, as libmilter's smfi_setmlreply does.
 *
 * Results:
 *	MILTER_ERR_NONE, or MILTER_ERR_VALUE with *msgPtr set.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static MilterSessionError
CheckReplyArgs(
    const char *rcode,
    const char *xcode,		/* "" when none was given. */
    const MilterStr *lines,
    int count,
    const char **msgPtr)
{
    int i;

    if (strlen(rcode) != REPLY_CODE_LEN
	    || (rcode[0] != '4' && rcode[0] != '5')
	    || rcode[1] < '0' || rcode[1] > '9'
	    || rcode[2] < '0' || rcode[2] > '9') {
	*msgPtr = "reply code must be 4xx or 5xx";
	return MILTER_ERR_VALUE;
    }
    if (xcode[0] != '\0' && !IsEnhancedCode(xcode, strlen(xcode), rcode[0])) {
	*msgPtr = "enhanced status code must be n.n.n of the reply code's"
		" class";
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
    return MILTER_ERR_NONE;
}

/*
 *----------------------------------------------------------------------
 *
 * FormatReply --
 *
 *	Joins the lines of a reply into the REPLYCODE text: "ddd-" before
 *	every line but the last, "ddd " before the last, the enhanced code
 *	(if any) after it, lines separated by CR LF, and every '%' doubled
 *	so that the MTA's formatting leaves it alone.
 *
 * Results:
 *	The text, to be released with MilterFree.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

static char *
FormatReply(
    const char *rcode,
    const char *xcode,		/* "" for none. */
    const MilterStr *lines,
    int count)
{
    MilterBuf text;
    char *reply;
    int i;
    size_t j;

    MilterBufInit(&text);
    for (i = 0; i < count; i++) {
	MilterBufAppend(&text, rcode, REPLY_CODE_LEN);
	MilterBufAppend(&text, (i < count - 1) ? "-" : " ", 1);
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
    reply = MilterStrdup((const char *) MilterBufData(&text),
	    MilterBufLength(&text));
    MilterBufFree(&text);
    return reply;
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
 *	Stricter than libmilter where its result is a reply the MTAs
 *	refuse (Postfix then answers 451 4.3.5, which turns a permanent
 *	reject into endless retries): every reply made is "ddd" then a
 *	space or dash on every line, and an enhanced status code of the
 *	reply's class wherever one follows.
 *	  - No text (no line, or one empty line): the text the MTAs give
 *	    their own reject or tempfail, "Command rejected" or "Service
 *	    unavailable - try again later", with the enhanced code given
 *	    or else 5.7.1 or 4.7.1.
 *	  - One line without an enhanced code, whose text begins with a
 *	    digit: if its first word is an enhanced code of the right class
 *	    it is the reply's; if the word is made of digits and dots only
 *	    (an enhanced code of the other class, or a malformed one) the
 *	    reply is refused; any other such text gets 5.0.0 or 4.0.0 in
 *	    front, so that it is not read as a code.
 *	  - Several lines without an enhanced code get 5.0.0 or 4.0.0.
 *
 * Results:
 *	MILTER_ERR_NONE, MILTER_ERR_VALUE or MILTER_ERR_CLOSED with *msgPtr
 *	set.
 *
 * Side effects:
 *	Replaces the pending reply text.
 *
 *----------------------------------------------------------------------
 */

MilterSessionError
MilterSessionSetReply(
    MilterSession *s,
    const char *rcode,
    const char *xcode,
    const MilterStr *lines,
    int count,
    const char **msgPtr)
{
    MilterStr defaultLine;

    if (CheckReplyArgs(rcode, xcode, lines, count, msgPtr)
	    != MILTER_ERR_NONE) {
	return MILTER_ERR_VALUE;
    }
    if (count == 0 || (count == 1 && lines[0].len == 0)) {
	if (xcode[0] == '\0') {
	    xcode = rcode[0] == '4' ? "4.7.1" : "5.7.1";
	}
	defaultLine.ptr = rcode[0] == '4'
		? "Service unavailable - try again later" : "Command rejected";
	defaultLine.len = strlen(defaultLine.ptr);
	lines = &defaultLine;
	count = 1;
    } else if (count == 1 && xcode[0] == '\0') {
	switch (ClassifyText(&lines[0], rcode[0])) {
	case TEXT_BAD_CODE:
	    *msgPtr = "the text begins with an enhanced status code that is"
		    " not n.n.n of the reply code's class";
	    return MILTER_ERR_VALUE;
	case TEXT_DIGIT:
	    xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
	    break;
	default:
	    break;
	}
    } else if (count > 1 && xcode[0] == '\0') {
	xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
    }
    if (CheckPeer(s, msgPtr) != MILTER_ERR_NONE) {
	return MILTER_ERR_CLOSED;
    }
    MilterFree(s->reply);
    s->reply = FormatReply(rcode, xcode, lines, count);
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
    int stage,			/* An SMFIM_* stage. */
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
    if (CheckPeer(s, msgPtr) != MILTER_ERR_NONE) {
	return MILTER_ERR_CLOSED;
    }
    s->symlists[stage] = MilterStrdup(list, strlen(list));
    if (s->offered.actions & SMFIF_SETSYMLIST) {
	s->agreed.actions |= SMFIF_SETSYMLIST;
    }
    return MILTER_ERR_NONE;
}
