/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the agent and the controller. */
#ifndef VMC_MACRO_H
#define VMC_MACRO_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _must_check_ __attribute__((warn_unused_result))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))

static inline void vmc_freep(void *p)
{
	free(*(void **)p);
}

static inline void vmc_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;

		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_ _cleanup_(vmc_freep)
#define _cleanup_close_ _cleanup_(vmc_closep)

/* Hand a pointer out of a _cleanup_ scope. */
#define TAKE_PTR(p)                     \
	({                              \
		__typeof__(p) _p = (p); \
		(p) = NULL;             \
		_p;                     \
	})

#define TAKE_FD(fd)             \
	({                      \
		int _fd = (fd); \
		(fd) = -1;      \
		_fd;            \
	})

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expr)                     \
	({                                           \
		long _r;                             \
		do                                   \
			_r = (long)(expr);           \
		while (_r == -1L && errno == EINTR); \
		_r;                                  \
	})
#endif

#endif
