/*
 * milterWire.h --
 *
 *	The milter wire protocol: constants, packet framing and the
 *	(de)serialisation of every packet in both directions. Pure functions
 *	over byte buffers: no I/O, no threads, no Tcl. This is the fuzz
 *	target for the decoder.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERWIRE_H
#define _MILTERWIRE_H

#include "milterBuf.h"

/*
 * Protocol versions we speak, and the largest body chunk (also the default
 * largest data part: a full chunk arrives with a length field of 65536).
 */

#define MILTER_VERSION_MAX	6
#define MILTER_VERSION_MIN	2
#define MILTER_CHUNK_SIZE	65535
#define MILTER_LEN_BYTES	4

/*
 * Sizes of fields inside payloads: a 32-bit number (an OPTNEG word, a
 * header index, a macro-list stage), the three words of OPTNEG, and the
 * 16-bit port of CONNECT.
 */

#define MILTER_WORD_BYTES	4
#define MILTER_OPTNEG_BYTES	(3 * MILTER_WORD_BYTES)
#define MILTER_PORT_BYTES	2

/*
 * MTA to milter commands (SMFIC_*).
 */

#define SMFIC_ABORT	'A'
#define SMFIC_BODY	'B'
#define SMFIC_CONNECT	'C'
#define SMFIC_MACRO	'D'
#define SMFIC_BODYEOB	'E'
#define SMFIC_HELO	'H'
#define SMFIC_QUIT_NC	'K'
#define SMFIC_HEADER	'L'
#define SMFIC_MAIL	'M'
#define SMFIC_EOH	'N'
#define SMFIC_OPTNEG	'O'
#define SMFIC_QUIT	'Q'
#define SMFIC_RCPT	'R'
#define SMFIC_DATA	'T'
#define SMFIC_UNKNOWN	'U'

/*
 * Milter to MTA replies and actions (SMFIR_*).
 */

#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_SHUTDOWN		'4'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_CONN_FAIL		'f'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_SETSYMLIST	'l'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'

/*
 * Actions the milter may request (SMFIF_*) and protocol flags (SMFIP_*:
 * "NO" bits turn events off, "NR" bits mean no reply is sent for that
 * event), each written once here as X(NAME, BIT): the enums below and the
 * name tables (milterCallback.c) are expanded from these lists.
 */

#define MILTER_ACTION_BITS(X) \
    X(SMFIF_ADDHDRS,		0x001) \
    X(SMFIF_CHGBODY,		0x002) \
    X(SMFIF_ADDRCPT,		0x004) \
    X(SMFIF_DELRCPT,		0x008) \
    X(SMFIF_CHGHDRS,		0x010) \
    X(SMFIF_QUARANTINE,		0x020) \
    X(SMFIF_CHGFROM,		0x040) \
    X(SMFIF_ADDRCPT_PAR,	0x080) \
    X(SMFIF_SETSYMLIST,		0x100)

#define MILTER_PROTOCOL_BITS(X) \
    X(SMFIP_NOCONNECT,		0x00000001) \
    X(SMFIP_NOHELO,		0x00000002) \
    X(SMFIP_NOMAIL,		0x00000004) \
    X(SMFIP_NORCPT,		0x00000008) \
    X(SMFIP_NOBODY,		0x00000010) \
    X(SMFIP_NOHDRS,		0x00000020) \
    X(SMFIP_NOEOH,		0x00000040) \
    X(SMFIP_NR_HDR,		0x00000080) \
    X(SMFIP_NOUNKNOWN,		0x00000100) \
    X(SMFIP_NODATA,		0x00000200) \
    X(SMFIP_SKIP,		0x00000400) \
    X(SMFIP_RCPT_REJ,		0x00000800) \
    X(SMFIP_NR_CONN,		0x00001000) \
    X(SMFIP_NR_HELO,		0x00002000) \
    X(SMFIP_NR_MAIL,		0x00004000) \
    X(SMFIP_NR_RCPT,		0x00008000) \
    X(SMFIP_NR_DATA,		0x00010000) \
    X(SMFIP_NR_UNKN,		0x00020000) \
    X(SMFIP_NR_EOH,		0x00040000) \
    X(SMFIP_NR_BODY,		0x00080000) \
    X(SMFIP_HDR_LEADSPC,	0x00100000)

#define MILTER_BIT_ENUM(name, bit)	name = (bit),
#define MILTER_BIT_OR(name, bit)	| (bit)

