/*
 * milterSocket.c --
 *
 *	Connection specs and listening sockets: unix:/path and local:/path
 *	(a bare path too, as libmilter allows), inet:port@host and
 *	inet6:port@host. At start, whatever sits at a unix socket path is
 *	probed: only a socket that provably has no listener (connect()
 *	refused) is replaced; a live socket, a path that is not a socket or
 *	one that cannot be probed is an error and is left alone, and a
 *	symbolic link is never followed. At stop, only the socket file this
 *	listener created is removed.
 *
 *	fd:N serves a listening socket the process inherited (inetd, a
 *	supervisor, systemd socket activation), through a duplicate of the
 *	descriptor: it is never shut down, re-bound or unlinked, because
 *	whoever passed it goes on listening on it after the milter stops.
 *	The spec "systemd" is accepted here and resolved to fd:N by the
 *	Tcl layer (unix/milterSystemd.c), which reads LISTEN_PID and
 *	LISTEN_FDS.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterServer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * A parsed spec.
 */

typedef struct Spec {
    int family;			/* AF_UNIX, AF_INET or AF_INET6; AF_UNSPEC
				 * for fd:N and systemd. */
    char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
    char port[32];		/* Port number or service name. */
    char host[256];		/* Host, or "" for any address. */
    int fd;			/* fd:N: the descriptor; else -1. */
    int systemd;		/* The spec "systemd". */
} Spec;

/*
 * What ProbePath finds at a unix socket path.
 */

typedef enum PathKind {
    PATH_ABSENT,		/* Nothing: the path is free. */
    PATH_STALE,			/* A socket nobody listens on: connect()
				 * was refused. */
    PATH_LIVE,			/* A socket a process listens on, even one
				 * whose queue is full. */
    PATH_NOT_SOCKET,		/* Anything else, a symbolic link too. */
    PATH_ERROR			/* Cannot tell; never touched. */
} PathKind;

/*
 * How long the probe waits for a connect() in progress, in milliseconds.
 * Still in progress after that means a listener exists.
 */

#define PROBE_WAIT_MS	500

/*
 * The largest TCP port number.
 */

#define MAX_PORT	65535

/*
 * The address of a unix-domain listener is "unix:PATH".
 */

#define UNIX_PREFIX	"unix:"
#define UNIX_PREFIX_LEN	(sizeof(UNIX_PREFIX) - 1)

/*
 * Room for a numeric host: an IPv6 address and its scope ("%eth0").
 */

#define NUMERIC_HOST_LEN	(INET6_ADDRSTRLEN + 20)

/*
 *----------------------------------------------------------------------
 *
 * PortIsValid --
 *
 *	Whether the port of an inet or inet6 spec is a decimal number from
 *	0 to 65535 or has the form of a service name (a letter, then
 *	letters, digits, '-' or '_'), which getaddrinfo resolves at start.
 *	A number out of range must not reach getaddrinfo, which truncates
 *	it to 16 bits.
 *
 * Results:
 *	1 if valid, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
PortIsValid(
    const char *port)
{
    const char *p;
    long value = 0;

    if (port[0] >= '0' && port[0] <= '9') {
	for (p = port; *p != '\0'; p++) {
	    if (*p < '0' || *p > '9') {
		return 0;
	    }
	    value = value * 10 + (*p - '0');
	    if (value > MAX_PORT) {
		return 0;
	    }
	}
	return 1;
    }
    if (!((port[0] >= 'a' && port[0] <= 'z')
	    || (port[0] >= 'A' && port[0] <= 'Z'))) {
	return 0;
    }
    for (p = port; *p != '\0'; p++) {
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
		|| (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) {
	    return 0;
	}
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * ProtoIs --
 *
 *	Whether the protocol part of a spec (its first 'protoLen' bytes,
 *	before the colon) is 'name'.
 *
 * Results:
 *	1 if so, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
ProtoIs(
    const char *spec,
    size_t protoLen,
    const char *name)
{
    return protoLen == strlen(name) && strncmp(spec, name, protoLen) == 0;
}

/*
 *----------------------------------------------------------------------
 *
 * DescriptorNumber --
 *
 *	The number of "fd:N": decimal digits only.
 *
 * Results:
 *	The number, or -1 when the text is not a non-negative integer that
 *	fits an int.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
DescriptorNumber(
    const char *text)
{
    const char *p;
    long value = 0;

    for (p = text; *p >= '0' && *p <= '9'; p++) {
	value = value * 10 + (*p - '0');
	if (value > INT_MAX) {
	    break;
	}
    }
    return (p == text || *p != '\0') ? -1 : (int) value;
}

/*
 *----------------------------------------------------------------------
 *
 * ParseUnixSpec --
 *
 *	The address of "unix:PATH" or "local:PATH" (or a bare PATH): an
 *	absolute path that fits a sockaddr_un.
 *
 * Results:
 *	1 on success; 0 with a message in 'err'.
 *
 * Side effects:
 *	Fills in *specPtr.
 *
 *----------------------------------------------------------------------
 */

