/*
 * milterBuf.h --
 *
 *	Growable byte buffers and allocation for the layers of TclMilter that
 *	know nothing of Tcl (wire codec, session, server). They allocate with
 *	the C library so that they can be built alone for fuzzing and unit
 *	tests; an allocation failure aborts, as ckalloc panics.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERBUF_H
#define _MILTERBUF_H

#include <stddef.h>
#include <stdint.h>

#ifndef MODULE_SCOPE
#   define MODULE_SCOPE extern __attribute__((visibility("hidden")))
#endif

/*
 * A byte buffer: bytes [start, len) are live. Consuming from the front only
 * moves 'start'; the buffer is compacted when it must grow.
 */

typedef struct MilterBuf {
    unsigned char *bytes;	/* Storage, or NULL when empty. */
    size_t start;		/* Offset of the first live byte. */
    size_t len;			/* Offset one past the last live byte. */
    size_t cap;			/* Allocated size of 'bytes'. */
} MilterBuf;

#define MilterBufData(b)	((b)->bytes + (b)->start)
#define MilterBufLength(b)	((b)->len - (b)->start)

MODULE_SCOPE void *	MilterAlloc(size_t size);
MODULE_SCOPE void *	MilterRealloc(void *ptr, size_t size);
MODULE_SCOPE void	MilterFree(void *ptr);
MODULE_SCOPE char *	MilterStrdup(const char *s, size_t len);

MODULE_SCOPE void	MilterBufInit(MilterBuf *bufPtr);
MODULE_SCOPE void	MilterBufFree(MilterBuf *bufPtr);
MODULE_SCOPE void	MilterBufReset(MilterBuf *bufPtr);
MODULE_SCOPE unsigned char *MilterBufReserve(MilterBuf *bufPtr, size_t n);
MODULE_SCOPE void	MilterBufAppend(MilterBuf *bufPtr, const void *data,
			    size_t n);
MODULE_SCOPE void	MilterBufAppendBuf(MilterBuf *bufPtr,
			    const MilterBuf *srcPtr);
MODULE_SCOPE void	MilterBufConsume(MilterBuf *bufPtr, size_t n);
MODULE_SCOPE void	MilterBufTrim(MilterBuf *bufPtr, size_t keep);

#endif /* _MILTERBUF_H */
