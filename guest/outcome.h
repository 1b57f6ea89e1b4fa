/* SPDX-License-Identifier: MIT */
/*
 * What an action, probe or kernel-log read tells the host besides its data:
 * a detail on success, or the Error code, errno and reason on failure. It is
 * the one error object of these modules (crun's style): the agent copies it
 * into the ActResult or Error reply.
 */
#ifndef VMC_OUTCOME_H
#define VMC_OUTCOME_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "macro.h"
#include "pb.h"

struct vmc_outcome {
	Vmcheck__V1__Error__Code code; /* set on failure */
	int err;                       /* positive errno of a failed system call, else 0 */
	char msg[256];                 /* the detail, or what was refused and why */
};

static inline void vmc_outcome_vset(struct vmc_outcome *o, const char *fmt, va_list ap)
{
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
}

/* Success: the detail of what was done. */
static inline _printf_(2, 3) void vmc_outcome_ok(struct vmc_outcome *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmc_outcome_vset(o, fmt, ap);
	va_end(ap);
	o->code = VMCHECK__V1__ERROR__CODE__CODE_UNSPECIFIED;
	o->err = 0;
}

/*
 * Failure with @code; @err is the errno of the system call that failed, or
 * 0 for a refusal. Returns -@err, or -EINVAL for a refusal, so callers can
 * "return vmc_outcome_fail(...)".
 */
static inline _printf_(4, 5) int vmc_outcome_fail(struct vmc_outcome *o,
						  Vmcheck__V1__Error__Code code, int err,
						  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmc_outcome_vset(o, fmt, ap);
	va_end(ap);
	o->code = code;
	o->err = err;
	return err ? -err : -EINVAL;
}

/* The Error code that fits a failed system call's errno. */
static inline Vmcheck__V1__Error__Code vmc_outcome_code_of(int err)
{
	switch (err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return VMCHECK__V1__ERROR__CODE__NOT_FOUND;
	case EPERM:
	case EACCES:
	case EROFS:
	case EBUSY:
		return VMCHECK__V1__ERROR__CODE__NOT_PERMITTED;
	case EINVAL:
	case ERANGE:
		return VMCHECK__V1__ERROR__CODE__BAD_ARGUMENT;
	default:
		return VMCHECK__V1__ERROR__CODE__INTERNAL;
	}
}

#endif