enum MilterActionBits {
    MILTER_ACTION_BITS(MILTER_BIT_ENUM)
    SMFIF_ALL = 0 MILTER_ACTION_BITS(MILTER_BIT_OR)
};

enum MilterProtocolBits {
    MILTER_PROTOCOL_BITS(MILTER_BIT_ENUM)
    SMFIP_ALL = 0 MILTER_PROTOCOL_BITS(MILTER_BIT_OR)
};

/*
 * What a version 1 MTA, which offers 0, allows: the first four actions,
 * and the protocol flags NOCONNECT to NOHDRS.
 */

#define SMFI_V1_ACTS	0x00F
#define SMFI_V1_PROT	0x0000003F

/*
 * Macro stages (SMFIM_*), as used in macro-list records. Note that EOM
 * comes before EOH.
 */

#define SMFIM_CONNECT	0
#define SMFIM_HELO	1
#define SMFIM_ENVFROM	2
#define SMFIM_ENVRCPT	3
#define SMFIM_DATA	4
#define SMFIM_EOM	5
#define SMFIM_EOH	6
#define SMFIM_COUNT	7

/*
 * Results of MilterWireFrame.
 */

typedef enum MilterFrameResult {
    MILTER_FRAME_OK,		/* A whole packet is available. */
    MILTER_FRAME_SHORT,		/* More bytes are needed. */
    MILTER_FRAME_EMPTY,		/* Length field 0: not even a command. */
    MILTER_FRAME_TOOBIG		/* Length field above the limit. */
} MilterFrameResult;

/*
 * One decoded packet. 'data' points into the caller's buffer.
 */

typedef struct MilterPacket {
    unsigned char cmd;		/* Command or reply byte. */
    const unsigned char *data;	/* Payload (not NUL-terminated). */
    size_t len;			/* Payload length. */
} MilterPacket;

/*
 * A string inside a payload: a pointer into the packet and its length,
 * not counting the NUL that ends it on the wire.
 */

typedef struct MilterStr {
    const char *ptr;
    size_t len;
} MilterStr;

/*
 * The payload of SMFIC_CONNECT.
 */

typedef struct MilterConnectInfo {
    MilterStr hostname;		/* Client host name. */
    char family;		/* '4', '6', 'L' or 'U'. */
    unsigned port;		/* Port in host order; 0 for L and U. */
    MilterStr address;		/* Address text; empty for U. For '6' any
				 * "IPv6:" prefix has been removed. */
} MilterConnectInfo;

/*
 * The payload of SMFIC_OPTNEG, and of the milter's answer.
 */

typedef struct MilterOptneg {
    uint32_t version;
    uint32_t actions;
    uint32_t protocol;
} MilterOptneg;

/*
 * Framing.
 */

MODULE_SCOPE MilterFrameResult MilterWireFrame(const unsigned char *buf,
			    size_t avail, size_t maxData,
			    MilterPacket *pktPtr, size_t *usedPtr);
MODULE_SCOPE uint32_t	MilterWireGet32(const unsigned char *p);
MODULE_SCOPE void	MilterWirePut32(unsigned char *p, uint32_t value);

/*
 * Payload decoders. Each returns 1 when the payload is well formed, 0 if
 * not; they never read outside [data, data+len).
 */

MODULE_SCOPE int	MilterWireStrings(const MilterPacket *pktPtr,
			    size_t offset, MilterStr *strs, int maxStrs,
			    int *countPtr);
MODULE_SCOPE int	MilterWireOptneg(const MilterPacket *pktPtr,
			    MilterOptneg *optPtr);
MODULE_SCOPE int	MilterWireConnect(const MilterPacket *pktPtr,
			    MilterConnectInfo *infoPtr);
MODULE_SCOPE int	MilterWireMacroStage(unsigned char cmd);

/*
 * Encoders: each appends one whole packet to 'out'.
 */

MODULE_SCOPE void	MilterWirePacket(MilterBuf *out, unsigned char cmd,
			    const void *data, size_t len);
MODULE_SCOPE void	MilterWirePacketStrings(MilterBuf *out,
			    unsigned char cmd, int useIndex, uint32_t index,
			    const MilterStr *strs, int count);
MODULE_SCOPE void	MilterWireOptnegReply(MilterBuf *out,
			    const MilterOptneg *optPtr,
			    char *const symlists[SMFIM_COUNT]);
MODULE_SCOPE void	MilterWireBody(MilterBuf *out, unsigned char cmd,
			    const unsigned char *data, size_t len);

#endif /* _MILTERWIRE_H */
