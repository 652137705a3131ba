/*
 * churn.c --
 *
 *	A small, fast MTA-side milter client for tests/load.test, compiled
 *	on the fly into a temporary directory.  Two modes:
 *
 *	    churn message HOST PORT COUNT
 *		COUNT connections one after another, each negotiating and
 *		running one whole message (CONNECT, HELO, MAIL, RCPT, DATA,
 *		a header, EOH, a body chunk, EOM), then QUIT.  Commands the
 *		milter disabled are not sent; replies it declined (SMFIP_NR_*)
 *		are not waited for.  Prints "ok COUNT" at the end.
 *
 *	    churn idle HOST PORT COUNT
 *		Opens COUNT connections and negotiates on each, prints
 *		"held COUNT", then waits for a line (or EOF) on stdin and
 *		closes them all.  Prints "closed COUNT".
 *
 *	On any failure it prints "error ..." and exits with status 1.  Every
 *	read has a 10 second timeout, so a stuck milter cannot hang the
 *	test.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS	10000

static struct sockaddr_in target;

static void
Fail(
    const char *what,
    long n)
{
    printf("error %s (connection %ld): %s\n", what, n,
	    errno ? strerror(errno) : "protocol");
    fflush(stdout);
    exit(1);
}

static int
Connect(
    long n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;

    if (fd < 0) {
	Fail("socket", n);
    }
    if (connect(fd, (struct sockaddr *) &target, sizeof(target)) != 0) {
	Fail("connect", n);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return fd;
}

static void
Send(
    int fd,
    char cmd,
    const void *data,
    size_t len,
    long n)
{
    unsigned char buf[1024];
    uint32_t netlen = htonl((uint32_t) len + 1);
    size_t total = 5 + len, off = 0;

    if (total > sizeof(buf)) {
	errno = 0;
	Fail("packet too long", n);
    }
    memcpy(buf, &netlen, 4);
    buf[4] = (unsigned char) cmd;
    memcpy(buf + 5, data, len);
    while (off < total) {
	ssize_t w = send(fd, buf + off, total - off, MSG_NOSIGNAL);

	if (w < 0 && errno == EINTR) {
	    continue;
	}
	if (w <= 0) {
	    Fail("send", n);
	}
	off += (size_t) w;
    }
}

static void
ReadFull(
    int fd,
    unsigned char *buf,
    size_t len,
    long n)
{
    size_t off = 0;

    while (off < len) {
	struct pollfd pfd;
	ssize_t r;

	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, TIMEOUT_MS) <= 0) {
	    errno = 0;
	    Fail("timeout waiting for the milter", n);
	}
	r = read(fd, buf + off, len - off);
	if (r < 0 && errno == EINTR) {
	    continue;
	}
	if (r <= 0) {
	    if (r == 0) {
		errno = 0;
	    }
	    Fail("read", n);
	}
	off += (size_t) r;
    }
}

/*
 * Reads one packet; returns its command byte and stores up to 'max' data
 * bytes in 'data'.  Progress and modification packets (which precede the
 * final reply to EOM) are read and skipped.
 */

static int
ReadReply(
    int fd,
    unsigned char *data,
    size_t max,
    long n)
{
    for (;;) {
	unsigned char head[5], skip[256];
	uint32_t len;
	size_t left;

	ReadFull(fd, head, 5, n);
	memcpy(&len, head, 4);
	len = ntohl(len);
	if (len == 0 || len > 1000000) {
	    errno = 0;
	    Fail("bad reply length", n);
	}
	left = len - 1;
	if (data != NULL && left <= max) {
	    ReadFull(fd, data, left, n);
	    left = 0;
	}
	while (left > 0) {
	    size_t chunk = left < sizeof(skip) ? left : sizeof(skip);

	    ReadFull(fd, skip, chunk, n);
	    left -= chunk;
	}
	if (strchr("phimbe+-2q", head[4]) == NULL) {
	    return head[4];
	}
    }
}

