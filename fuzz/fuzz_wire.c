/*
 * fuzz_wire.c --
 *
 *	libFuzzer target for the milter wire codec (generic/milterWire.c).
 *	The input is split into packets with MilterWireFrame; every payload
 *	is copied into a block of exactly its size (so AddressSanitizer sees
 *	any read past it) and given to every decoder. Each decoder's answer
 *	is compared with a small reference decoder written from the protocol
 *	description, and whatever decodes is encoded again and must come
 *	back unchanged. The encoders are also run on the raw payloads, into
 *	one output buffer that keeps some live bytes between packets so the
 *	buffer's compaction is exercised too.
 *
 *	Input layout:
 *	    byte 0	bits 0-2: the largest data size given to the framer
 *			(see maxDataTable); bits 3-7: how many bytes to leave
 *			in the output buffer between packets.
 *	    rest	a stream of packets as an MTA or a milter sends them.
 *
 *	Any broken invariant prints a line and aborts, which libFuzzer
 *	reports as a crash. Built with -DREPLAY (and fuzz/replay.c) the
 *	same code runs over saved inputs without libFuzzer.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterWire.h"
#include "fuzzCheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static const size_t maxDataTable[8] = {
    0, 1, 12, 255, 65535, 65535, 262143, (size_t) -1
};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/*
 * Reference decoders, written from the protocol description (the packet
 * layouts libmilter and Postfix use), independently of milterWire.c: the
 * fuzzer compares the two.
 */

/*
 *----------------------------------------------------------------------
 *
 * RefGet32 --
 *
 *	Reference reader of a big-endian 32-bit integer.
 *
 * Results:
 *	The value of the 4 bytes at p.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE uint32_t
RefGet32(
    const unsigned char *p)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < 4; i++) {
	v = v * 256 + p[i];
    }
    return v;
}

/*
 *----------------------------------------------------------------------
 *
 * RefFrame --
 *
 *	Reference framing of the packet at the start of 'buf': the
 *	length field counts the command byte, is at least 1 and at most
 *	maxData + 1 ((size_t) -1: no limit).
 *
 * Results:
 *	A MilterFrameResult, as MilterWireFrame should give.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE MilterFrameResult
RefFrame(
    const unsigned char *buf,
    size_t avail,
    size_t maxData)
{
    uint32_t length;

    if (avail < 4) {
	return MILTER_FRAME_SHORT;
    }
    length = RefGet32(buf);
    if (length == 0) {
	return MILTER_FRAME_EMPTY;
    }
    if ((uint64_t) length > (uint64_t) maxData + 1
	    && maxData != (size_t) -1) {
	return MILTER_FRAME_TOOBIG;
    }
    if ((uint64_t) length + 4 > avail) {
	return MILTER_FRAME_SHORT;
    }
    return MILTER_FRAME_OK;
}

/*
 *----------------------------------------------------------------------
 *
 * RefStrings --
 *
 *	Reference check that the data from 'offset' on is at most
 *	maxStrs NUL-terminated strings.
 *
 * Results:
 *	1 with *countPtr set to the number of strings, or 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefStrings(
    const unsigned char *d,
    size_t len,
    size_t offset,
    int maxStrs,
    int *countPtr)
{
    size_t i;
    int nuls = 0;

    if (offset > len) {
	return 0;
    }
    if (offset < len && d[len - 1] != '\0') {
	return 0;
    }
    for (i = offset; i < len; i++) {
	if (d[i] == '\0') {
	    nuls++;
	}
    }
    if (nuls > maxStrs) {
	return 0;
    }
    *countPtr = nuls;
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * RefFindNul --
 *
 *	The first NUL at or after 'from'.
 *
 * Results:
 *	Its index, or 'len' when there is none.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE size_t
RefFindNul(
    const unsigned char *d,
    size_t from,
    size_t len)
{
    while (from < len && d[from] != '\0') {
	from++;
    }
    return from;		/* == len when there is none. */
}

