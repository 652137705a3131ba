/*
 * milterText.c --
 *
 *	Conversion between milter payload bytes and Tcl values. Header
 *	names and values, envelope arguments, macro values and host names
 *	are text in the -encoding (default utf-8); decoding never fails,
 *	since Tcl 8.6 maps bytes that are not valid in the encoding to the
 *	characters of the same value. Body data is bytes.
 *
 * Copyright (c) 2026 The TclMilter developers.
 *
 * See the file "license.terms" for information on usage and redistribution
 * of this file, and for a DISCLAIMER OF ALL WARRANTIES.
 */

#include "milterInt.h"

#include <string.h>

/*
 * Whether a string begins with a literal.
 */

#define HAS_PREFIX(s, lit)	(strncmp((s), (lit), sizeof(lit) - 1) == 0)

/*
 *----------------------------------------------------------------------
 *
 * IsAscii --
 *
 *	Whether bytes are 7-bit with no NUL: then Tcl's internal form and
 *	every ASCII-compatible encoding agree, and no conversion is needed.
 *
 * Results:
 *	1 if every byte is 1 to 127, else 0.
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

static int
IsAscii(
    const char *bytes,
    size_t len)
{
    const unsigned char *p = (const unsigned char *) bytes;
    size_t i;

    for (i = 0; i < len; i++) {
	if (p[i] == 0 || p[i] >= 0x80) {
	    return 0;
	}
    }
    return 1;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterNewTextObj --
 *
 *	A Tcl string from payload bytes, decoded with -encoding.
 *
 * Results:
 *	A new object (refcount 0).
 *
 * Side effects:
 *	None.
 *
 *----------------------------------------------------------------------
 */

Tcl_Obj *
MilterNewTextObj(
    MilterState *statePtr,
    const char *bytes,
    size_t len)
{
    Tcl_DString ds;
    Tcl_Obj *objPtr;

    if (statePtr->asciiCompatible && IsAscii(bytes, len)) {
	return Tcl_NewStringObj(bytes, (Tcl_Size) len);
    }
    Tcl_ExternalToUtfDString(statePtr->encoding, bytes, (Tcl_Size) len, &ds);
    objPtr = Tcl_NewStringObj(Tcl_DStringValue(&ds), Tcl_DStringLength(&ds));
    Tcl_DStringFree(&ds);
    return objPtr;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterTextBytes --
 *
 *	Encodes a Tcl value with -encoding for the wire.
 *
 * Results:
 *	The bytes (valid until the DString is freed or the object changes)
 *	and their length; NULL if they would contain a NUL, which the
 *	protocol cannot carry inside a string.
 *
 * Side effects:
 *	Initialises *dsPtr; the caller frees it.
 *
 *----------------------------------------------------------------------
 */

const char *
MilterTextBytes(
    MilterState *statePtr,
    Tcl_Obj *objPtr,
    Tcl_DString *dsPtr,
    size_t *lenPtr)
{
    Tcl_Size len;
    const char *s = Tcl_GetStringFromObj(objPtr, &len);

    Tcl_DStringInit(dsPtr);
    if (!statePtr->asciiCompatible || !IsAscii(s, (size_t) len)) {
	s = Tcl_UtfToExternalDString(statePtr->encoding, s, len, dsPtr);
	len = Tcl_DStringLength(dsPtr);
	if (memchr(s, '\0', (size_t) len) != NULL) {
	    return NULL;
	}
    }
    *lenPtr = (size_t) len;
    return s;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterBodyBytes --
 *
 *	The bytes of a body value: a byte array as it is; a string whose
 *	characters all fit in a byte, byte for byte; any other string
 *	encoded with -encoding.
 *
 * Results:
 *	The bytes and their length.
 *
 * Side effects:
 *	Initialises *dsPtr; the caller frees it.
 *
 *----------------------------------------------------------------------
 */

const unsigned char *
MilterBodyBytes(
    MilterState *statePtr,
    Tcl_Obj *objPtr,
    Tcl_DString *dsPtr,
    size_t *lenPtr)
{
    static const Tcl_ObjType *byteArrayType = NULL;
    Tcl_Size len;
    const unsigned char *s;
    int i, fitsInBytes = 1;

    Tcl_DStringInit(dsPtr);
    if (byteArrayType == NULL) {
	byteArrayType = Tcl_GetObjType("bytearray");
    }
    if (objPtr->typePtr != byteArrayType) {
	s = (const unsigned char *) Tcl_GetStringFromObj(objPtr, &len);
	for (i = 0; i < len; i++) {
	    if (s[i] >= 0xC4) {		/* Lead byte of a char > U+00FF. */
		fitsInBytes = 0;
		break;
	    }
	}
	if (!fitsInBytes) {
	    s = (const unsigned char *) Tcl_UtfToExternalDString(
		    statePtr->encoding, (const char *) s, len, dsPtr);
	    *lenPtr = (size_t) Tcl_DStringLength(dsPtr);
	    return s;
	}
    }
    s = Tcl_GetByteArrayFromObj(objPtr, &len);
    *lenPtr = (size_t) len;
    return s;
}

/*
 *----------------------------------------------------------------------
 *
 * MilterUseEncoding --
 *
 *	Makes 'encoding' the one that header values, envelope arguments and
 *	macros are decoded and encoded with, and notes whether it maps ASCII
 *	to itself (the 16- and 32-bit Unicode encodings do not).
 *
 * Results:
 *	None.
 *
 * Side effects:
 *	Takes over the caller's reference to 'encoding'; frees the old one.
 *
 *----------------------------------------------------------------------
 */

void
MilterUseEncoding(
    MilterState *statePtr,
    Tcl_Encoding encoding)
{
    const char *name = Tcl_GetEncodingName(encoding);

    if (statePtr->encoding != NULL) {
	Tcl_FreeEncoding(statePtr->encoding);
    }
    statePtr->encoding = encoding;
    statePtr->asciiCompatible = strcmp(name, "unicode") != 0
	    && !HAS_PREFIX(name, "ucs-2") && !HAS_PREFIX(name, "utf-16")
	    && !HAS_PREFIX(name, "utf-32");
}
