/*
 * milterSessionActions.c --
 *
 *	What a callback asks of its session while it holds an event: macro
 *	values (MilterSessionMacro), header, envelope and body
 *	modifications, progress, the SMTP reply text and the macro lists
 *	asked for in negotiation. Each checks that the event and the
 *	negotiated actions allow it; modifications are only queued here and
 *	sent by the state machine before the final reply of the message.
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
