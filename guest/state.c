/* SPDX-License-Identifier: MIT */
/*
 * A snapshot: the section readers in turn, memory, PCI and CPUs on a second thread
 * when other sections are wanted too; a failed section becomes a SectionError.
 */
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "clock.h"

typedef int (*reader_fn)(const struct vmc_state_opts *, struct vmc_arena *, Vmcheck__V1__State *);

static const struct {
	uint32_t bit;
	reader_fn read;
	const char *(*explain)(int r); /* NULL, or what a failure meant */
} readers[] = {
	{ VMCHECK__V1__SECTION__SECTION_SYSTEM, vmc_state_read_system, NULL },
	{ VMCHECK__V1__SECTION__SECTION_LINKS, vmc_state_read_links, vmc_state_explain_links },
	{ VMCHECK__V1__SECTION__SECTION_BLOCKS, vmc_state_read_blocks, NULL },
	{ VMCHECK__V1__SECTION__SECTION_MEMORY, vmc_state_read_memory, NULL },
	{ VMCHECK__V1__SECTION__SECTION_CPUS, vmc_state_read_cpus, NULL },
	{ VMCHECK__V1__SECTION__SECTION_PCI, vmc_state_read_pci, NULL },
	{ VMCHECK__V1__SECTION__SECTION_CRASH, vmc_state_read_crash, NULL },
};

/*
 * A snapshot is bound by system calls, and the memory section is the
 * costliest (a sysfs file or two per 128 MiB block: thousands on a big
 * guest). When it is wanted with others, memory, PCI and CPUs are read on a
 * second thread, the rest on this one: about half each on a small guest.
 * The side thread has its own arena, adopted by the snapshot's afterwards;
 * arenas are not shared between threads.
 */
#define SIDE_SECTIONS                                                               \
	(VMCHECK__V1__SECTION__SECTION_MEMORY | VMCHECK__V1__SECTION__SECTION_PCI | \
	 VMCHECK__V1__SECTION__SECTION_CPUS)

struct side_read {
	const struct vmc_state_opts *o;
	uint32_t mask;
	struct vmc_arena arena;
	Vmcheck__V1__State st;
	int r[ARRAY_SIZE(readers)];
};

/*
 * The side thread is started once and kept: creating a thread per snapshot
 * costs a stack mapping and its unmapping (a TLB shootdown on every CPU).
 * One snapshot at a time uses it; a concurrent one reads alone.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	bool started, claimed;
	struct side_read *job; /* set: to read; NULL again: read */
} side_thread = { PTHREAD_MUTEX_INITIALIZER,
		  PTHREAD_COND_INITIALIZER,
		  PTHREAD_COND_INITIALIZER,
		  false,
		  false,
		  NULL };

static void side_read_run(struct side_read *s)
{
	vmcheck__v1__state__init(&s->st);
	for (size_t i = 0; i < ARRAY_SIZE(readers); i++)
		if (s->mask & readers[i].bit)
			s->r[i] = readers[i].read(s->o, &s->arena, &s->st);
}

static void *side_reader(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&side_thread.lock);
	for (;;) {
		struct side_read *s;

		while (!side_thread.job)
			pthread_cond_wait(&side_thread.go, &side_thread.lock);
		s = side_thread.job;
		pthread_mutex_unlock(&side_thread.lock);
		side_read_run(s);
		pthread_mutex_lock(&side_thread.lock);
		side_thread.job = NULL;
		pthread_cond_signal(&side_thread.done);
	}
	return NULL;
}

/* Hand @s to the side thread; false: read it on this one. */
static bool side_start(struct side_read *s)
{
	bool ok = false;

	pthread_mutex_lock(&side_thread.lock);
	if (!side_thread.claimed && !side_thread.started) {
		pthread_attr_t attr;
		pthread_t tid;

		if (pthread_attr_init(&attr) == 0) {
			/* musl's 128 KiB default is tight for the readers' path buffers. */
			pthread_attr_setstacksize(&attr, 512 * 1024);
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			side_thread.started = pthread_create(&tid, &attr, side_reader, NULL) == 0;
			pthread_attr_destroy(&attr);
		}
	}
	if (side_thread.started && !side_thread.claimed) {
		side_thread.claimed = true;
		side_thread.job = s;
		pthread_cond_signal(&side_thread.go);
		ok = true;
	}
	pthread_mutex_unlock(&side_thread.lock);
	return ok;
}

