/*
 * milterWire.c --
 *
 *	Framing, decoding and encoding of milter protocol packets. See
 *	milterWire.h; nothing here does I/O or knows about Tcl.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterWire.h"

#include <string.h>
#include <strings.h>

/*
 * The prefix Sendmail puts before IPv6 addresses; the address is given
 * to callbacks without it, as libmilter does.
 */

#define IPV6_PREFIX	"IPv6:"
#define IPV6_PREFIX_LEN	(sizeof(IPV6_PREFIX) - 1)

/*
 *----------------------------------------------------------------------
 *
 * MilterWireGet32 --
 *
 *	Reads a big-endian 32-bit integer.
 *
 * Results:
 *	The value read from the 4 bytes at p.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

uint32_t
MilterWireGet32(
    const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
	    | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWirePut32 --
 *
 *	Writes a big-endian 32-bit integer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Writes 4 bytes at p.
 *
 *----------------------------------------------------------------------
 */

void
MilterWirePut32(
    unsigned char *p,
    uint32_t value)
{
    p[0] = (unsigned char) (value >> 24);
    p[1] = (unsigned char) (value >> 16);
    p[2] = (unsigned char) (value >> 8);
    p[3] = (unsigned char) value;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireFrame --
 *
 *	Looks for one whole packet at the start of 'buf'. The length field
 *	counts the command byte, so it must be at least 1 and at most
 *	maxData + 1. An oversized length is reported as soon as the length
 *	field is read, before anything is allocated for it.
 *
 * Results:
 *	MILTER_FRAME_OK with *pktPtr filled in and *usedPtr set to the bytes
 *	the packet occupies; MILTER_FRAME_SHORT if more bytes are needed;
 *	MILTER_FRAME_EMPTY or MILTER_FRAME_TOOBIG for a bad length.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

MilterFrameResult
MilterWireFrame(
    const unsigned char *buf,
    size_t avail,		/* Bytes at buf. */
    size_t maxData,		/* Largest payload; (size_t) -1: any. */
    MilterPacket *pktPtr,
    size_t *usedPtr)
{
    uint32_t length;

    if (avail < MILTER_LEN_BYTES) {
	return MILTER_FRAME_SHORT;
    }
    length = MilterWireGet32(buf);
    if (length == 0) {
	return MILTER_FRAME_EMPTY;
    }
    if ((size_t) length - 1 > maxData) {
	return MILTER_FRAME_TOOBIG;
    }
    if (avail - MILTER_LEN_BYTES < length) {
	return MILTER_FRAME_SHORT;
    }
    pktPtr->cmd = buf[MILTER_LEN_BYTES];
    pktPtr->data = buf + MILTER_LEN_BYTES + 1;
    pktPtr->len = length - 1;
    *usedPtr = MILTER_LEN_BYTES + (size_t) length;
    return MILTER_FRAME_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireStrings --
 *
 *	Splits the payload, from 'offset' to its end, into NUL-terminated
 *	strings. Every string must have its NUL; an empty remainder gives
 *	no strings.
 *
 * Results:
 *	1 if well formed and at most 'maxStrs' strings were found, with
 *	*countPtr set; 0 otherwise.
 *
 * Side effects:
 *	Fills strs[0..*countPtr-1].
 *
 *----------------------------------------------------------------------
 */

int
MilterWireStrings(
    const MilterPacket *pktPtr,
    size_t offset,		/* Where the strings begin. */
    MilterStr *strs,
    int maxStrs,		/* Room in strs. */
    int *countPtr)
{
    const unsigned char *p = pktPtr->data + offset;
    const unsigned char *end = pktPtr->data + pktPtr->len;
    int count = 0;

    if (offset > pktPtr->len) {
	return 0;
    }
    while (p < end) {
	const unsigned char *nul = memchr(p, '\0', (size_t) (end - p));

	if (nul == NULL || count >= maxStrs) {
	    return 0;
	}
	strs[count].ptr = (const char *) p;
	strs[count].len = (size_t) (nul - p);
	count++;
	p = nul + 1;
    }
    *countPtr = count;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireOptneg --
 *
 *	Decodes the three integers of an OPTNEG packet. Anything after them
 *	(macro-list records in a milter's answer) is left to the caller.
 *
 * Results:
 *	1 if the payload holds at least 12 bytes, else 0.
 *
 * Side effects:
 *	Fills *optPtr.
 *
 *----------------------------------------------------------------------
 */

int
MilterWireOptneg(
    const MilterPacket *pktPtr,
    MilterOptneg *optPtr)
{
    if (pktPtr->len < MILTER_OPTNEG_BYTES) {
	return 0;
    }
    optPtr->version = MilterWireGet32(pktPtr->data);
    optPtr->actions = MilterWireGet32(pktPtr->data + MILTER_WORD_BYTES);
    optPtr->protocol = MilterWireGet32(pktPtr->data
	    + 2 * MILTER_WORD_BYTES);
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireConnect --
 *
 *	Decodes SMFIC_CONNECT: hostname, family byte, and for families other
 *	than 'U' a 16-bit port and the address. Sendmail's "IPv6:" prefix is
 *	removed from family '6' addresses, as libmilter does.
 *
 * Results:
 *	1 if well formed, else 0 (unknown family, missing NUL, short port,
 *	trailing bytes).
 *
 * Side effects:
 *	Fills *infoPtr with pointers into the packet.
 *
 *----------------------------------------------------------------------
 */

int
MilterWireConnect(
    const MilterPacket *pktPtr,
    MilterConnectInfo *infoPtr)
{
    const unsigned char *p = pktPtr->data;
    const unsigned char *end = pktPtr->data + pktPtr->len;
    const unsigned char *nul = memchr(p, '\0', pktPtr->len);

    if (nul == NULL || nul + 1 >= end) {
	return 0;
    }
    infoPtr->hostname.ptr = (const char *) p;
    infoPtr->hostname.len = (size_t) (nul - p);
    p = nul + 1;
    infoPtr->family = (char) *p++;
    infoPtr->port = 0;
    infoPtr->address.ptr = "";
    infoPtr->address.len = 0;
    switch (infoPtr->family) {
    case 'U':
	return p == end;
    case '4': case '6': case 'L':
	break;
    default:
	return 0;
    }
    if (end - p < MILTER_PORT_BYTES + 1) {
	return 0;			/* The port and the address's NUL. */
    }
    infoPtr->port = ((unsigned) p[0] << 8) | p[1];
    p += MILTER_PORT_BYTES;
    nul = memchr(p, '\0', (size_t) (end - p));
    if (nul == NULL || nul + 1 != end) {
	return 0;
    }
    infoPtr->address.ptr = (const char *) p;
    infoPtr->address.len = (size_t) (nul - p);
    if (infoPtr->family == '6' && infoPtr->address.len >= IPV6_PREFIX_LEN
	    && strncasecmp(infoPtr->address.ptr, IPV6_PREFIX,
		    IPV6_PREFIX_LEN) == 0) {
	infoPtr->address.ptr += IPV6_PREFIX_LEN;
	infoPtr->address.len -= IPV6_PREFIX_LEN;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireMacroStage --
 *
 *	Maps the command byte that starts an SMFIC_MACRO payload to its
 *	macro stage.
 *
 * Results:
 *	The SMFIM_* stage, or -1 for a command that has no stage (Postfix
 *	also sends macros for L, B and U; they are ignored, as libmilter
 *	does).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterWireMacroStage(
    unsigned char cmd)
{
    switch (cmd) {
    case SMFIC_CONNECT:	return SMFIM_CONNECT;
    case SMFIC_HELO:	return SMFIM_HELO;
    case SMFIC_MAIL:	return SMFIM_ENVFROM;
    case SMFIC_RCPT:	return SMFIM_ENVRCPT;
    case SMFIC_DATA:	return SMFIM_DATA;
    case SMFIC_BODYEOB:	return SMFIM_EOM;
    case SMFIC_EOH:	return SMFIM_EOH;
    default:		return -1;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWirePacket --
 *
 *	Appends one packet: length, command byte, payload.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows 'out'.
 *
 *----------------------------------------------------------------------
 */

void
MilterWirePacket(
    MilterBuf *out,
    unsigned char cmd,
    const void *data,
    size_t len)
{
    unsigned char *p = MilterBufReserve(out, MILTER_LEN_BYTES + 1 + len);

    MilterWirePut32(p, (uint32_t) (len + 1));
    p[MILTER_LEN_BYTES] = cmd;
    if (len > 0) {
	memcpy(p + MILTER_LEN_BYTES + 1, data, len);
    }
    out->len += MILTER_LEN_BYTES + 1 + len;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWirePacketStrings --
 *
 *	Appends a packet whose payload is an optional 32-bit index followed
 *	by NUL-terminated strings (headers, recipients, quarantine reasons,
 *	reply text).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows 'out'.
 *
 *----------------------------------------------------------------------
 */

void
MilterWirePacketStrings(
    MilterBuf *out,
    unsigned char cmd,
    int useIndex,		/* Send 'index' before the strings. */
    uint32_t index,		/* Header index, if sent. */
    const MilterStr *strs,
    int count)
{
    size_t len = useIndex ? MILTER_WORD_BYTES : 0;
    unsigned char *p;
    int i;

    for (i = 0; i < count; i++) {
	len += strs[i].len + 1;
    }
    p = MilterBufReserve(out, MILTER_LEN_BYTES + 1 + len);
    MilterWirePut32(p, (uint32_t) (len + 1));
    p[MILTER_LEN_BYTES] = cmd;
    p += MILTER_LEN_BYTES + 1;
    if (useIndex) {
	MilterWirePut32(p, index);
	p += MILTER_WORD_BYTES;
    }
    for (i = 0; i < count; i++) {
	memcpy(p, strs[i].ptr, strs[i].len);
	p += strs[i].len;
	*p++ = '\0';
    }
    out->len += MILTER_LEN_BYTES + 1 + len;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireOptnegReply --
 *
 *	Appends the milter's OPTNEG answer: version, actions, protocol, then
 *	one macro-list record (stage, space-separated names, NUL) for each
 *	stage whose list is not NULL. This is how smfi_setsymlist travels;
 *	an 'l' packet is never sent.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows 'out'.
 *
 *----------------------------------------------------------------------
 */

void
MilterWireOptnegReply(
    MilterBuf *out,
    const MilterOptneg *optPtr,
    char *const symlists[SMFIM_COUNT])
{
    size_t len = MILTER_OPTNEG_BYTES;
    unsigned char *p;
    int stage;

    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	if (symlists != NULL && symlists[stage] != NULL) {
	    len += MILTER_WORD_BYTES + strlen(symlists[stage]) + 1;
	}
    }
    p = MilterBufReserve(out, MILTER_LEN_BYTES + 1 + len);
    MilterWirePut32(p, (uint32_t) (len + 1));
    p[MILTER_LEN_BYTES] = SMFIC_OPTNEG;
    p += MILTER_LEN_BYTES + 1;
    MilterWirePut32(p, optPtr->version);
    MilterWirePut32(p + MILTER_WORD_BYTES, optPtr->actions);
    MilterWirePut32(p + 2 * MILTER_WORD_BYTES, optPtr->protocol);
    p += MILTER_OPTNEG_BYTES;
    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	if (symlists != NULL && symlists[stage] != NULL) {
	    size_t n = strlen(symlists[stage]) + 1;

	    MilterWirePut32(p, (uint32_t) stage);
	    memcpy(p + MILTER_WORD_BYTES, symlists[stage], n);
	    p += MILTER_WORD_BYTES + n;
	}
    }
    out->len += MILTER_LEN_BYTES + 1 + len;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterWireBody --
 *
 *	Appends body bytes of any size as packets of at most
 *	MILTER_CHUNK_SIZE bytes each (replacement body, or body chunks sent
 *	by an MTA-side client).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Grows 'out'.
 *
 *----------------------------------------------------------------------
 */

void
MilterWireBody(
    MilterBuf *out,
    unsigned char cmd,
    const unsigned char *data,
    size_t len)
{
    do {
	size_t n = len > MILTER_CHUNK_SIZE ? MILTER_CHUNK_SIZE : len;

	MilterWirePacket(out, cmd, data, n);
	data += n;
	len -= n;
    } while (len > 0);
}
