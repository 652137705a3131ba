/*
 * replay.c --
 *
 *	A main() for the fuzz targets without libFuzzer: runs
 *	LLVMFuzzerTestOneInput once over each file named on the command line
 *	(a directory stands for the files in it). Build it with a harness
 *	and the code under test, for example
 *
 *	    gcc -DREPLAY -fsanitize=address,undefined -g -O1 -D_GNU_SOURCE \
 *		-Igeneric generic/milterBuf.c generic/milterWire.c \
 *		generic/milterSession.c generic/milterSessionActions.c \
 *		generic/milterSessionInfo.c generic/milterStats.c \
 *		fuzz/fuzz_session.c fuzz/replay.c
 *
 *	An invariant violation or a sanitizer report aborts the process, so
 *	the exit status tells whether every input passed; each file is named
 *	on stderr before it runs so the culprit is known.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/*
 *----------------------------------------------------------------------
 *
 * RunFile --
 *
 *	Reads one file and runs the fuzz target once over an exact-size
 *	copy of it.
 *
 * Results:
 *	0 when the target ran, 1 when the file could not be read.
 *
 * Side effects:
 *	Names the file on stderr when 'verbose'; exits when memory runs
 *	out; the target aborts on a violation.
 *
 *----------------------------------------------------------------------
 */

static int
RunFile(
    const char *path,
    int verbose)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
	perror(path);
	return 1;
    }
    do {
	if (len == cap) {
	    cap = cap ? 2 * cap : 65536;
	    data = realloc(data, cap);
	    if (data == NULL) {
		fprintf(stderr, "out of memory reading %s\n", path);
		exit(1);
	    }
	}
	n = fread(data + len, 1, cap - len, f);
	len += n;
    } while (n > 0);
    if (ferror(f)) {
	perror(path);
	fclose(f);
	free(data);
	return 1;
    }
    fclose(f);
    if (verbose) {
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    }

    /*
     * An exact-size copy so that reads past the input are caught.
     */

    {
	unsigned char *copy = malloc(len ? len : 1);

	if (copy == NULL) {
	    fprintf(stderr, "out of memory\n");
	    exit(1);
	}
	memcpy(copy, data, len);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
    }
    free(data);
    return 0;
}

/*
 *----------------------------------------------------------------------
 *
 * CompareNames --
 *
 *	qsort comparison of two file names, so that a directory replays
 *	in a fixed order.
 *
 * Results:
 *	Negative, zero or positive, as strcmp.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
CompareNames(
    const void *a,
    const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 *----------------------------------------------------------------------
 *
 * main --
 *
 *	Replays every file named on the command line (a directory stands
 *	for the regular files in it, in name order); -q stops naming
 *	them.
 *
 * Results:
 *	The exit status: 0 when every file was read, 1 otherwise.
 *
 * Side effects:
 *	Runs the fuzz target.
 *
 *----------------------------------------------------------------------
 */

int
main(
    int argc,
    char **argv)
{
    int i, failures = 0, count = 0, verbose = 1;

    for (i = 1; i < argc; i++) {
	struct stat st;

	if (strcmp(argv[i], "-q") == 0) {
	    verbose = 0;
	    continue;
	}
	if (stat(argv[i], &st) != 0) {
	    perror(argv[i]);
	    failures++;
	    continue;
	}
	if (S_ISDIR(st.st_mode)) {
	    DIR *dir = opendir(argv[i]);
	    struct dirent *entry;
	    char **names = NULL;
	    size_t nNames = 0, j;

	    if (dir == NULL) {
		perror(argv[i]);
		failures++;
		continue;
	    }
	    while ((entry = readdir(dir)) != NULL) {
		char *path;

		if (entry->d_name[0] == '.') {
		    continue;
		}
		path = malloc(strlen(argv[i]) + strlen(entry->d_name) + 2);
		if (path == NULL) {
		    fprintf(stderr, "out of memory\n");
		    exit(1);
		}
		sprintf(path, "%s/%s", argv[i], entry->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		    free(path);
		    continue;
		}
		names = realloc(names, (nNames + 1) * sizeof(char *));
		if (names == NULL) {
		    fprintf(stderr, "out of memory\n");
		    exit(1);
		}
		names[nNames++] = path;
	    }
	    closedir(dir);
	    qsort(names, nNames, sizeof(char *), CompareNames);
	    for (j = 0; j < nNames; j++) {
		failures += RunFile(names[j], verbose);
		count++;
		free(names[j]);
	    }
	    free(names);
	} else {
	    failures += RunFile(argv[i], verbose);
	    count++;
	}
    }
    fprintf(stderr, "replay: %d input%s run, %d unreadable\n", count,
	    count == 1 ? "" : "s", failures);
    return failures ? 1 : 0;
}
