/*
 * milterBuf.c --
 *
 *	Allocation helpers and growable byte buffers used by the Tcl-free
 *	layers (wire, session, server).
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterBuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 *----------------------------------------------------------------------
 *
 * OutOfMemory --
 *
 *	Reports a failed allocation on stderr and aborts the process, as
 *	Tcl's ckalloc panics.
 *
 * Results:
 *	None; does not return.
 *
 * Side effects:
 *	Aborts the process.
 *
 *----------------------------------------------------------------------
 */

static void
OutOfMemory(
    size_t size)		/* The request that failed. */
{
    fprintf(stderr, "TclMilter: unable to allocate %zu bytes\n", size);
    abort();
}

/*
 *----------------------------------------------------------------------
 *
 * MilterAlloc --
 *
 *	Allocates 'size' bytes like malloc, but never returns NULL:
 *	running out of memory aborts the process.
 *
 * Results:
 *	The new block (never NULL; a zero size gets one byte).
 *
 * Side effects:
 *	Allocates memory; may abort the process.
 *
 *----------------------------------------------------------------------
 */

void *
MilterAlloc(
    size_t size)
{
    void *ptr = malloc(size ? size : 1);

    if (ptr == NULL) {
	OutOfMemory(size);
    }
    return ptr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterRealloc --
 *
 *	Resizes a block like realloc, but never returns NULL.
 *
 * Results:
 *	The (possibly moved) block.
 *
 * Side effects:
 *	May move the block; may abort the process.
 *
 *----------------------------------------------------------------------
 */

void *
MilterRealloc(
    void *ptr,
    size_t size)
{
    void *newPtr = realloc(ptr, size ? size : 1);

    if (newPtr == NULL) {
	OutOfMemory(size);
    }
    return newPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterFree --
 *
 *	Releases a block from MilterAlloc or MilterRealloc. NULL is
 *	fine.
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
MilterFree(
    void *ptr)
{
    free(ptr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterStrdup --
 *
 *	Copies 'len' bytes into a new NUL-terminated string.
 *
 * Results:
 *	The copy, to be released with MilterFree.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

char *
MilterStrdup(
    const char *s,
    size_t len)
{
    char *copy = MilterAlloc(len + 1);

    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufInit --
 *
 *	Sets up an empty buffer with no storage.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Overwrites *bufPtr.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufInit(
    MilterBuf *bufPtr)
{
    bufPtr->bytes = NULL;
    bufPtr->start = bufPtr->len = bufPtr->cap = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufFree --
 *
 *	Releases the storage of a buffer and leaves it empty, ready for
 *	reuse.
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
MilterBufFree(
    MilterBuf *bufPtr)
{
    MilterFree(bufPtr->bytes);
    MilterBufInit(bufPtr);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufReset --
 *
 *	Empties a buffer but keeps its storage for the next use.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Forgets the buffer's contents.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufReset(
    MilterBuf *bufPtr)
{
    bufPtr->start = bufPtr->len = 0;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufReserve --
 *
 *	Makes room for 'n' more bytes at the end of the buffer, compacting
 *	consumed space first and growing geometrically after that.
 *
 * Results:
 *	Where the next 'n' bytes may be written. The caller adds them to
 *	the buffer by increasing bufPtr->len.
 *
 * Side effects:
 *	May move the live bytes or reallocate.
 *
 *----------------------------------------------------------------------
 */

unsigned char *
MilterBufReserve(
    MilterBuf *bufPtr,
    size_t n)
{
    size_t live = bufPtr->len - bufPtr->start;

    if (bufPtr->cap - bufPtr->len < n && bufPtr->start > 0) {
	memmove(bufPtr->bytes, bufPtr->bytes + bufPtr->start, live);
	bufPtr->start = 0;
	bufPtr->len = live;
    }
    if (bufPtr->cap - bufPtr->len < n) {
	size_t newCap = bufPtr->cap ? bufPtr->cap : 256;

	while (newCap - bufPtr->len < n) {
	    newCap *= 2;
	}
	bufPtr->bytes = MilterRealloc(bufPtr->bytes, newCap);
	bufPtr->cap = newCap;
    }
    return bufPtr->bytes + bufPtr->len;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufAppend --
 *
 *	Appends 'n' bytes to the buffer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May grow the buffer.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufAppend(
    MilterBuf *bufPtr,
    const void *data,
    size_t n)
{
    if (n > 0) {
	memcpy(MilterBufReserve(bufPtr, n), data, n);
	bufPtr->len += n;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufAppendBuf --
 *
 *	Appends the live bytes of another buffer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May grow the buffer.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufAppendBuf(
    MilterBuf *bufPtr,
    const MilterBuf *srcPtr)
{
    if (MilterBufLength(srcPtr) > 0) {
	/* An empty buffer may have no storage to point into. */
	MilterBufAppend(bufPtr, MilterBufData(srcPtr),
		MilterBufLength(srcPtr));
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufConsume --
 *
 *	Drops 'n' bytes from the front of the buffer.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	An emptied buffer rewinds to its start so its storage is reused.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufConsume(
    MilterBuf *bufPtr,
    size_t n)
{
    bufPtr->start += n;
    if (bufPtr->start >= bufPtr->len) {
	bufPtr->start = bufPtr->len = 0;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBufTrim --
 *
 *	Releases the storage of an empty buffer whose capacity exceeds
 *	'keep' bytes, so an idle connection does not hold on to the space a
 *	large body chunk needed.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free memory.
 *
 *----------------------------------------------------------------------
 */

void
MilterBufTrim(
    MilterBuf *bufPtr,
    size_t keep)
{
    if (bufPtr->len == bufPtr->start && bufPtr->cap > keep) {
	MilterBufFree(bufPtr);
    }
}