static uint32_t
Negotiate(
    int fd,
    long n)
{
    uint32_t offer[3], reply[3];
    unsigned char data[1024];

    offer[0] = htonl(6);
    offer[1] = htonl(0x1ff);
    offer[2] = htonl(0x1fffff);
    Send(fd, 'O', offer, sizeof(offer), n);
    if (ReadReply(fd, data, sizeof(data), n) != 'O') {
	errno = 0;
	Fail("negotiation reply", n);
    }
    memcpy(reply, data, sizeof(reply));
    return ntohl(reply[2]);
}

/*
 * One command: skipped when its SMFIP_NO* bit is set, no reply awaited
 * when its SMFIP_NR_* bit is set; otherwise the reply must be one of
 * 'ok'.
 */

static void
Command(
    int fd,
    uint32_t proto,
    char cmd,
    const char *data,
    size_t len,
    uint32_t noBit,
    uint32_t nrBit,
    const char *ok,
    long n)
{
    int reply;

    if (proto & noBit) {
	return;
    }
    Send(fd, cmd, data, len, n);
    if (proto & nrBit) {
	return;
    }
    reply = ReadReply(fd, NULL, 0, n);
    if (strchr(ok, reply) == NULL) {
	char what[64];

	snprintf(what, sizeof(what), "unexpected reply '%c' to '%c'",
		reply, cmd);
	errno = 0;
	Fail(what, n);
    }
}

static void
Message(
    long n)
{
    static const char conn[] = "churn.example.org\0" "4\0\x19" "127.0.0.1";
    static const char helo[] = "churn.example.org";
    static const char from[] = "<from@example.org>";
    static const char rcpt[] = "<to@example.org>";
    static const char hdr[] = "Subject\0churn";
    static const char body[] = "Hello.\r\n";
    int fd = Connect(n);
    uint32_t proto = Negotiate(fd, n);

    Command(fd, proto, 'C', conn, sizeof(conn), 0x1, 0x1000, "c", n);
    Command(fd, proto, 'H', helo, sizeof(helo), 0x2, 0x2000, "c", n);
    Command(fd, proto, 'M', from, sizeof(from), 0x4, 0x4000, "c", n);
    Command(fd, proto, 'R', rcpt, sizeof(rcpt), 0x8, 0x8000, "c", n);
    Command(fd, proto, 'T', "", 0, 0x200, 0x10000, "c", n);
    Command(fd, proto, 'L', hdr, sizeof(hdr), 0x20, 0x80, "c", n);
    Command(fd, proto, 'N', "", 0, 0x40, 0x40000, "c", n);
    Command(fd, proto, 'B', body, sizeof(body) - 1, 0x10, 0x80000, "c", n);
    Command(fd, proto, 'E', "", 0, 0, 0, "ca", n);
    Send(fd, 'Q', "", 0, n);
    close(fd);
}

int
main(
    int argc,
    char **argv)
{
    long count, i;

    if (argc != 5) {
	fprintf(stderr, "usage: churn message|idle HOST PORT COUNT\n");
	return 2;
    }
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t) atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
	fprintf(stderr, "bad host \"%s\"\n", argv[2]);
	return 2;
    }
    count = atol(argv[4]);

    if (strcmp(argv[1], "message") == 0) {
	for (i = 1; i <= count; i++) {
	    Message(i);
	}
	printf("ok %ld\n", count);
	return 0;
    }
    if (strcmp(argv[1], "idle") == 0) {
	int *fds = calloc((size_t) count, sizeof(int));
	char line[64];

	for (i = 0; i < count; i++) {
	    fds[i] = Connect(i + 1);
	    Negotiate(fds[i], i + 1);
	}
	printf("held %ld\n", count);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL) {
	    line[0] = '\0';
	}
	for (i = 0; i < count; i++) {
	    close(fds[i]);
	}
	free(fds);
	printf("closed %ld\n", count);
	return 0;
    }
    fprintf(stderr, "bad mode \"%s\"\n", argv[1]);
    return 2;
}