/*
 *----------------------------------------------------------------------
 *
 * RefConnect --
 *
 *	Reference decoder of a CONNECT packet: hostname, family, and for
 *	inet, inet6 and local families a port and an address (an inet6
 *	address loses its "IPv6:" prefix).
 *
 * Results:
 *	1 with *infoPtr filled in, or 0 for a malformed packet.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefConnect(
    const unsigned char *d,
    size_t len,
    MilterConnectInfo *infoPtr)
{
    size_t h = RefFindNul(d, 0, len), a, nul;
    unsigned char family;

    if (h >= len || h + 1 >= len) {
	return 0;
    }
    infoPtr->hostname.ptr = (const char *) d;
    infoPtr->hostname.len = h;
    family = d[h + 1];
    infoPtr->family = (char) family;
    infoPtr->port = 0;
    infoPtr->address.ptr = "";
    infoPtr->address.len = 0;
    if (family == 'U') {
	return h + 2 == len;
    }
    if (family != '4' && family != '6' && family != 'L') {
	return 0;
    }
    if (len - (h + 2) < 3) {
	return 0;
    }
    infoPtr->port = (unsigned) d[h + 2] * 256 + d[h + 3];
    a = h + 4;
    nul = RefFindNul(d, a, len);
    if (nul != len - 1) {
	return 0;
    }
    infoPtr->address.ptr = (const char *) d + a;
    infoPtr->address.len = nul - a;
    if (family == '6' && nul - a >= 5
	    && (d[a] == 'I' || d[a] == 'i') && (d[a+1] == 'P' || d[a+1] == 'p')
	    && (d[a+2] == 'V' || d[a+2] == 'v') && d[a+3] == '6'
	    && d[a+4] == ':') {
	infoPtr->address.ptr += 5;
	infoPtr->address.len -= 5;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * RefMacroStage --
 *
 *	The macro stage of the command a macro packet names.
 *
 * Results:
 *	The SMFIM_* index, or -1.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static NO_COVERAGE int
RefMacroStage(
    unsigned char cmd)
{
    static const char order[] = "CHMRTEN";	/* Index = SMFIM_* value. */
    int i;

    for (i = 0; i < 7; i++) {
	if (cmd == (unsigned char) order[i]) {
	    return i;
	}
    }
    return -1;
}

/*
 *----------------------------------------------------------------------
 *
 * FrameOne --
 *
 *	Frames the packet at the start of [p, p+avail) with the codec and
 *	checks the result against RefFrame.
 *
 * Results:
 *	The codec's MilterFrameResult, with *pktPtr and *usedPtr as it
 *	set them.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static MilterFrameResult
FrameOne(
    const unsigned char *p,
    size_t avail,
    size_t maxData,
    MilterPacket *pktPtr,
    size_t *usedPtr)
{
    MilterFrameResult res = MilterWireFrame(p, avail, maxData, pktPtr,
	    usedPtr);

    CHECK(res == RefFrame(p, avail, maxData));
    if (res == MILTER_FRAME_OK) {
	CHECK(*usedPtr == MILTER_LEN_BYTES + 1 + pktPtr->len);
	CHECK(*usedPtr <= avail);
	CHECK(pktPtr->len <= maxData);
	CHECK(pktPtr->cmd == p[4]);
	CHECK(pktPtr->data == p + 5);
	CHECK(RefGet32(p) == pktPtr->len + 1);
    }
    return res;
}

/*
 * Encoder helpers: encoded packets go to one MilterBuf that keeps 'keep'
 * live bytes of the previous packet in front (and checks they survive),
 * so the buffer compacts and grows under the encoders. BeginEncode notes
 * where the new packet starts; EndEncode frames it back.
 */

typedef struct Encoder {
    MilterBuf out;
    size_t keep;		/* Live bytes to keep between packets. */
    unsigned char saved[32];	/* Copy of the kept bytes. */
    size_t savedLen;
    size_t base;		/* Live length before the current packet. */
} Encoder;

/*
 *----------------------------------------------------------------------
 *
 * BeginEncode --
 *
 *	Notes where the next encoded packet starts, dropping all but
 *	'keep' live bytes of the previous one and saving those to check
 *	later.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Consumes bytes of the encoder's buffer.
 *
 *----------------------------------------------------------------------
 */

static void
BeginEncode(
    Encoder *enc)
{
    size_t live = MilterBufLength(&enc->out);

    if (live > enc->keep) {
	MilterBufConsume(&enc->out, live - enc->keep);
	live = MilterBufLength(&enc->out);
    }
    enc->savedLen = live;
    if (live > 0) {
	memcpy(enc->saved, MilterBufData(&enc->out), live);
    }
    enc->base = live;
}