static void side_wait(void)
{
	pthread_mutex_lock(&side_thread.lock);
	while (side_thread.job)
		pthread_cond_wait(&side_thread.done, &side_thread.lock);
	side_thread.claimed = false;
	pthread_mutex_unlock(&side_thread.lock);
}

static int record_error(struct vmc_arena *a, struct vmc_ptrvec *errs, size_t i, int r)
{
	Vmcheck__V1__SectionError *e = vmc_arena_alloc(a, sizeof(*e));
	uint32_t bit = readers[i].bit;
	const char *why = readers[i].explain ? readers[i].explain(r) : NULL;

	if (!e)
		return -ENOMEM;
	vmcheck__v1__section_error__init(e);
	e->section = (Vmcheck__V1__Section)bit;
	e->errno_value = -r;
	e->message = vmc_arena_printf(a, "reading %s: %s", vmc_section_name(bit),
				      why ? why : strerror(-r));
	if (!e->message || vmc_ptrvec_push(a, errs, e) < 0)
		return -ENOMEM;
	return 0;
}

int vmc_state_read(const struct vmc_state_opts *o, uint32_t mask, uint64_t generation,
		   struct vmc_arena *a, Vmcheck__V1__State **out)
{
	Vmcheck__V1__State *st = vmc_arena_alloc(a, sizeof(*st));
	struct vmc_ptrvec errs = { 0 };
	char boot_id[64];
	uint64_t t0;

	if (!st)
		return -ENOMEM;
	vmcheck__v1__state__init(st);
	if (mask == 0)
		mask = VMC_SECTION_ALL;
	st->generation = generation;
	st->realtime_ns = vmc_realtime_ns();
	st->mono_ns = t0 = vmc_mono_ns();
	if (vmc_sysroot_read_str(o->root.fd, "proc/sys/kernel/random/boot_id", boot_id,
				 sizeof(boot_id)) >= 0)
		st->boot_id = vmc_arena_strdup(a, boot_id);
	else
		st->boot_id = "";
	if (!st->boot_id)
		return -ENOMEM;

	const uint32_t mem = VMCHECK__V1__SECTION__SECTION_MEMORY;
	struct side_read side = { .o = o, .mask = mask & SIDE_SECTIONS, .arena = VMC_ARENA_INIT };
	bool threaded = (mask & mem) && (mask & ~SIDE_SECTIONS) && side_start(&side);
	int fail = 0;

	for (size_t i = 0; i < ARRAY_SIZE(readers); i++) {
		int r;

		if (!(mask & readers[i].bit) || (threaded && (readers[i].bit & side.mask)))
			continue;
		r = readers[i].read(o, a, st);
		if (r == 0)
			st->sections |= readers[i].bit;
		else if (!fail)
			fail = r == -ENOMEM ? r : record_error(a, &errs, i, r);
	}
	if (threaded) {
		side_wait();
		vmc_arena_adopt(a, &side.arena);
		st->memory = side.st.memory;
		st->pci = side.st.pci;
		st->cpus = side.st.cpus;
		for (size_t i = 0; i < ARRAY_SIZE(readers); i++) {
			int r = side.r[i];

			if (!(side.mask & readers[i].bit))
				continue;
			if (r == 0)
				st->sections |= readers[i].bit;
			else if (!fail)
				fail = r == -ENOMEM ? r : record_error(a, &errs, i, r);
		}
	}
	if (fail)
		return fail;
	st->errors = (Vmcheck__V1__SectionError **)errs.items;
	st->n_errors = errs.n;
	st->read_ns = vmc_mono_ns() - t0;
	*out = st;
	return 0;
}
