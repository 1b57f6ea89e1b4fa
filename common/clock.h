/* SPDX-License-Identifier: MIT */
#ifndef VMC_CLOCK_H
#define VMC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t vmc_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int64_t vmc_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * vmc_clock_deadline - the CLOCK_MONOTONIC time (ns) @timeout_ms from now;
 * UINT64_MAX (none) for a negative @timeout_ms.
 */
static inline uint64_t vmc_clock_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : vmc_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/*
 * vmc_clock_remaining_ms - milliseconds left until @deadline_ns (from
 * vmc_clock_deadline()), for poll(): -1 for none, 0 once passed, else
 * rounded up, so that a timeout is never reported early.
 */
static inline int vmc_clock_remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = vmc_mono_ns();

	if (deadline_ns == UINT64_MAX)
		return -1;
	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

#endif
