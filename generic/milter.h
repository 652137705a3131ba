/*
 * milter.h --
 *
 *	Public interface of the TclMilter package: only the entry points
 *	that [load] uses.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#ifndef _MILTER_H
#define _MILTER_H

#include <tcl.h>

#ifdef __cplusplus
extern "C" {
#endif

DLLEXPORT int	Milter_Init(Tcl_Interp *interp);
DLLEXPORT int	Milter_SafeInit(Tcl_Interp *interp);
DLLEXPORT int	Milter_Unload(Tcl_Interp *interp, int flags);

#ifdef __cplusplus
}
#endif

#endif /* _MILTER_H */
