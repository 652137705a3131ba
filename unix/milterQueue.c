/*
 * milterQueue.c --
 *
 *	Ready queues: where a connection's event waits for the interpreter
 *	that decides it. The owner has one; with -workers, every worker has
 *	its own, and a connection is pinned to one queue for its whole
 *	session (MilterQueueAssign at accept). A queue tells its consumer
 *	when it goes from empty to not empty; the consumer pops events and
 *	resumes their connections itself (MilterConnResume). A closed queue
 *	(its interpreter is gone) takes no events: its connections answer
 *	every event, now and later, with a fixed verdict
 *	(MilterConnCloseQueue). The queue holds connections but calls none
 *	of their functions.
 *
 *	Threads: any thread may push, pop or close; a queue's mutex guards
 *	its list and the queue links of the connections on it. The ready
 *	hook is called with it held (so that once MilterQueueClose returns,
 *	no hook call is under way and its client data may go): the hook may
 *	take its own consumer's lock but nothing else of ours. The mutex is
 *	never held while resuming a connection.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServerInt.h"

#include <pthread.h>
#include <string.h>

/*
 * A queue. Fields below 'lock' are guarded by it.
 */

struct MilterQueue {
    void (*ready)(void *clientData);
				/* Called (queue lock held) when the queue
				 * goes from empty to not empty, and when its
				 * last connection lets go. */
    void *clientData;		/* The ready hook's argument. */
    pthread_mutex_t lock;	/* Guards the fields below. */
    int refs;			/* The creator's, one per pinned
				 * connection. */
    int conns;			/* Connections pinned to this queue. */
    MilterConn *head, **tail;	/* Waiting connections, oldest first (a
				 * FIFO, link nextReady). */
    int length;			/* How many connections wait. */
    int closed;			/* Answer everything with 'verdict'. */
    int verdict;		/* The answer of a closed queue. */
    int label;			/* Whose it is, for milter sessions: a
				 * worker's number, 0 for the owner. Never
				 * changes once connections come. */
};

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueNew --
 *
 *	A new, empty queue.
 *
 * Results:
 *	The queue, with one reference for the caller.
 *
 * Side effects:
 *	Allocates memory.
 *
 *----------------------------------------------------------------------
 */

