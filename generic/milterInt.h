/*
 * milterInt.h --
 *
 *	Declarations shared by the Tcl layer of TclMilter: the per-interp
 *	milter state, context objects, and the procedures the files of this
 *	layer call in each other.
 *
 *	Threads: everything here belongs to the owner thread (the thread of
 *	the interpreter that loaded the package) except the fields marked
 *	"lock", which the network thread and other Tcl threads also touch,
 *	under MilterState.lock. No Tcl_Obj is ever seen by another thread.
 *
 *	Locking order: a connection's mutex (milterConn.c), then
 *	MilterState.lock, then the registry mutex (milterBridge.c). The
 *	mutexes of unix/milterSignal.c and unix/milterSystemd.c are leaves:
 *	nothing else is locked while one is held. No script is ever
 *	evaluated with any of them held.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTERINT_H
#define _MILTERINT_H

#include <tcl.h>
#include "milter.h"
#include "milterServer.h"

/*
 * Tcl 9 readiness.
 */

#ifndef TCL_SIZE_MAX
/*
 * The most lines a multi-line SMTP reply (setreply, milter session abort)
 * may have.
 */

#define MILTER_REPLY_LINES 32

typedef int Tcl_Size;
#endif

/*
 * What the milter of an interpreter is doing.
 */

typedef enum MilterStatus {
    MILTER_IDLE,		/* Not listening. */
    MILTER_RUNNING,		/* Listening and serving. */
    MILTER_DRAINING		/* Stopped listening; finishing messages. */
} MilterStatus;

typedef struct MilterCtx MilterCtx;
typedef struct MilterPool MilterPool;
typedef struct MilterWorker MilterWorker;
typedef struct MilterCall MilterCall;

/*
 * What Invoke returns instead of a verdict when the callback, running in
 * its own coroutine (-coroutines 1), yielded: the connection stays busy
 * until the coroutine finishes (milterCoro.c). Never a real verdict.
 */

#define MILTER_SUSPENDED	(-1)

/*
 * A connection whose event a callback on the owner's stack is deciding
 * (MilterRunConn). The frames of nested event loops form a stack.
 */

typedef struct MilterCallbackFrame {
    MilterConn *conn;
    int type;			/* The event, a MILTER_EV_*. */
    int answered;		/* MilterAnswerPending replied for it. */
    struct MilterCallbackFrame *nextPtr;
				/* The frame further down the stack. */
} MilterCallbackFrame;

/*
 * The rate limit of a class of log lines, a token bucket (milterLog.c).
 * Guarded by MilterState.lock.
 */

#define MILTER_LOG_LIMITS 2	/* Errors; warnings and notices. */

typedef struct MilterLogLimit {
    double tokens;		/* Lines it lets through now. */
    long long last;		/* When tokens was computed, monotonic
				 * microseconds; 0: never (starts full). */
    unsigned long suppressed;	/* Lines held back since the last report. */
    long long since;		/* When the first of them was. */
} MilterLogLimit;

/*
 * The most bytes written to standard error at once: no more than
 * PIPE_BUF, so that a pipe that poll() calls writable takes them without
 * blocking.
 */

#define MILTER_LOG_OUT	4096

/*
 * The milter of one interpreter (AssocData "milter").
 */

