/*
 * milterSession.h --
 *
 *	One MTA connection's protocol state machine: negotiation, macro
 *	stages, which commands need which reply, no-reply stages, reply
 *	ordering and the buffering of end-of-message modifications. It is
 *	driven by decoded packets and asks its driver for a verdict through
 *	events. No I/O, no threads, no Tcl.
 *
 *	Driving a session:
 *
 *	    ev = MilterSessionFeed(s, &packet);
 *	    while (ev != NULL) {
 *		verdict = ...run the callback for ev...;
 *		ev = MilterSessionResume(s, verdict);
 *	    }
 *	    ...send s->out; close the connection if MilterSessionClosed(s)...
 *
 *	At end of input (EOF, timeout, stop) MilterSessionEnd(s) yields the
 *	abort and close events still owed, the same way. An event stays valid
 *	until the next Resume.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERSESSION_H
#define _MILTERSESSION_H

#include "milterWire.h"
#include "milterStats.h"

/*
 * Events a session asks its driver to decide. The order matches the
 * callback table of the Tcl layer.
 */

typedef enum MilterEventType {
    MILTER_EV_NEGOTIATE,
    MILTER_EV_CONNECT,
    MILTER_EV_HELO,
    MILTER_EV_ENVFROM,
    MILTER_EV_ENVRCPT,
    MILTER_EV_DATA,
    MILTER_EV_HEADER,
    MILTER_EV_EOH,
    MILTER_EV_BODY,
    MILTER_EV_EOM,
    MILTER_EV_ABORT,
    MILTER_EV_CLOSE,
    MILTER_EV_UNKNOWN,
    MILTER_EV_COUNT
} MilterEventType;

#define MILTER_EVBIT(type)	(1u << (type))

/*
 * Verdicts, with libmilter's sfsistat values, written once here as
 * X(NAME, VALUE): MILTER_NAME is the verdict and SMFIS_NAME the return
 * code a callback gives for it (milterCodeNames, milter.c).
 */

#define MILTER_CODES(X) \
    X(CONTINUE,	0) \
    X(REJECT,	1) \
    X(DISCARD,	2) \
    X(ACCEPT,	3) \
    X(TEMPFAIL,	4) \
    X(SKIP,	8)

#define MILTER_CODE_ENUM(name, value)	MILTER_##name = (value),
#define MILTER_CODE_NAME(name, value)	"SMFIS_" #name,
#define MILTER_CODE_VALUE(name, value)	MILTER_##name,

enum MilterCode {
    MILTER_CODES(MILTER_CODE_ENUM)
    MILTER_CODE_END		/* Not a verdict. */
};

/*
 * An event: its type and arguments, copied out of the packet so that it
 * can be read on another thread while the connection reads on.
 *   NEGOTIATE:	offered.actions and offered.protocol.
 *   CONNECT:	argv[0] hostname, argv[1] address; family, port.
 *   HELO, UNKNOWN: argv[0].
 *   ENVFROM, ENVRCPT: argv[0..argc-1] (address, then ESMTP arguments).
 *   HEADER:	argv[0] name, argv[1] value.
 *   BODY:	data, len (raw bytes).
 */

typedef struct MilterEvent {
    MilterEventType type;
    int argc;			/* Number of strings in argv. */
    MilterStr *argv;		/* Strings; they point into 'data' and are
				 * also NUL-terminated there. */
    unsigned char *data;	/* Copied payload. */
    size_t len;			/* Payload length (body bytes). */
    char family;		/* CONNECT: '4', '6', 'L' or 'U'. */
    unsigned port;		/* CONNECT: port in host order. */
    MilterOptneg offered;	/* NEGOTIATE: what the MTA offered. */
} MilterEvent;

/*
 * Error classes for the modification and reply calls, so the Tcl layer
 * can set a precise errorCode.
 */

typedef enum MilterSessionError {
    MILTER_ERR_NONE,
    MILTER_ERR_STATE,		/* Not allowed in the current callback. */
    MILTER_ERR_ACTION,		/* The action was not negotiated. */
    MILTER_ERR_VALUE,		/* A malformed argument. */
    MILTER_ERR_CLOSED		/* Allowed, but nothing can reach the MTA
				 * any more (MilterSessionSetPeerGone). */
} MilterSessionError;

