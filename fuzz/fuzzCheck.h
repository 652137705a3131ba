/*
 * fuzzCheck.h --
 *
 *	What both fuzz harnesses use to state invariants: CHECK() aborts
 *	with the file and line of a broken one (libFuzzer then keeps the
 *	input), and NO_COVERAGE keeps the reference checks, which walk
 *	whole payloads byte by byte and are not what is being fuzzed, out
 *	of clang's coverage and comparison tracing (they would otherwise
 *	cost most of the time).
 *
 * Copyright (c) 2026 The TclMilter developers.
 * See the file "license.terms" for information on usage and redistribution.
 */

#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) \
    ((cond) ? (void) 0 : Violation(#cond, __FILE__, __LINE__))

#if defined(__clang__) && __clang_major__ >= 13
#   define NO_COVERAGE	__attribute__((no_sanitize("coverage")))
#else
#   define NO_COVERAGE
#endif

/*
 *----------------------------------------------------------------------
 *
 * Violation --
 *
 *	Reports a broken invariant and aborts.
 *
 * Results:
 *	None; does not return.
 *
 * Side effects:
 *	Writes a line to stderr and aborts the process.
 *
 *----------------------------------------------------------------------
 */

static inline void
Violation(
    const char *what,
    const char *file,
    int line)
{
    fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    abort();
}

#endif /* FUZZ_CHECK_H */
