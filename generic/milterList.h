/*
 * milterList.h --
 *
 *	Tiny intrusive lists, written once for every list of TclMilter:
 *
 *	  - a doubly-linked list: its head is a pointer to the first element
 *	    (NULL when empty) and each element has the members 'prevPtr' and
 *	    'nextPtr'; elements are pushed at the front and removed from
 *	    anywhere in constant time;
 *	  - a FIFO: a singly-linked queue whose head points to the oldest
 *	    element and whose tail points to the 'nextPtr' member of the
 *	    newest (or to the head when the queue is empty); elements are
 *	    appended at the tail and taken from the head.
 *
 *	The operations are macros so that they work on any element type;
 *	the _AT forms name the link members, for an element on several
 *	lists.
 *	Their arguments are evaluated more than once: pass plain lvalues
 *	(statePtr->contexts, ctxPtr), never expressions with side effects.
 *	No locking here: each list's owner says which thread or mutex guards
 *	it.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERLIST_H
#define _MILTERLIST_H

#include <stddef.h>

/*
 *----------------------------------------------------------------------
 *
 * MILTER_LIST_PUSH --
 *
 *	Links 'elemPtr' at the front of the doubly-linked list whose first
 *	element is 'head'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets 'head' and the links of the element and of the old first one.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_LIST_PUSH(head, elemPtr) \
    MILTER_LIST_PUSH_AT(head, elemPtr, prevPtr, nextPtr)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_LIST_PUSH_AT --
 *
 *	MILTER_LIST_PUSH for an element whose links have other names: the
 *	members 'prev' and 'next' (an element may be on several lists).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	As MILTER_LIST_PUSH.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_LIST_PUSH_AT(head, elemPtr, prev, next) \
    do {								\
	(elemPtr)->prev = NULL;						\
	(elemPtr)->next = (head);					\
	if ((head) != NULL) {						\
	    (head)->prev = (elemPtr);					\
	}								\
	(head) = (elemPtr);						\
    } while (0)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_LIST_REMOVE --
 *
 *	Unlinks 'elemPtr', which must be in the doubly-linked list whose
 *	first element is 'head'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	May set 'head'; changes the links of the neighbours; clears the
 *	element's links.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_LIST_REMOVE(head, elemPtr) \
    MILTER_LIST_REMOVE_AT(head, elemPtr, prevPtr, nextPtr)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_LIST_REMOVE_AT --
 *
 *	MILTER_LIST_REMOVE for links named 'prev' and 'next'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	As MILTER_LIST_REMOVE.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_LIST_REMOVE_AT(head, elemPtr, prev, next) \
    do {								\
	if ((elemPtr)->prev != NULL) {					\
	    (elemPtr)->prev->next = (elemPtr)->next;			\
	} else {							\
	    (head) = (elemPtr)->next;					\
	}								\
	if ((elemPtr)->next != NULL) {					\
	    (elemPtr)->next->prev = (elemPtr)->prev;			\
	}								\
	(elemPtr)->prev = (elemPtr)->next = NULL;			\
    } while (0)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_INIT --
 *
 *	Makes 'head' and 'tail' an empty FIFO.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets 'head' and 'tail'.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_INIT(head, tail) \
    do {								\
	(head) = NULL;							\
	(tail) = &(head);						\
    } while (0)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_APPEND --
 *
 *	Appends 'elemPtr' to the FIFO whose tail is 'tail'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Links the element (as the last one) and moves 'tail' to it.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_APPEND(tail, elemPtr) \
    MILTER_FIFO_APPEND_AT(tail, elemPtr, nextPtr)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_APPEND_AT --
 *
 *	MILTER_FIFO_APPEND for a link named 'next'.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	As MILTER_FIFO_APPEND.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_APPEND_AT(tail, elemPtr, next) \
    do {								\
	(elemPtr)->next = NULL;						\
	*(tail) = (elemPtr);						\
	(tail) = &(elemPtr)->next;					\
    } while (0)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_POP --
 *
 *	Takes the oldest element off the FIFO 'head'/'tail' into 'elemPtr'
 *	(NULL when the FIFO is empty).
 *
 * Results:
 *	None; sets 'elemPtr'.
 *
 * Side effects:
 *	Moves 'head'; resets 'tail' when the FIFO becomes empty.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_POP(head, tail, elemPtr) \
    MILTER_FIFO_POP_AT(head, tail, elemPtr, nextPtr)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_POP_AT --
 *
 *	MILTER_FIFO_POP for a link named 'next'.
 *
 * Results:
 *	None; sets 'elemPtr'.
 *
 * Side effects:
 *	As MILTER_FIFO_POP.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_POP_AT(head, tail, elemPtr, next) \
    do {								\
	(elemPtr) = (head);						\
	if ((elemPtr) != NULL) {					\
	    (head) = (elemPtr)->next;					\
	    if ((head) == NULL) {					\
		(tail) = &(head);					\
	    }								\
	}								\
    } while (0)

/*
 *----------------------------------------------------------------------
 *
 * MILTER_FIFO_PUSH_FRONT --
 *
 *	Puts 'elemPtr' back at the head of the FIFO 'head'/'tail', to be
 *	taken first.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Sets 'head'; sets 'tail' when the FIFO was empty.
 *
 *----------------------------------------------------------------------
 */

#define MILTER_FIFO_PUSH_FRONT(head, tail, elemPtr) \
    do {								\
	(elemPtr)->nextPtr = (head);					\
	if ((head) == NULL) {						\
	    (tail) = &(elemPtr)->nextPtr;				\
	}								\
	(head) = (elemPtr);						\
    } while (0)

#endif /* _MILTERLIST_H */