/*
 *----------------------------------------------------------------------
 *
 * Encoded --
 *
 *	The bytes encoded since BeginEncode; checks that the buffer is
 *	sane and the kept bytes survived.
 *
 * Results:
 *	A pointer to the new bytes, their length in *lenPtr.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static const unsigned char *
Encoded(
    Encoder *enc,
    size_t *lenPtr)
{
    CHECK(MilterBufLength(&enc->out) >= enc->base);
    CHECK(enc->out.len <= enc->out.cap);
    CHECK(enc->out.start <= enc->out.len);
    CHECK(enc->savedLen == 0 || memcmp(MilterBufData(&enc->out),
	    enc->saved, enc->savedLen) == 0);
    *lenPtr = MilterBufLength(&enc->out) - enc->base;
    return MilterBufData(&enc->out) + enc->base;
}

/*
 *----------------------------------------------------------------------
 *
 * DecodeOnly --
 *
 *	Frames exactly one packet filling all the newly encoded bytes;
 *	the packet must fit a limit of exactly its own data size and no
 *	smaller.
 *
 * Results:
 *	None; fills *pktPtr.
 *
 * Side effects:
 *	Aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static void
DecodeOnly(
    Encoder *enc,
    MilterPacket *pktPtr)
{
    size_t n, used;
    const unsigned char *p = Encoded(enc, &n);
    MilterPacket tmp;

    CHECK(FrameOne(p, n, (size_t) -1, pktPtr, &used) == MILTER_FRAME_OK);
    CHECK(used == n);
    CHECK(FrameOne(p, n, pktPtr->len, &tmp, &used) == MILTER_FRAME_OK);
    if (pktPtr->len > 0) {
	CHECK(FrameOne(p, n, pktPtr->len - 1, &tmp, &used)
		== MILTER_FRAME_TOOBIG);
    }
    CHECK(FrameOne(p, n - 1, (size_t) -1, &tmp, &used)
	    == MILTER_FRAME_SHORT);
}

/*
 *----------------------------------------------------------------------
 *
 * CheckStrings --
 *
 *	MilterWireStrings at several offsets and limits, against the
 *	reference; the strings must tile the payload exactly, and
 *	MilterWirePacketStrings must give the payload back.
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
CheckStrings(
    const MilterPacket *pktPtr,
    Encoder *enc)
{
    static const int limits[] = {0, 1, 2, 3, 64};
    MilterStr strs[65];
    size_t offsets[6];
    int o, l, i, count, refCount;

    offsets[0] = 0;
    offsets[1] = 1;
    offsets[2] = 4;
    offsets[3] = pktPtr->len / 2;
    offsets[4] = pktPtr->len;
    offsets[5] = pktPtr->len + 1;
    for (o = 0; o < 6; o++) {
	int refOk = RefStrings(pktPtr->data, pktPtr->len, offsets[o], 1 << 30,
		&refCount);

	for (l = 0; l < 5; l++) {
	    int max = limits[l];
	    int ok;

	    /* A sentinel just past the room given: it must stay intact. */
	    strs[max].ptr = NULL;
	    strs[max].len = (size_t) 0xdead;
	    count = -1;
	    ok = MilterWireStrings(pktPtr, offsets[o], strs, max, &count);
	    CHECK(ok == (refOk && refCount <= max));
	    CHECK(strs[max].ptr == NULL && strs[max].len == 0xdead);
	    if (!ok) {
		continue;
	    }
	    CHECK(count == refCount);
	    {
		const char *p = (const char *) pktPtr->data + offsets[o];

		for (i = 0; i < count; i++) {
		    CHECK(strs[i].ptr == p);
		    CHECK(memchr(p, '\0', strs[i].len) == NULL);
		    CHECK(p[strs[i].len] == '\0');
		    p += strs[i].len + 1;
		}
		CHECK(p == (const char *) pktPtr->data + pktPtr->len);
	    }
	    if (max != 64 || (offsets[o] != 0 && offsets[o] != 4)) {
		continue;
	    }

	    /*
	     * Round trip: offset 0 without an index, offset 4 with the
	     * first four bytes as the index.
	     */

	    {
		MilterPacket back;
		MilterStr again[65];
		int n2;
		int useIndex = offsets[o] == 4;
		uint32_t index = useIndex ? MilterWireGet32(pktPtr->data) : 0;

		BeginEncode(enc);
		MilterWirePacketStrings(&enc->out, pktPtr->cmd, useIndex,
			index, strs, count);
		DecodeOnly(enc, &back);
		CHECK(back.cmd == pktPtr->cmd);
		CHECK(back.len == pktPtr->len);
		CHECK(memcmp(back.data, pktPtr->data, back.len) == 0);
		CHECK(MilterWireStrings(&back, offsets[o], again, 64, &n2));
		CHECK(n2 == count);
		for (i = 0; i < count; i++) {
		    CHECK(again[i].len == strs[i].len);
		    CHECK(memcmp(again[i].ptr, strs[i].ptr, strs[i].len) == 0);
		}
	    }
	}
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckOptneg --
 *
 *	MilterWireOptneg against the reference. When the rest of the payload
 *	is a canonical list of macro-list records (stages rising, below 7,
 *	each string NUL-terminated), MilterWireOptnegReply must rebuild the
 *	payload byte for byte; otherwise the records that parse are
 *	re-encoded and must decode to the same values.
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
CheckOptneg(
    const MilterPacket *pktPtr,
    Encoder *enc)
{
    MilterOptneg opt, opt2;
    char *symlists[SMFIM_COUNT];
    size_t p, nul;
    int stage, canonical = 1, last = -1;
    MilterPacket back;
    int ok = MilterWireOptneg(pktPtr, &opt);

    CHECK(ok == (pktPtr->len >= 12));
    if (!ok) {
	return;
    }
    CHECK(opt.version == RefGet32(pktPtr->data));
    CHECK(opt.actions == RefGet32(pktPtr->data + 4));
    CHECK(opt.protocol == RefGet32(pktPtr->data + 8));

    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	symlists[stage] = NULL;
    }
    p = 12;
    while (p < pktPtr->len) {
	uint32_t st;

	if (pktPtr->len - p < 5) {
	    canonical = 0;
	    break;
	}
	st = RefGet32(pktPtr->data + p);
	nul = RefFindNul(pktPtr->data, p + 4, pktPtr->len);
	if (nul == pktPtr->len || st >= SMFIM_COUNT || (int) st <= last) {
	    canonical = 0;
	    break;
	}
	last = (int) st;
	symlists[st] = malloc(nul - (p + 4) + 1);
	memcpy(symlists[st], pktPtr->data + p + 4, nul - (p + 4) + 1);
	p = nul + 1;
    }

    BeginEncode(enc);
    MilterWireOptnegReply(&enc->out, &opt, symlists);
    DecodeOnly(enc, &back);
    CHECK(back.cmd == SMFIC_OPTNEG);
    CHECK(MilterWireOptneg(&back, &opt2));
    CHECK(opt2.version == opt.version && opt2.actions == opt.actions
	    && opt2.protocol == opt.protocol);
    if (canonical) {
	CHECK(back.len == pktPtr->len);
	CHECK(memcmp(back.data, pktPtr->data, back.len) == 0);
    } else {
	/* The records that parsed, in stage order. */
	p = 12;
	for (stage = 0; stage < SMFIM_COUNT; stage++) {
	    size_t n;

	    if (symlists[stage] == NULL) {
		continue;
	    }
	    n = strlen(symlists[stage]);
	    CHECK(back.len - p >= 4 + n + 1);
	    CHECK(RefGet32(back.data + p) == (uint32_t) stage);
	    CHECK(memcmp(back.data + p + 4, symlists[stage], n + 1) == 0);
	    p += 4 + n + 1;
	}
	CHECK(p == back.len);
    }

    /* Without lists: exactly 12 bytes. */
    BeginEncode(enc);
    MilterWireOptnegReply(&enc->out, &opt, NULL);
    DecodeOnly(enc, &back);
    CHECK(back.len == 12);
    CHECK(memcmp(back.data, pktPtr->data, 12) == 0);

    for (stage = 0; stage < SMFIM_COUNT; stage++) {
	free(symlists[stage]);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * CheckConnect --
 *
 *	MilterWireConnect against the reference; a decoded connect packet
 *	rebuilt from its fields (with any "IPv6:" prefix put back) must be
 *	the same bytes, and decoding the rebuilt packet the same fields.
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
CheckConnect(
    const MilterPacket *pktPtr,
    Encoder *enc)
{
    MilterConnectInfo info, ref, again;
    MilterBuf payload;
    MilterPacket rebuilt, back;
    const char *addr;
    size_t addrLen;
    unsigned char port[2];
    int ok;

    memset(&info, 0, sizeof(info));
    memset(&ref, 0, sizeof(ref));
    ok = MilterWireConnect(pktPtr, &info);
    CHECK(ok == RefConnect(pktPtr->data, pktPtr->len, &ref));
    if (!ok) {
	return;
    }
    CHECK(info.hostname.ptr == ref.hostname.ptr);
    CHECK(info.hostname.len == ref.hostname.len);
    CHECK(info.family == ref.family);
    CHECK(info.port == ref.port);
    CHECK(info.port <= 0xFFFF);
    CHECK(info.address.len == ref.address.len);
    if (info.family == 'U') {
	CHECK(info.address.len == 0);
	CHECK(info.port == 0);
	return;
    }
    CHECK(info.address.ptr == ref.address.ptr);
    CHECK(info.address.ptr[info.address.len] == '\0');
    CHECK(memchr(info.address.ptr, '\0', info.address.len) == NULL);

    /*
     * Rebuild the original bytes.
     */

    addr = info.address.ptr;
    addrLen = info.address.len;
    if (addr != (const char *) pktPtr->data + info.hostname.len + 4) {
	CHECK(info.family == '6');
	CHECK(addr == (const char *) pktPtr->data + info.hostname.len + 9);
	addr -= 5;
	addrLen += 5;
	CHECK(strncasecmp(addr, "IPv6:", 5) == 0);
    }
    MilterBufInit(&payload);
    MilterBufAppend(&payload, info.hostname.ptr, info.hostname.len);
    MilterBufAppend(&payload, "", 1);
    MilterBufAppend(&payload, &info.family, 1);
    port[0] = (unsigned char) (info.port >> 8);
    port[1] = (unsigned char) info.port;
    MilterBufAppend(&payload, port, 2);
    MilterBufAppend(&payload, addr, addrLen);
    MilterBufAppend(&payload, "", 1);
    CHECK(MilterBufLength(&payload) == pktPtr->len);
    CHECK(memcmp(MilterBufData(&payload), pktPtr->data, pktPtr->len) == 0);

    /*
     * Encode the decoded fields (prefix gone) and decode again: the same
     * fields come back, unless the address itself still starts with the
     * prefix, which is then removed once more.
     */

    MilterBufReset(&payload);
    MilterBufAppend(&payload, info.hostname.ptr, info.hostname.len);
    MilterBufAppend(&payload, "", 1);
    MilterBufAppend(&payload, &info.family, 1);
    MilterBufAppend(&payload, port, 2);
    MilterBufAppend(&payload, info.address.ptr, info.address.len);
    MilterBufAppend(&payload, "", 1);
    BeginEncode(enc);
    MilterWirePacket(&enc->out, SMFIC_CONNECT, MilterBufData(&payload),
	    MilterBufLength(&payload));
    DecodeOnly(enc, &back);
    rebuilt = back;
    CHECK(MilterWireConnect(&rebuilt, &again));
    CHECK(again.family == info.family && again.port == info.port);
    CHECK(again.hostname.len == info.hostname.len);
    CHECK(memcmp(again.hostname.ptr, info.hostname.ptr,
	    info.hostname.len) == 0);
    if (info.family == '6' && info.address.len >= 5
	    && strncasecmp(info.address.ptr, "IPv6:", 5) == 0) {
	CHECK(again.address.len == info.address.len - 5);
	CHECK(memcmp(again.address.ptr, info.address.ptr + 5,
		again.address.len) == 0);
    } else {
	CHECK(again.address.len == info.address.len);
	CHECK(memcmp(again.address.ptr, info.address.ptr,
		info.address.len) == 0);
    }
    MilterBufFree(&payload);
}

/*
 *----------------------------------------------------------------------
 *
 * CheckEncoders --
 *
 *	MilterWirePacket and MilterWireBody over the raw payload: the packet
 *	frames back to the same command and bytes; the body comes back as
 *	full 65535-byte chunks and one last chunk.
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
CheckEncoders(
    const MilterPacket *pktPtr,
    Encoder *enc)
{
    MilterPacket back;
    const unsigned char *p;
    size_t n, used, done = 0, chunks = 0, expectChunks;
    unsigned char word[4];

    BeginEncode(enc);
    MilterWirePacket(&enc->out, pktPtr->cmd, pktPtr->data, pktPtr->len);
    DecodeOnly(enc, &back);
    CHECK(back.cmd == pktPtr->cmd);
    CHECK(back.len == pktPtr->len);
    CHECK(pktPtr->len == 0
	    || memcmp(back.data, pktPtr->data, pktPtr->len) == 0);

    BeginEncode(enc);
    MilterWireBody(&enc->out, pktPtr->cmd, pktPtr->data, pktPtr->len);
    p = Encoded(enc, &n);
    while (n > 0) {
	CHECK(FrameOne(p, n, MILTER_CHUNK_SIZE, &back, &used)
		== MILTER_FRAME_OK);
	CHECK(back.cmd == pktPtr->cmd);
	CHECK(back.len <= MILTER_CHUNK_SIZE);
	CHECK(done + back.len <= pktPtr->len);
	CHECK(back.len == 0
		|| memcmp(back.data, pktPtr->data + done, back.len) == 0);
	done += back.len;
	if (done < pktPtr->len) {
	    CHECK(back.len == MILTER_CHUNK_SIZE);
	}
	chunks++;
	p += used;
	n -= used;
    }
    CHECK(done == pktPtr->len);
    expectChunks = pktPtr->len == 0 ? 1
	    : (pktPtr->len + MILTER_CHUNK_SIZE - 1) / MILTER_CHUNK_SIZE;
    CHECK(chunks == expectChunks);

    if (pktPtr->len >= 4) {
	uint32_t v = MilterWireGet32(pktPtr->data);

	CHECK(v == RefGet32(pktPtr->data));
	MilterWirePut32(word, v);
	CHECK(memcmp(word, pktPtr->data, 4) == 0);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * LLVMFuzzerTestOneInput --
 *
 *	The fuzz target.
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
    Encoder enc;
    size_t maxData, pos, used;
    int c;

    if (size < 1) {
	return 0;
    }
    maxData = maxDataTable[data[0] & 7];
    memset(&enc, 0, sizeof(enc));
    MilterBufInit(&enc.out);
    enc.keep = data[0] >> 3;	/* 0..31 */

    for (c = 0; c < 256; c++) {
	CHECK(MilterWireMacroStage((unsigned char) c)
		== RefMacroStage((unsigned char) c));
    }

    pos = 1;
    while (pos < size) {
	MilterPacket pkt, copy;
	unsigned char *payload;
	MilterFrameResult res = FrameOne(data + pos, size - pos, maxData,
		&pkt, &used);

	if (res == MILTER_FRAME_SHORT) {
	    break;
	}
	if (res != MILTER_FRAME_OK) {
	    pos += MILTER_LEN_BYTES;	/* Resynchronise on the next word. */
	    continue;
	}

	/*
	 * An exact-size copy: any read past the payload is a heap
	 * overflow for AddressSanitizer.
	 */

	payload = malloc(pkt.len);
	if (pkt.len > 0) {
	    memcpy(payload, pkt.data, pkt.len);
	}
	copy.cmd = pkt.cmd;
	copy.data = payload;
	copy.len = pkt.len;

	CheckStrings(&copy, &enc);
	CheckOptneg(&copy, &enc);
	CheckConnect(&copy, &enc);
	CheckEncoders(&copy, &enc);
	if (copy.len > 0) {
	    (void) MilterWireMacroStage(copy.data[0]);
	}
	free(payload);
	pos += used;
	if ((data[0] & 0x80) && enc.out.start == enc.out.len) {
	    MilterBufTrim(&enc.out, 64);
	}
    }
    MilterBufFree(&enc.out);
    return 0;
}