MilterQueue *
MilterQueueNew(
    void (*ready)(void *clientData),
				/* The ready hook, or NULL. */
    void *clientData)		/* Its argument. */
{
    MilterQueue *queue = MilterAlloc(sizeof(MilterQueue));

    memset(queue, 0, sizeof(MilterQueue));
    queue->ready = ready;
    queue->clientData = clientData;
    queue->refs = 1;
    MILTER_FIFO_INIT(queue->head, queue->tail);
    pthread_mutex_init(&queue->lock, NULL);
    return queue;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueRelease --
 *
 *	Drops a reference; the last one frees the queue.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May free the queue.
 *
 *----------------------------------------------------------------------
 */

void
MilterQueueRelease(
    MilterQueue *queue)		/* The queue. */
{
    int refs;

    pthread_mutex_lock(&queue->lock);
    refs = --queue->refs;
    pthread_mutex_unlock(&queue->lock);
    if (refs == 0) {
	pthread_mutex_destroy(&queue->lock);
	MilterFree(queue);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueuePin --
 *
 *	A connection is pinned to the queue for its session (one reference
 *	and one count). Its count goes with MilterQueueUnpin when its socket
 *	closes, its reference with MilterQueueRelease when it is freed.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Counts.
 *
 *----------------------------------------------------------------------
 */

void
MilterQueuePin(
    MilterQueue *queue)		/* The queue. */
{
    pthread_mutex_lock(&queue->lock);
    queue->refs++;
    queue->conns++;
    pthread_mutex_unlock(&queue->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueUnpin --
 *
 *	A connection's socket closed: it lets go of its count, so that the
 *	next connection's assignment sees the true load. The ready hook is
 *	called when the last connection goes, so that a retiring consumer
 *	notices.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Counts; may call the ready hook.
 *
 *----------------------------------------------------------------------
 */

void
MilterQueueUnpin(
    MilterQueue *queue)		/* The queue. */
{
    pthread_mutex_lock(&queue->lock);
    if (--queue->conns == 0 && !queue->closed && queue->ready != NULL) {
	queue->ready(queue->clientData);
    }
    pthread_mutex_unlock(&queue->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueuePush --
 *
 *	Puts a busy connection's event on its queue, unless the queue is
 *	closed: the caller then answers the event, and every further one the
 *	connection hands out, with the queue's verdict.
 *
 * Results:
 *	1 if the event waits on the queue; 0 if the queue is closed, with
 *	its verdict in *verdictPtr.
 *
 * Side effects:
 *	May call the ready hook.
 *
 *----------------------------------------------------------------------
 */

int
MilterQueuePush(
    MilterQueue *queue,		/* The connection's queue. */
    MilterConn *conn,		/* The busy connection. */
    MilterEvent *ev,		/* Its event, for the interpreter. */
    int *verdictPtr)		/* Out: a closed queue's verdict. */
{
    int wasEmpty, closed;	/* As found under the lock. */

    pthread_mutex_lock(&queue->lock);
    closed = queue->closed;
    *verdictPtr = queue->verdict;
    wasEmpty = queue->head == NULL;
    if (!closed) {
	conn->readyEvent = ev;
	MILTER_FIFO_APPEND_AT(queue->tail, conn, nextReady);
	queue->length++;
	if (wasEmpty && queue->ready != NULL) {
	    queue->ready(queue->clientData);
	}
    }
    pthread_mutex_unlock(&queue->lock);
    return !closed;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueuePop --
 *
 *	Takes the oldest waiting connection off the queue.
 *
 * Results:
 *	The connection and its event, or NULL when the queue is empty.
 *
 * Side effects:
 *	None beyond the queue.
 *
 *----------------------------------------------------------------------
 */

MilterConn *
MilterQueuePop(
    MilterQueue *queue,		/* The queue. */
    MilterEvent **evPtr)	/* Gets the connection's event. */
{
    MilterConn *conn;

    pthread_mutex_lock(&queue->lock);
    MILTER_FIFO_POP_AT(queue->head, queue->tail, conn, nextReady);
    if (conn != NULL) {
	queue->length--;
	*evPtr = conn->readyEvent;
	conn->readyEvent = NULL;
    }
    pthread_mutex_unlock(&queue->lock);
    return conn;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueClose --
 *
 *	The queue's interpreter is gone: it takes no more events, and those
 *	pushed from now on are answered with 'verdict' by their connections
 *	(MilterQueuePush). What already waits is left for the caller to pop
 *	(MilterConnCloseQueue).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Marks the queue closed.
 *
 *----------------------------------------------------------------------
 */

void
MilterQueueClose(
    MilterQueue *queue,		/* The queue. */
    int verdict)		/* The answer to every event. */
{
    pthread_mutex_lock(&queue->lock);
    queue->verdict = verdict;
    queue->closed = 1;
    pthread_mutex_unlock(&queue->lock);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueLength --
 *
 *	How many connections wait on the queue.
 *
 * Results:
 *	Their number.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterQueueLength(
    MilterQueue *queue)		/* The queue. */
{
    int n;

    pthread_mutex_lock(&queue->lock);
    n = queue->length;
    pthread_mutex_unlock(&queue->lock);
    return n;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueConnections --
 *
 *	How many connections are pinned to the queue.
 *
 * Results:
 *	Their number.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterQueueConnections(
    MilterQueue *queue)		/* The queue. */
{
    int n;

    pthread_mutex_lock(&queue->lock);
    n = queue->conns;
    pthread_mutex_unlock(&queue->lock);
    return n;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueSetLabel --
 *
 *	Says whose queue it is, as milter sessions shows it: a worker's
 *	number, or 0 (the default) for the owner's. Set it before any
 *	connection is pinned to the queue.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets the label.
 *
 *----------------------------------------------------------------------
 */

void
MilterQueueSetLabel(
    MilterQueue *queue,
    int label)			/* A worker's number, 0 for the owner. */
{
    queue->label = label;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterQueueLabel --
 *
 *	Whose queue it is (MilterQueueSetLabel).
 *
 * Results:
 *	A worker's number, or 0 for the owner's queue.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterQueueLabel(
    const MilterQueue *queue)
{
    return queue->label;
}