typedef struct MilterState {
    Tcl_Interp *interp;		/* Owner interpreter; NULL once deleted. */
    Tcl_ThreadId owner;		/* Its thread. */

    /* Configuration (milter configure). */
    Tcl_Obj *nameObj;		/* -name */
    Tcl_Obj *connectionObj;	/* -connection */
    int timeout;		/* -timeout, seconds */
    int backlog;		/* -backlog */
    int debugLevel;		/* -debuglevel */
    Tcl_Obj *logCommandObj;	/* -logcommand, or NULL */
    Tcl_Encoding encoding;	/* -encoding */
    int asciiCompatible;	/* The encoding maps ASCII to itself. */
    int defaultReply;		/* -defaultreply, a MILTER_* verdict */
    int maxConnections;		/* -maxconnections */
    int drainTimeout;		/* -draintimeout, milliseconds */
    int socketMode;		/* -socketmode */
    int maxDataSize;		/* -maxdatasize */
    int leadingSpace;		/* -leadingspace */
    int workers;		/* -workers */
    Tcl_Obj *workerInitObj;	/* -workerinit, or NULL */
    int coroutines;		/* -coroutines */
    Tcl_Obj *signalsObj;	/* -signals, a dict, or NULL when empty */
    Tcl_Obj *socketGroupObj;	/* -socketgroup, or NULL */
    int socketGid;		/* ... as a group id, or -1 */
    Tcl_Obj *socketOwnerObj;	/* -socketowner, or NULL */
    int socketUid;		/* ... as a user id, or -1 */
    Tcl_Obj *syslogIdentObj;	/* -syslogident, or NULL */

    Tcl_Obj *callbacks[MILTER_EV_COUNT];
				/* Command prefixes, or NULL. */
    unsigned wanted;		/* MILTER_EVBIT mask of the above. */

    MilterServer *server;	/* While not idle (owner only). */
    MilterQueue *queue;		/* The ready queue this interpreter
				 * drains, while not idle. */
    MilterPool *pool;		/* Owner with -workers, while not idle. */
    MilterWorker *workerPtr;	/* Set in a worker's interpreter. */
    unsigned configEpoch;	/* Worker: the pool configuration it has. */
    MilterStatus status;
    int inMain;			/* milter main is waiting. */
    int draining;		/* Nesting depth of ready-queue drains. */
    int finishPending;		/* The server stopped during a drain. */
    int shutDown;		/* Torn down: no more events run. */
    unsigned long ctxCounter;	/* For context command names. */
    MilterCtx *contexts;	/* Live contexts. */
    MilterCallbackFrame *frames;/* Events being decided, innermost
				 * first. */

    /* Coroutine callbacks (milterCoro.c). */
    MilterCall *calls;		/* Suspended callbacks whose connection
				 * waits for them. */
    MilterCall *startingCall;	/* The call whose coroutine is being
				 * created, for the runner command. */
    unsigned long coroCounter;	/* For coroutine names. */
    Tcl_Command runnerToken;	/* ::milter::coro::callback, or NULL. */
    Tcl_Obj *coroutineCmdObj;	/* "::coroutine", or NULL. */
    Tcl_Obj *runnerNameObj;	/* "::milter::coro::callback", or NULL. */

    /* Signals (unix/milterSignal.c) and systemd (unix/milterSystemd.c). */
    int signalsInstalled;	/* This milter handles signals now ... */
    int signalsByMain;		/* ... because milter main runs. */
    char notifyPath[110];	/* NOTIFY_SOCKET as found at start, or "";
				 * set while idle, read by any thread that
				 * stops the milter. */

    Tcl_Mutex lock;
    int posted;			/* lock: a drain event is queued. */
    int serverStopped;		/* lock: the stopped hook ran. */
    int dead;			/* lock: queue nothing more. */

    /* The log (milterLog.c). */
    struct LogLine *logHead;	/* lock: lines to deliver, oldest first. */
    struct LogLine **logTail;	/* lock */
    int logCount;		/* lock: lines queued. */
    size_t logBytes;		/* lock: their message bytes. */
    unsigned long logDropped;	/* lock: lines the full queue dropped
				 * since the last report. */
    MilterLogLimit logLimits[MILTER_LOG_LIMITS];
				/* lock: rate limits by class. */
    int useLogCommand;		/* lock: -logcommand is set. */
    char logName[64];		/* lock: -name, for lines on stderr. */
    int logSyslog;		/* lock: -logdestination syslog. */
    int syslogFacility;		/* lock: -syslogfacility, an index into
				 * milterFacilityNames. */
    char syslogIdent[64];	/* lock: -syslogident; "" for -name. */
    int syslogFd;		/* The datagram socket to syslog, or -1. */
    int syslogFailed;		/* Syslog could not be reached: the lines
				 * went to standard error. */
    Tcl_TimerToken logTimer;	/* Retries the delivery, or NULL. */
    long long logTimerDue;	/* When it fires, monotonic microseconds. */
    size_t logOutLen;		/* Bytes in logOut ... */
    size_t logOutDone;		/* ... of which already written. */
    char logOut[MILTER_LOG_OUT];/* Whole lines on their way to stderr. */
    int coroClosed;		/* lock: queue no more deadline events. */

    /* Statistics (milterStats.c). */
    MilterStats *stats;		/* Where this interpreter counts: its
				 * own, or in a worker the owner's. */
    MilterStats *ownStats;	/* Its own block (milter stats). */
    Tcl_Obj *metricsObj;	/* -metrics, or NULL. */

    /* Capture (generic/milterCapture.c). */
    Tcl_Obj *captureObj;	/* -capture, a directory, or NULL. */
    int captureSize;		/* -capturesize, bytes per file. */
    int captureBody;		/* -capturebody, body bytes per message. */
    int captureMask;		/* -capturemask */
    int captureAll;		/* -captureall */
} MilterState;

/*
 * A context: the Tcl face of one MTA session (::milter::ctxN).
 */

