/* SPDX-License-Identifier: MIT */
/* struct vmc_error: set, prefix and clear the message that says what failed. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int vmc_error_set(struct vmc_error *e, int code, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	if (!e)
		return code;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	free(e->msg);
	e->msg = m;
	e->code = code;
	return code;
}

int vmc_error_prefix(struct vmc_error *e, const char *fmt, ...)
{
	va_list ap;
	char *p = NULL, *m = NULL;

	if (!e)
		return 0;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	if (p && asprintf(&m, "%s%s", p, e->msg ? e->msg : "") >= 0) {
		free(e->msg);
		e->msg = m;
	}
	free(p);
	return e->code;
}

void vmc_error_clear(struct vmc_error *e)
{
	free(e->msg);
	e->msg = NULL;
	e->code = 0;
}