/*
 * Protocol position of a session.
 */

typedef enum MilterSessionState {
    MILTER_ST_INIT,		/* Waiting for OPTNEG. */
    MILTER_ST_READY,		/* Negotiated; no message open. */
    MILTER_ST_CLOSED		/* The connection must be closed. */
} MilterSessionState;

typedef struct MilterSession MilterSession;

/*
 * What milter sessions shows of a session (MilterSessionDescribe).
 */

typedef struct MilterSessionInfo {
    char client[256];		/* The client's host name, or "". */
    char address[64];		/* ... and address, or "". */
    char stage[16];		/* The last command: an event name, or
				 * "optneg", "macro", "quit", "" before
				 * any. */
    int inMessage;		/* A message is open. */
    char sender[256];		/* Its sender, or "". */
    int recipients;		/* RCPT commands seen for it. */
} MilterSessionInfo;

MODULE_SCOPE MilterSession *MilterSessionNew(size_t maxData);
MODULE_SCOPE void	MilterSessionFree(MilterSession *s);

/*
 * Settings the driver gives before negotiation and before each packet.
 */

MODULE_SCOPE void	MilterSessionSetWanted(MilterSession *s,
			    unsigned eventMask);
MODULE_SCOPE void	MilterSessionSetLeadingSpace(MilterSession *s,
			    int on);
MODULE_SCOPE void	MilterSessionSetPeerGone(MilterSession *s);
MODULE_SCOPE void	MilterSessionSetStats(MilterSession *s,
			    MilterStats *stats);

/*
 * Driving.
 */

MODULE_SCOPE MilterEvent *MilterSessionFeed(MilterSession *s,
			    const MilterPacket *pktPtr);
MODULE_SCOPE MilterEvent *MilterSessionResume(MilterSession *s,
			    int verdict);
MODULE_SCOPE MilterEvent *MilterSessionEnd(MilterSession *s);
MODULE_SCOPE MilterEvent *MilterSessionDetach(MilterSession *s);
MODULE_SCOPE MilterBuf *MilterSessionOutput(MilterSession *s);
MODULE_SCOPE int	MilterSessionClosed(const MilterSession *s);
MODULE_SCOPE int	MilterSessionInMessage(const MilterSession *s);
MODULE_SCOPE const char *MilterSessionProblem(MilterSession *s);
MODULE_SCOPE void	MilterSessionDescribe(const MilterSession *s,
			    MilterSessionInfo *infoPtr);

/*
 * Queries and actions for the callbacks.
 */

MODULE_SCOPE int	MilterSessionMacro(const MilterSession *s,
			    const char *name, size_t nameLen,
			    MilterStr *valuePtr);
MODULE_SCOPE void	MilterSessionNegotiated(const MilterSession *s,
			    MilterOptneg *optPtr);
MODULE_SCOPE MilterSessionError MilterSessionModify(MilterSession *s,
			    unsigned char cmd, int useIndex, uint32_t index,
			    const MilterStr *strs, int count,
			    const char **msgPtr);
MODULE_SCOPE void	MilterSessionDiscardModifications(MilterSession *s);
MODULE_SCOPE MilterSessionError MilterSessionReplaceBody(MilterSession *s,
			    const unsigned char *data, size_t len,
			    const char **msgPtr);
MODULE_SCOPE MilterSessionError MilterSessionProgress(MilterSession *s,
			    const char **msgPtr);
MODULE_SCOPE MilterSessionError MilterSessionSetReply(MilterSession *s,
			    const char *rcode, const char *xcode,
			    const MilterStr *lines, int count,
			    const char **msgPtr);
MODULE_SCOPE MilterSessionError MilterSessionSetSymlist(MilterSession *s,
			    int stage, const char *list,
			    const char **msgPtr);
MODULE_SCOPE const char *MilterHeaderNameProblem(const char *name,
			    size_t len);
MODULE_SCOPE const char *MilterHeaderValueProblem(const char *value,
			    size_t len);

#endif /* _MILTERSESSION_H */