struct MilterCtx {
    MilterState *statePtr;
    MilterConn *conn;		/* Referenced while the context lives. */
    Tcl_Command token;		/* NULL once the command is deleted. */
    Tcl_Obj *nameObj;		/* Fully qualified command name. */
    Tcl_HashTable priv;		/* Private data: name -> Tcl_Obj. */
    int event;			/* Event being run, or -1. */
    int refs;			/* Callbacks running with it. */
    int deleted;		/* MilterCtxDelete ran; free at refs 0. */
    MilterCtx *prevPtr, *nextPtr;
};

/*
 * milterCallback.c: the names of the events and of the return codes.
 */

MODULE_SCOPE const char *const milterEventNames[];
MODULE_SCOPE const char *const milterCodeNames[];
MODULE_SCOPE const int milterCodeValues[];

/*
 * milterState.c
 */

MODULE_SCOPE MilterState *MilterGetState(Tcl_Interp *interp);
MODULE_SCOPE int	MilterRefuseInWorker(Tcl_Interp *interp,
			    const char *what);

/*
 * milterRun.c
 */

MODULE_SCOPE void	MilterRunInit(void);
MODULE_SCOPE int	MilterStart(Tcl_Interp *interp, MilterState *statePtr);
MODULE_SCOPE Tcl_ObjCmdProc	MilterMainObjCmd;
MODULE_SCOPE Tcl_ObjCmdProc	MilterStartObjCmd;
MODULE_SCOPE Tcl_ObjCmdProc	MilterStopObjCmd;
MODULE_SCOPE Tcl_ObjCmdProc	MilterReloadObjCmd;
MODULE_SCOPE void	MilterStopOwn(MilterState *statePtr);
MODULE_SCOPE int	MilterReload(Tcl_Interp *interp,
			    MilterState *statePtr);

/*
 * milterBridge.c
 */

MODULE_SCOPE void	MilterShutdown(MilterState *statePtr);
MODULE_SCOPE void	MilterInitExitHandler(void);
MODULE_SCOPE int	MilterDeleteExitHandler(void);
MODULE_SCOPE void	MilterReadyHook(void *clientData);
MODULE_SCOPE void	MilterLogFromAnyThread(MilterState *statePtr,
			    MilterLogLevel level, const char *msg);
MODULE_SCOPE void	MilterBridgeHooks(MilterState *statePtr,
			    MilterServerHooks *hooksPtr);
MODULE_SCOPE void	MilterRegisterRunning(MilterState *statePtr);
MODULE_SCOPE void	MilterStopAllRunning(void);
MODULE_SCOPE void	MilterNotifyStopping(MilterState *statePtr,
			    MilterServer *server);
MODULE_SCOPE void	MilterReleaseQueue(MilterState *statePtr);

/*
 * milterWorker.c
 */

MODULE_SCOPE int	MilterPoolStart(Tcl_Interp *interp,
			    MilterState *statePtr);
MODULE_SCOPE int	MilterPoolReload(Tcl_Interp *interp,
			    MilterState *statePtr);
MODULE_SCOPE void	MilterPoolStop(MilterState *statePtr);
MODULE_SCOPE void	MilterPoolSync(MilterState *statePtr);
MODULE_SCOPE MilterQueue *MilterPoolAssign(MilterPool *poolPtr);
MODULE_SCOPE int	MilterPoolWorkers(MilterPool *poolPtr, int *connsPtr);
MODULE_SCOPE void	MilterPoolDeadline(MilterPool *poolPtr);
MODULE_SCOPE void	MilterWorkerBeforeDrain(MilterState *statePtr);
MODULE_SCOPE void	MilterWorkerDetach(MilterState *statePtr);
MODULE_SCOPE long	MilterPoolQueued(MilterPool *poolPtr);

/*
 * milterLog.c
 */

MODULE_SCOPE int	MilterLogQueueLocked(MilterState *statePtr,
			    MilterLogLevel level, const char *msg);
MODULE_SCOPE void	MilterLogFlush(MilterState *statePtr);
MODULE_SCOPE void	MilterLog(MilterState *statePtr, MilterLogLevel level,
			    const char *msg);
MODULE_SCOPE void	MilterLogReset(MilterState *statePtr);
MODULE_SCOPE void	MilterLogShutdown(MilterState *statePtr);
MODULE_SCOPE const char *const milterFacilityNames[];

/*
 * milterCallback.c
 */

MODULE_SCOPE void	MilterRunConn(MilterState *statePtr, MilterConn *conn,
			    MilterEvent *ev);
