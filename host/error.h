/* SPDX-License-Identifier: MIT */
/*
 * The host's error object, carried across module boundaries only: a code
 * (negative errno, or one of VMC_ERR_*) and a message that says what was
 * being done and to what, including the library's or the agent's own words.
 */
#ifndef VMC_ERROR_H
#define VMC_ERROR_H

#include "macro.h"

struct vmc_error {
	int code;
	char *msg; /* owned; NULL when no error */
};

#define VMC_ERROR_INIT  \
	{               \
		0, NULL \
	}

/* Set @e (if non-NULL) and return @code, so callers can "return vmc_error_set(...)". */
int vmc_error_set(struct vmc_error *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Prefix an existing message: "connecting to agent: " + old. */
int vmc_error_prefix(struct vmc_error *e, const char *fmt, ...) _printf_(2, 3);
void vmc_error_clear(struct vmc_error *e);

#endif