static int
ParseUnixSpec(
    const char *rest,		/* The path. */
    Spec *specPtr,
    char *err,
    size_t errLen)
{
    if (rest[0] != '/') {
	snprintf(err, errLen, "unix socket path \"%s\" must be absolute",
		rest);
	return 0;
    }
    if (strlen(rest) >= sizeof(specPtr->path)) {
	snprintf(err, errLen, "unix socket path \"%s\" is too long", rest);
	return 0;
    }
    specPtr->family = AF_UNIX;
    strcpy(specPtr->path, rest);
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * ParseInetSpec --
 *
 *	The address of "inet:PORT@HOST" or "inet6:PORT@HOST": a port number
 *	or service name, and an optional host, which may be in brackets.
 *
 * Results:
 *	1 on success; 0 with a message in 'err'.
 *
 * Side effects:
 *	Fills in the port and host of *specPtr.
 *
 *----------------------------------------------------------------------
 */

static int
ParseInetSpec(
    const char *spec,		/* The whole spec, for messages. */
    const char *rest,		/* What follows the colon. */
    Spec *specPtr,
    char *err,
    size_t errLen)
{
    const char *at = strchr(rest, '@');
    size_t portLen = at ? (size_t) (at - rest) : strlen(rest);
    const char *host = at ? at + 1 : "";
    size_t hostLen = strlen(host);

    if (portLen == 0 || portLen >= sizeof(specPtr->port)) {
	snprintf(err, errLen, "missing or bad port in \"%s\"", spec);
	return 0;
    }
    if (hostLen >= 2 && host[0] == '[' && host[hostLen - 1] == ']') {
	host++;
	hostLen -= 2;
    }
    if (hostLen >= sizeof(specPtr->host)) {
	snprintf(err, errLen, "host name too long in \"%s\"", spec);
	return 0;
    }
    memcpy(specPtr->port, rest, portLen);
    memcpy(specPtr->host, host, hostLen);
    if (!PortIsValid(specPtr->port)) {
	snprintf(err, errLen, "bad port \"%s\" in \"%s\": must be an "
		"integer from 0 to 65535 or a service name",
		specPtr->port, spec);
	return 0;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * ParseSpec --
 *
 *	Splits "proto:address" into a Spec.
 *
 * Results:
 *	1 on success; 0 with a message in 'err'.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
ParseSpec(
    const char *spec,
    Spec *specPtr,
    char *err,
    size_t errLen)
{
    const char *colon = strchr(spec, ':');
    const char *rest = colon ? colon + 1 : spec;
    size_t protoLen = colon ? (size_t) (colon - spec) : 0;

    memset(specPtr, 0, sizeof(Spec));
    specPtr->fd = -1;
    if (strcmp(spec, "systemd") == 0) {
	specPtr->family = AF_UNSPEC;
	specPtr->systemd = 1;
	return 1;
    }
    if (ProtoIs(spec, protoLen, "fd")) {
	specPtr->family = AF_UNSPEC;
	specPtr->fd = DescriptorNumber(rest);
	if (specPtr->fd < 0) {
	    snprintf(err, errLen, "bad descriptor \"%s\" in \"%s\": must be "
		    "a non-negative integer", rest, spec);
	    return 0;
	}
	return 1;
    }
    if (colon == NULL || ProtoIs(spec, protoLen, "unix")
	    || ProtoIs(spec, protoLen, "local")) {
	return ParseUnixSpec(rest, specPtr, err, errLen);
    }
    if (ProtoIs(spec, protoLen, "inet")) {
	specPtr->family = AF_INET;
    } else if (ProtoIs(spec, protoLen, "inet6")) {
	specPtr->family = AF_INET6;
    } else {
	snprintf(err, errLen, "unknown protocol in \"%s\": must be unix, "
		"local, inet, inet6 or fd, or the spec systemd", spec);
	return 0;
    }
    return ParseInetSpec(spec, rest, specPtr, err, errLen);
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSocketCheckSpec --
 *
 *	Validates a spec's syntax (used by configure).
 *
 * Results:
 *	1 if valid, else 0 with a message.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSocketCheckSpec(
    const char *spec,
    char *err,
    size_t errLen)
{
    Spec parsed;

    return ParseSpec(spec, &parsed, err, errLen);
}

/*
 *----------------------------------------------------------------------
 *
 * ProbePath --
 *
 *	Classifies what sits at a unix socket path, without following a
 *	symbolic link: nothing, a stale socket, a live socket, something
 *	that is not a socket, or a socket that cannot be probed. A socket
 *	is probed with a non-blocking connect(): only ECONNREFUSED proves
 *	that nobody listens. A connect() that would block (EAGAIN, or
 *	EINPROGRESS for longer than PROBE_WAIT_MS) means a listener whose
 *	queue is full. Any other failure, such as EACCES for another
 *	user's socket, proves nothing.
 *
 * Results:
 *	The kind of path; with PATH_STALE the socket's stat in *stPtr; with
 *	PATH_LIVE, PATH_NOT_SOCKET and PATH_ERROR a message in 'err'.
 *
 * Side effects:
 *	Connects to the socket, if any, and closes the connection at once.
 *
 *----------------------------------------------------------------------
 */

static PathKind
ProbePath(
    const char *path,		/* Absolute, shorter than sun_path. */
    struct stat *stPtr,
    char *err,
    size_t errLen)
{
    struct sockaddr_un sun;
    struct pollfd pfd;
    socklen_t len;
    int probe, error, ready;

    if (lstat(path, stPtr) != 0) {
	if (errno == ENOENT) {
	    return PATH_ABSENT;
	}
	snprintf(err, errLen, "cannot examine \"%s\": %s", path,
		strerror(errno));
	return PATH_ERROR;
    }
    if (!S_ISSOCK(stPtr->st_mode)) {
	snprintf(err, errLen, "\"%s\" exists and is not a socket", path);
	return PATH_NOT_SOCKET;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0) {
	snprintf(err, errLen, "socket: %s", strerror(errno));
	return PATH_ERROR;
    }
    error = 0;
    if (connect(probe, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
	error = errno;
    }
    if (error == EINPROGRESS || error == EINTR) {
	pfd.fd = probe;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	ready = poll(&pfd, 1, PROBE_WAIT_MS);
	if (ready == 0) {
	    error = EAGAIN;		/* Still waiting for the listener. */
	} else if (ready < 0) {
	    error = errno;
	} else {
	    len = sizeof(error);
	    if (getsockopt(probe, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
		error = errno;
	    }
	}
    }
    close(probe);
    switch (error) {
    case 0:
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
	snprintf(err, errLen, "another process is listening on \"%s\"",
		path);
	return PATH_LIVE;
    case ECONNREFUSED:
	return PATH_STALE;
    case ENOENT:
	return PATH_ABSENT;		/* Removed since the lstat(). */
    default:
	snprintf(err, errLen, "cannot tell whether \"%s\" is in use: %s",
		path, strerror(error));
	return PATH_ERROR;
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ListenPrivately --
 *
 *	Binds a unix socket inside a private 0700 directory beside the
 *	target, sets its mode (and its owner and group, when asked),
 *	listens, then links it into place: it is never reachable with the
 *	umask's mode or the wrong group, connecting to the path never finds
 *	it bound but not yet listening, and link() refuses to replace
 *	whatever may have appeared at the path meanwhile.
 *
 * Results:
 *	1 on success, with the device and inode of the socket file in
 *	*lPtr (from the private name, which only we can change, so they
 *	are those of the file we linked); else 0 with a message.
 *
 * Side effects:
 *	Creates the socket file at 'path'; creates and removes the
 *	private directory.
 *
 *----------------------------------------------------------------------
 */

static int
ListenPrivately(
    int fd,
    const char *path,		/* Absolute (checked by the spec parser). */
    int mode,			/* Permissions of the socket file. */
    int uid,			/* Owner to give it, or -1. */
    int gid,			/* Group to give it, or -1. */
    int backlog,
    MilterListener *lPtr,
    char *err,
    size_t errLen)
{
    struct sockaddr_un sun;
    struct stat st;
    char dir[sizeof(sun.sun_path)];
    const char *slash = strrchr(path, '/');
    size_t dirLen = (size_t) (slash - path);
    const char *failed = NULL;
    int error = 0;

    if (dirLen + sizeof("/.tclmilter-XXXXXX/s") > sizeof(dir)) {
	snprintf(err, errLen, "unix socket path \"%s\" is too long", path);
	return 0;
    }
    if (uid != -1 && geteuid() != 0 && (uid_t) uid != geteuid()) {
	snprintf(err, errLen, "cannot give \"%s\" the owner %d: "
		"-socketowner needs root (this process runs as user %d)",
		path, uid, (int) geteuid());
	return 0;
    }
    memcpy(dir, path, dirLen);
    strcpy(dir + dirLen, "/.tclmilter-XXXXXX");
    if (mkdtemp(dir) == NULL) {
	snprintf(err, errLen, "cannot bind \"%s\": %s", path,
		strerror(errno));
	return 0;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, dir, strlen(dir));
    memcpy(sun.sun_path + strlen(dir), "/s", 3);
    if (bind(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0
	    || chmod(sun.sun_path, (mode_t) mode) != 0) {
	failed = "cannot bind";
    } else if ((uid != -1 || gid != -1)
	    && chown(sun.sun_path, (uid_t) uid, (gid_t) gid) != 0) {
	failed = "cannot set the owner or group of";
    } else if (listen(fd, backlog) != 0) {
	failed = "cannot listen on";
    } else if (link(sun.sun_path, path) != 0) {
	failed = "cannot bind";
    }
    error = errno;
    if (failed == NULL && lstat(sun.sun_path, &st) == 0) {
	lPtr->ownsPath = 1;
	lPtr->dev = (unsigned long long) st.st_dev;
	lPtr->ino = (unsigned long long) st.st_ino;
    }
    unlink(sun.sun_path);
    rmdir(dir);
    if (failed != NULL) {
	snprintf(err, errLen, "%s \"%s\": %s", failed, path,
		strerror(error));
	return 0;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * ListenUnix --
 *
 *	Opens a listening unix socket, non-blocking and close-on-exec, at
 *	the spec's path: a stale socket there is replaced, anything else
 *	already there is an error and is left alone.
 *
 * Results:
 *	The descriptor, or -1 with a message.
 *
 * Side effects:
 *	Creates the socket file; may unlink a stale one.
 *
 *----------------------------------------------------------------------
 */

static int
ListenUnix(
    const Spec *specPtr,
    int backlog,
    int mode,			/* Permissions of the socket file. */
    int uid,
    int gid,
    MilterListener *lPtr,
    char *err,
    size_t errLen)
{
    const char *path = specPtr->path;
    struct stat st, now;
    int fd;

    switch (ProbePath(path, &st, err, errLen)) {
    case PATH_ABSENT:
	break;
    case PATH_STALE:
	/*
	 * Remove it only if it is still the socket probed; if anything
	 * else took its place meanwhile, link() below refuses it.
	 */

	if (lstat(path, &now) == 0 && now.st_dev == st.st_dev
		&& now.st_ino == st.st_ino && unlink(path) != 0
		&& errno != ENOENT) {
	    snprintf(err, errLen, "cannot remove stale socket \"%s\": %s",
		    path, strerror(errno));
	    return -1;
	}
	break;
    default:
	return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
	snprintf(err, errLen, "socket: %s", strerror(errno));
	return -1;
    }
    if (!ListenPrivately(fd, path, mode, uid, gid, backlog, lPtr, err,
	    errLen)) {
	close(fd);
	return -1;
    }
    snprintf(lPtr->address, sizeof(lPtr->address), UNIX_PREFIX "%s", path);
    return fd;
}

/*
 *----------------------------------------------------------------------
 *
 * ListenInet --
 *
 *	Opens a listening TCP socket, non-blocking and close-on-exec, on
 *	the first address the spec's host and port resolve to.
 *
 * Results:
 *	The descriptor, with the address actually bound in lPtr->address;
 *	or -1 with a message.
 *
 * Side effects:
 *	Creates a socket.
 *
 *----------------------------------------------------------------------
 */

static int
ListenInet(
    const Spec *specPtr,
    int backlog,
    MilterListener *lPtr,
    char *err,
    size_t errLen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[NUMERIC_HOST_LEN], port[NI_MAXSERV];	/* Numeric. */
    struct sockaddr_storage bound;
    socklen_t boundLen = sizeof(bound);
    int fd = -1, rc, on = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = specPtr->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(specPtr->host[0] ? specPtr->host : NULL, specPtr->port,
	    &hints, &res);
    if (rc != 0) {
	snprintf(err, errLen, "cannot resolve \"%s@%s\": %s", specPtr->port,
		specPtr->host, gai_strerror(rc));
	return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
	fd = socket(ai->ai_family,
		ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
	    continue;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6) {
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0
		&& listen(fd, backlog) == 0) {
	    break;
	}
	snprintf(err, errLen, "cannot listen on \"%s@%s\": %s",
		specPtr->port, specPtr->host, strerror(errno));
	close(fd);
	fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
	return -1;
    }
    if (getsockname(fd, (struct sockaddr *) &bound, &boundLen) == 0
	    && getnameinfo((struct sockaddr *) &bound, boundLen, host,
		sizeof(host), port, sizeof(port),
		NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
	snprintf(lPtr->address, sizeof(lPtr->address), "%s:%s@%s",
		specPtr->family == AF_INET6 ? "inet6" : "inet", port, host);
    }
    return fd;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSocketCheckFd --
 *
 *	Whether a descriptor is a listening stream socket of a family we
 *	serve (unix, IPv4, IPv6), as fd:N and systemd need.
 *
 * Results:
 *	1 if so; else 0 with a message.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

int
MilterSocketCheckFd(
    int fd,
    char *err,
    size_t errLen)
{
    int value = 0;
    socklen_t len = sizeof(value);

    if (fcntl(fd, F_GETFD) < 0) {
	snprintf(err, errLen, "descriptor %d is not open", fd);
	return 0;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) != 0) {
	snprintf(err, errLen, "descriptor %d is not a socket: %s", fd,
		strerror(errno));
	return 0;
    }
    if (value != SOCK_STREAM) {
	snprintf(err, errLen, "descriptor %d is not a stream socket", fd);
	return 0;
    }
    len = sizeof(value);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) != 0
	    || (value != AF_UNIX && value != AF_INET && value != AF_INET6)) {
	snprintf(err, errLen, "descriptor %d is not a unix, IPv4 or IPv6 "
		"socket", fd);
	return 0;
    }
    len = sizeof(value);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) != 0
	    || value == 0) {
	snprintf(err, errLen, "descriptor %d is not a listening socket", fd);
	return 0;
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * InheritedAddress --
 *
 *	The address an inherited listening socket is bound to, in the form
 *	of a spec: unix:PATH (unix:@NAME for an abstract socket),
 *	inet:PORT@HOST or inet6:PORT@HOST; or fd:N when it has no name.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Fills lPtr->address.
 *
 *----------------------------------------------------------------------
 */

static void
InheritedAddress(
    int fd,			/* The descriptor named in the spec. */
    int dupFd,			/* Ours. */
    MilterListener *lPtr)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    char host[NUMERIC_HOST_LEN], port[NI_MAXSERV];

    memset(&bound, 0, sizeof(bound));
    snprintf(lPtr->address, sizeof(lPtr->address), "fd:%d", fd);
    if (getsockname(dupFd, (struct sockaddr *) &bound, &len) != 0) {
	return;
    }
    if (bound.ss_family == AF_UNIX) {
	struct sockaddr_un *sunPtr = (struct sockaddr_un *) &bound;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t pathLen = len > off ? len - off : 0;

	if (pathLen > sizeof(sunPtr->sun_path)) {
	    pathLen = sizeof(sunPtr->sun_path);
	}
	if (pathLen > 0 && sunPtr->sun_path[0] != '\0') {
	    snprintf(lPtr->address, sizeof(lPtr->address), UNIX_PREFIX "%.*s",
		    (int) strnlen(sunPtr->sun_path, pathLen),
		    sunPtr->sun_path);
	} else if (pathLen > 1) {
	    snprintf(lPtr->address, sizeof(lPtr->address), UNIX_PREFIX "@%.*s",
		    (int) pathLen - 1, sunPtr->sun_path + 1);
	}
    } else if (getnameinfo((struct sockaddr *) &bound, len, host,
	    sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
	snprintf(lPtr->address, sizeof(lPtr->address), "%s:%s@%s",
		bound.ss_family == AF_INET6 ? "inet6" : "inet", port, host);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * ListenInherited --
 *
 *	Serves an inherited listening socket (fd:N): checks it, and takes
 *	a non-blocking, close-on-exec duplicate of it. The descriptor
 *	itself stays open, marked close-on-exec (as sd_listen_fds does), so
 *	that programs started with exec do not inherit it and the milter
 *	can be started on it again after a stop.
 *
 * Results:
 *	Our descriptor, with the address in lPtr->address; or -1 with a
 *	message.
 *
 * Side effects:
 *	Sets O_NONBLOCK on the socket (shared by every descriptor of it)
 *	and FD_CLOEXEC on 'fd'.
 *
 *----------------------------------------------------------------------
 */

static int
ListenInherited(
    int fd,
    MilterListener *lPtr,
    char *err,
    size_t errLen)
{
    int dupFd, flags;

    if (!MilterSocketCheckFd(fd, err, errLen)) {
	return -1;
    }
    dupFd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupFd < 0) {
	snprintf(err, errLen, "cannot duplicate descriptor %d: %s", fd,
		strerror(errno));
	return -1;
    }
    flags = fcntl(dupFd, F_GETFL);
    if (flags < 0 || fcntl(dupFd, F_SETFL, flags | O_NONBLOCK) != 0) {
	snprintf(err, errLen, "cannot make descriptor %d non-blocking: %s",
		fd, strerror(errno));
	close(dupFd);
	return -1;
    }
    flags = fcntl(fd, F_GETFD);
    if (flags >= 0) {
	fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    lPtr->inherited = 1;
    InheritedAddress(fd, dupFd, lPtr);
    return dupFd;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSocketListen --
 *
 *	Opens the listening socket for a spec, or takes over an inherited
 *	one (fd:N).
 *
 * Results:
 *	The descriptor (also in lPtr->fd) with, in lPtr->address, the spec
 *	actually bound (with the real port when 0 was asked for, the real
 *	address of an inherited socket); or -1 with a message.
 *
 * Side effects:
 *	Creates a socket, or duplicates an inherited one.
 *
 *----------------------------------------------------------------------
 */

int
MilterSocketListen(
    const char *spec,
    int backlog,
    int mode,			/* Of a unix socket file we create. */
    int uid,			/* Its owner, or -1. */
    int gid,			/* Its group, or -1. */
    MilterListener *lPtr,
    char *err,
    size_t errLen)
{
    Spec parsed;

    memset(lPtr, 0, sizeof(MilterListener));
    lPtr->fd = -1;
    if (!ParseSpec(spec, &parsed, err, errLen)) {
	return -1;
    }
    if (backlog <= 0) {
	backlog = SOMAXCONN;
    }
    snprintf(lPtr->address, sizeof(lPtr->address), "%s", spec);
    if (parsed.systemd) {
	snprintf(err, errLen, "the spec systemd must be resolved to fd:N "
		"first");
    } else if (parsed.fd >= 0) {
	lPtr->fd = ListenInherited(parsed.fd, lPtr, err, errLen);
    } else if (parsed.family == AF_UNIX) {
	lPtr->fd = ListenUnix(&parsed, backlog, mode, uid, gid, lPtr, err,
		errLen);
    } else {
	lPtr->fd = ListenInet(&parsed, backlog, lPtr, err, errLen);
    }
    return lPtr->fd;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSocketRefuse --
 *
 *	Any thread, at a stop: makes the listening socket refuse new
 *	connections at once (a shut-down listening socket, unix or TCP,
 *	answers connect() with ECONNREFUSED) while its descriptor stays
 *	valid for the network thread to close. Not for an inherited
 *	socket: shutdown() acts on the socket, not the descriptor, and
 *	would break it for the process that passed it (systemd), which
 *	keeps it to start the next instance; connections that come after
 *	the stop wait in its queue for that instance instead.
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	shutdown().
 *
 *----------------------------------------------------------------------
 */

void
MilterSocketRefuse(
    MilterListener *lPtr)
{
    if (lPtr->fd >= 0 && !lPtr->inherited) {
	shutdown(lPtr->fd, SHUT_RDWR);
    }
}

/*
 *----------------------------------------------------------------------
 *
 * MilterSocketClose --
 *
 *	Closes the listening socket (our duplicate, for an inherited one)
 *	and, for a unix socket file it created, removes that file if it is
 *	still the same one (device and inode).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Closes fd; may unlink the socket file.
 *
 *----------------------------------------------------------------------
 */

void
MilterSocketClose(
    MilterListener *lPtr)
{
    struct stat st;
    const char *path = lPtr->address + UNIX_PREFIX_LEN;

    if (lPtr->fd >= 0) {
	close(lPtr->fd);
	lPtr->fd = -1;
    }
    if (lPtr->ownsPath && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)
	    && (unsigned long long) st.st_dev == lPtr->dev
	    && (unsigned long long) st.st_ino == lPtr->ino) {
	unlink(path);
    }
    lPtr->ownsPath = 0;
}