MODULE_SCOPE void	MilterAnswerPending(MilterState *statePtr);
MODULE_SCOPE int	MilterCallbackVerdict(MilterState *statePtr,
			    Tcl_Interp *interp, MilterCtx *ctxPtr,
			    Tcl_Obj *cbObj, int type, int code);
MODULE_SCOPE void	MilterCallbackFinished(MilterState *statePtr,
			    MilterConn *conn, MilterCtx *ctxPtr, int type,
			    int verdict);

/*
 * milterCoro.c
 */

MODULE_SCOPE int	MilterCoroInvoke(MilterState *statePtr,
			    MilterConn *conn, MilterCtx *ctxPtr,
			    Tcl_Obj *cbObj, int type, int objc,
			    Tcl_Obj *const objv[]);
MODULE_SCOPE void	MilterCoroAnswerAll(MilterState *statePtr);
MODULE_SCOPE void	MilterCoroDeadline(void *clientData);
MODULE_SCOPE void	MilterCoroFree(MilterState *statePtr);

/*
 * milterCtx.c
 */

MODULE_SCOPE MilterCtx *MilterCtxNew(MilterState *statePtr,
			    MilterConn *conn);
MODULE_SCOPE void	MilterCtxDelete(MilterCtx *ctxPtr);
MODULE_SCOPE void	MilterCtxPreserve(MilterCtx *ctxPtr);
MODULE_SCOPE void	MilterCtxRelease(MilterCtx *ctxPtr);

/*
 * unix/milterSignal.c
 */

/*
 * Who installs a milter's signal handling (MilterSignalInstall).
 */

typedef enum MilterSignalsBy {
    MILTER_SIGNALS_BY_START = 0,/* milter start with -signals set, or a
				 * later milter configure -signals. */
    MILTER_SIGNALS_BY_MAIN = 1	/* milter main. */
} MilterSignalsBy;

/*
 * What the actions stop and reload of -signals do (milterRun.c gives them
 * to milterSignal.c, which runs below it).
 */

typedef struct MilterSignalActions {
    void (*stop)(MilterState *statePtr);
    int (*reload)(Tcl_Interp *interp, MilterState *statePtr);
} MilterSignalActions;

MODULE_SCOPE void	MilterSignalSetActions(
			    const MilterSignalActions *actionsPtr);
MODULE_SCOPE int	MilterSignalCheck(Tcl_Interp *interp,
			    Tcl_Obj *valueObj, Tcl_Obj **dictPtr);
MODULE_SCOPE void	MilterSignalInstall(MilterState *statePtr,
			    MilterSignalsBy by);
MODULE_SCOPE void	MilterSignalUpdate(MilterState *statePtr);
MODULE_SCOPE void	MilterSignalRestore(MilterState *statePtr);
MODULE_SCOPE void	MilterSignalFinalize(void);

/*
 * unix/milterSystemd.c
 */

MODULE_SCOPE void	MilterNotifyInit(MilterState *statePtr);
MODULE_SCOPE void	MilterNotify(MilterState *statePtr,
			    const char *format, ...)
#if defined(__GNUC__)
			    __attribute__((format(printf, 2, 3)))
#endif
			    ;
MODULE_SCOPE int	MilterSystemdFd(Tcl_Interp *interp, int *fdPtr,
			    char *err, size_t errLen);
MODULE_SCOPE void	MilterSystemdFinalize(void);

/*
 * unix/milterUnixChan.c
 */

DLLEXPORT int		Miltertest_Init(Tcl_Interp *interp);
				/* For milter::test, not TclMilter. */

/*
 * milterStats.c
 */

MODULE_SCOPE char *	MilterStatsText(void *clientData, size_t *lenPtr);
MODULE_SCOPE Tcl_ObjCmdProc	MilterSessionsObjCmd;
MODULE_SCOPE Tcl_ObjCmdProc	MilterSessionObjCmd;
MODULE_SCOPE Tcl_ObjCmdProc	MilterStatsObjCmd;

/*
 * milterText.c
 */

MODULE_SCOPE Tcl_Obj *	MilterNewTextObj(MilterState *statePtr,
			    const char *bytes, size_t len);
MODULE_SCOPE const char *MilterTextBytes(MilterState *statePtr,
			    Tcl_Obj *objPtr, Tcl_DString *dsPtr,
			    size_t *lenPtr);
MODULE_SCOPE void	MilterUseEncoding(MilterState *statePtr,
			    Tcl_Encoding encoding);
MODULE_SCOPE const unsigned char *MilterBodyBytes(MilterState *statePtr,
			    Tcl_Obj *objPtr, Tcl_DString *dsPtr,
			    size_t *lenPtr);

#endif /* _MILTERINT_H */
