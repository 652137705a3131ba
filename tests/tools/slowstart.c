/*
 * slowstart.c --
 *
 *	An LD_PRELOAD library for tests/systemd.test, compiled on the fly
 *	into a temporary directory: pthread_create returns to its caller
 *	only after the new thread has had TCLMILTER_SLOWSTART_MS
 *	milliseconds (default 300) to run on its own, as if the creating
 *	thread had been descheduled right after creating it, which happens
 *	now and then on a loaded machine. It makes the races between what a
 *	thread's creator does next and the new thread's first steps
 *	reproducible.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef int (CreateProc)(pthread_t *threadPtr, const pthread_attr_t *attr,
	void *(*start)(void *), void *arg);

/*
 *----------------------------------------------------------------------
 *
 * pthread_create --
 *
 *	The C library's pthread_create, then a pause of the caller.
 *
 * Results:
 *	That of the real pthread_create.
 *
 * Side effects:
 *	Creates a thread; sleeps.
 *
 *----------------------------------------------------------------------
 */

int
pthread_create(
    pthread_t *threadPtr,
    const pthread_attr_t *attr,
    void *(*start)(void *),
    void *arg)
{
    CreateProc *real = (CreateProc *) dlsym(RTLD_NEXT, "pthread_create");
    const char *env = getenv("TCLMILTER_SLOWSTART_MS");
    long ms = env != NULL ? atol(env) : 300;
    struct timespec ts;
    int rc;

    if (real == NULL) {
	return EAGAIN;
    }
    rc = real(threadPtr, attr, start, arg);
    if (rc == 0 && ms > 0) {
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	    /* Sleep what is left. */
	}
    }
    return rc;
}
