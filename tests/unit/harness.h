/* SPDX-License-Identifier: MIT */
/*
 * Unit-test harness: suites register themselves at load time, fixtures are
 * scratch sysfs trees or the committed trees under tests/fixtures.
 */
#ifndef VMC_TEST_HARNESS_H
#define VMC_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <limits.h>

#include "report.h"
#include "state.h"
#include "sysroot.h"

struct vmc_test {
	const char *name;
	void (*fn)(void);
};

struct vmc_test_suite {
	const char *name;
	const struct vmc_test *tests; /* terminated by { NULL, NULL } */
	int (*init)(void);
	int (*cleanup)(void);
	struct vmc_test_suite *next;
};

void vmc_test_register(struct vmc_test_suite *s);

#define VMC_TEST(fn)    \
	{               \
#fn, fn \
	}
#define VMC_SUITE(id, init_fn, cleanup_fn, ...)                                                   \
	static const struct vmc_test id##_tests[] = { __VA_ARGS__, { NULL, NULL } };              \
	static struct vmc_test_suite id##_suite = { #id, id##_tests, init_fn, cleanup_fn, NULL }; \
	__attribute__((constructor)) static void id##_register(void)                              \
	{                                                                                         \
		vmc_test_register(&id##_suite);                                                   \
	}

/* A scratch root directory for one test. */
struct fx {
	char path[PATH_MAX];
	struct vmc_sysroot root; /* root.fd is the tree's fd; live = false */
};

/* Create an empty tree; CU_FAIL_FATAL on error. */
void fx_init(struct fx *f);
/* Remove the tree and close its fd. */
void fx_cleanup(struct fx *f);
/* Write @content to @rel (parents created). */
void fx_write(struct fx *f, const char *rel, const char *content);
void fx_mkdir(struct fx *f, const char *rel);
/* Create symlink @rel pointing at @target (parents created). */
void fx_symlink(struct fx *f, const char *target, const char *rel);
void fx_remove(struct fx *f, const char *rel);

/* Directory holding the committed fixture trees (--fixtures). */
const char *fx_fixtures_dir(void);
/* Open committed fixture tree @name as a root; CU_FAIL_FATAL if missing. */
void fx_open_committed(const char *name, struct vmc_sysroot *root);

/* One section reader run on a root: the State it filled and its result. */
struct fx_run {
	struct vmc_state_opts o;
	struct vmc_arena a;
	Vmcheck__V1__State st;
	int r;
};

typedef int (*fx_reader_fn)(const struct vmc_state_opts *, struct vmc_arena *,
			    Vmcheck__V1__State *);

/* Run @read on @root into @t (t->r is its return). */
void fx_run(struct fx_run *t, struct vmc_sysroot root, fx_reader_fn read);
/* Free what the run allocated; close the root too if @close_root. */
void fx_run_done(struct fx_run *t, bool close_root);

/*
 * fx_str_is - assert that @got (malloc'd, or NULL: a fatal failure) equals
 * @want; on a mismatch print both after @what on stderr. Frees @got.
 */
void fx_str_is(char *got, const char *want, const char *what);

/*
 * A report that keeps a copy of every step it is handed, for tests of what
 * reaches the reports. fx_capture_init() before use; the report's free op
 * (or fx_capture_free) releases the copies.
 */
struct fx_cap_rec {
	char *host, *check, *name, *message, *notes, *evidence;
	enum vmc_step_status status;
	uint64_t t_zero, t_action, t_kernel, t_confirm, t_end;
	int64_t latency_ns;
};

struct fx_capture {
	struct vmc_report base;
	struct fx_cap_rec r[64];
	size_t n;
	unsigned finished; /* finish() calls */
};

void fx_capture_init(struct fx_capture *c);
void fx_capture_free(struct fx_capture *c);

#endif
