/* SPDX-License-Identifier: MIT */
/*
 * The liar's lies. Each changes exactly one thing the agent says and leaves
 * the rest as the agent read it: a host check that misses the lie is blind
 * to that one failure, not confused by others.
 */
#include "liar.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "probe.h"

#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define LOG "vmcheck-agent-liar: "
#define CMDLINE_WORD "vmcheck.lie="

static const char *const lie_names[] = {
	[VMC_LIAR_NONE] = "none",
	[VMC_LIAR_SECTION_ERROR] = "section-error",
	[VMC_LIAR_DIMM_ADDRESS] = "dimm-address",
	[VMC_LIAR_ZONE_NORMAL] = "zone-normal",
	[VMC_LIAR_CPU_TOPOLOGY] = "cpu-topology",
	[VMC_LIAR_NET_SILENT] = "net-silent",
	[VMC_LIAR_REBOOT] = "reboot",
};

/* What a watchdog does: flush, then restart the machine at once. */
/* The liar's log on stderr, where the agent's diagnostics go. */
static void say(const struct vmc_liar *l, const char *fmt, ...) _printf_(2, 3);

static void say(const struct vmc_liar *l, const char *fmt, ...)
{
	va_list ap;

	if (l->quiet)
		return;
	va_start(ap, fmt);
	fputs(LOG, stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int reboot_now(void)
{
	sync();
	return reboot(RB_AUTOBOOT) < 0 ? -errno : 0;
}

void vmc_liar_init(struct vmc_liar *l)
{
	memset(l, 0, sizeof(*l));
	l->rootfd = -1;
	l->reboot_delay_ms = 100;
	l->reboot = reboot_now;
	atomic_init(&l->disk_probed, false);
}

int vmc_liar_parse(const char *name, enum vmc_liar_lie *lie)
{
	/* "none" is no lie one can ask for. */
	for (size_t i = 1; i < ARRAY_SIZE(lie_names); i++) {
		if (!strcmp(name, lie_names[i])) {
			*lie = (enum vmc_liar_lie)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *vmc_liar_name(enum vmc_liar_lie lie)
{
	return (size_t)lie < ARRAY_SIZE(lie_names) ? lie_names[lie] : "?";
}

const char *vmc_liar_names(void)
{
	return "section-error, dimm-address, zone-normal, cpu-topology, net-silent, reboot";
}

/* The last vmcheck.lie=NAME word of proc/cmdline: 1 and @out, 0 if none, -errno. */
static int cmdline_lie(int rootfd, char *out, size_t size)
{
	char buf[4096];
	const char *found = NULL;
	size_t flen = 0;
	int r = vmc_sysroot_read_str(rootfd, "proc/cmdline", buf, sizeof(buf));

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (char *w = buf; *w;) {
		size_t len = strcspn(w, " \t\n");

		if (len > strlen(CMDLINE_WORD) && !strncmp(w, CMDLINE_WORD, strlen(CMDLINE_WORD))) {
			found = w + strlen(CMDLINE_WORD);
			flen = len - strlen(CMDLINE_WORD);
		}
		w += len;
		w += strspn(w, " \t\n");
	}
	if (!found)
		return 0;
	snprintf(out, size, "%.*s", (int)flen, found);
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The memory blocks there are now: the ones the lies call hot-added come later. */
static int note_boot_blocks(struct vmc_liar *l, const struct vmc_sysroot *root)
{
	struct vmc_state_opts o = { .root = *root };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	int r = vmc_state_read_memory(&o, &a, &st);

	if (r == 0) {
		l->n_boot_blocks = st.memory->n_blocks;
		l->boot_blocks = calloc(l->n_boot_blocks + 1, sizeof(*l->boot_blocks));
		if (!l->boot_blocks)
			r = -ENOMEM;
		for (size_t i = 0; r == 0 && i < l->n_boot_blocks; i++)
			l->boot_blocks[i] = st.memory->blocks[i]->index;
	}
	vmc_arena_free(&a);
	if (r < 0) {
		say(l, "reading the memory blocks present at start: %s\n", strerror(-r));
		return r;
	}
	qsort(l->boot_blocks, l->n_boot_blocks, sizeof(*l->boot_blocks), cmp_u64);
	return 0;
}

int vmc_liar_start(struct vmc_liar *l, const struct vmc_sysroot *root)
{
	char name[64];
	int r;

	if (l->lie == VMC_LIAR_NONE) {
		r = cmdline_lie(root->fd, name, sizeof(name));
		if (r < 0) {
			say(l, "reading proc/cmdline: %s\n", strerror(-r));
			return r;
		}
		if (r > 0 && vmc_liar_parse(name, &l->lie) < 0) {
			say(l,
			    LOG "unknown lie '%s' on the kernel command line (%s%s): "
				"the lies are %s\n",
			    name, CMDLINE_WORD, name, vmc_liar_names());
			return -EINVAL;
		}
		if (r > 0)
			l->from = CMDLINE_WORD " on the kernel command line";
	}
	if (l->lie == VMC_LIAR_DIMM_ADDRESS || l->lie == VMC_LIAR_ZONE_NORMAL) {
		r = note_boot_blocks(l, root);
		if (r < 0)
			return r;
	}
	/* The reboot marker is looked at after the agent has closed its root. */
	l->rootfd = fcntl(root->fd, F_DUPFD_CLOEXEC, 0);
	if (l->rootfd < 0) {
		say(l, "duplicating the root fd: %s\n", strerror(errno));
		return -errno;
	}
	if (l->lie == VMC_LIAR_NONE)
		say(l, "no lie asked for (--lie NAME, " CMDLINE_WORD "NAME): "
		       "telling the truth\n");
	else
		say(l, "telling one lie: %s (from %s)\n", vmc_liar_name(l->lie),
		    l->from ? l->from : "--lie");
	return 0;
}

static bool hot_added(const struct vmc_liar *l, uint64_t index)
{
	return !bsearch(&index, l->boot_blocks, l->n_boot_blocks, sizeof(index), cmp_u64);
}

/* section-error: the memory section, read fine, reported as unreadable. */
static int lie_section_error(struct vmc_arena *a, Vmcheck__V1__State *st)
{
	Vmcheck__V1__SectionError *e, **errs;

	/* Not asked for, or really unreadable: nothing to lie about. */
	if (!(st->sections & S(MEMORY)))
		return 0;
	e = vmc_arena_alloc(a, sizeof(*e));
	errs = vmc_arena_alloc(a, (st->n_errors + 1) * sizeof(*errs));
	if (!e || !errs)
		return -ENOMEM;
	vmcheck__v1__section_error__init(e);
	e->section = S(MEMORY);
	e->errno_value = EIO;
	e->message = "reading memory: Input/output error (vmcheck-agent-liar: section-error)";
	if (st->n_errors)
		memcpy(errs, st->errors, st->n_errors * sizeof(*errs));
	errs[st->n_errors] = e;
	st->errors = errs;
	st->n_errors++;
	st->sections &= ~(uint32_t)S(MEMORY);
	st->memory = NULL;
	return 0;
}

static int cmp_block(const void *a, const void *b)
{
	const Vmcheck__V1__MemoryBlock *x = *(Vmcheck__V1__MemoryBlock *const *)a,
				       *y = *(Vmcheck__V1__MemoryBlock *const *)b;

	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * dimm-address: hot-added blocks VMC_LIAR_DIMM_SHIFT blocks higher, their
 * ranges merged again. QEMU puts hot-pluggable memory above all boot
 * memory, so a moved block lands on no block the guest booted with.
 */
static int lie_dimm_address(const struct vmc_liar *l, struct vmc_arena *a, Vmcheck__V1__Memory *m)
{
	bool moved = false;

	for (size_t i = 0; i < m->n_blocks; i++) {
		Vmcheck__V1__MemoryBlock *b = m->blocks[i];

		if (!hot_added(l, b->index))
			continue;
		b->index += VMC_LIAR_DIMM_SHIFT;
		b->phys_start = b->index * m->block_size;
		moved = true;
	}
	if (!moved)
		return 0;
	qsort(m->blocks, m->n_blocks, sizeof(*m->blocks), cmp_block);
	return vmc_state_memory_ranges(a, m);
}

/* zone-normal: hot-added blocks online in ZONE_NORMAL, so they could not be unplugged. */
static void lie_zone_normal(const struct vmc_liar *l, Vmcheck__V1__Memory *m)
{
	for (size_t i = 0; i < m->n_blocks; i++) {
		Vmcheck__V1__MemoryBlock *b = m->blocks[i];

		if (hot_added(l, b->index) && b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE)
			b->valid_zones = "Normal";
	}
}

/* cpu-topology: every CPU but cpu0 on the next package. Unknown (-1) stays unknown. */
static void lie_cpu_topology(Vmcheck__V1__Cpus *cpus)
{
	for (size_t i = 0; i < cpus->n_cpus; i++) {
		Vmcheck__V1__Cpu *c = cpus->cpus[i];

		if (c->id != 0 && c->package_id >= 0)
			c->package_id++;
	}
}

int vmc_liar_state(struct vmc_liar *l, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	switch (l->lie) {
	case VMC_LIAR_SECTION_ERROR:
		return lie_section_error(a, st);
	case VMC_LIAR_DIMM_ADDRESS:
		return st->memory ? lie_dimm_address(l, a, st->memory) : 0;
	case VMC_LIAR_ZONE_NORMAL:
		if (st->memory)
			lie_zone_normal(l, st->memory);
		return 0;
	case VMC_LIAR_CPU_TOPOLOGY:
		if (st->cpus)
			lie_cpu_topology(st->cpus);
		return 0;
	default:
		return 0;
	}
}

/* The name and up flag of the link with @mac in sys/class/net; false if none has it. */
static bool find_link(int rootfd, const char *mac, char *name, size_t size, bool *up)
{
	char **names, buf[64];
	uint64_t flags;
	bool found = false;
	int n = vmc_sysroot_list_dirf(rootfd, &names, "sys/class/net");

	for (int i = 0; i < n && !found; i++) {
		if (vmc_sysroot_read_strf(rootfd, buf, sizeof(buf), "sys/class/net/%s/address",
					  names[i]) < 0 ||
		    strcasecmp(buf, mac))
			continue;
		snprintf(name, size, "%s", names[i]);
		*up = vmc_sysroot_read_u64f(rootfd, &flags, 16, "sys/class/net/%s/flags",
					    names[i]) == 0 &&
		      (flags & IFF_UP);
		found = true;
	}
	if (n >= 0)
		vmc_sysroot_names_free(names, n);
	return found;
}

/* net-silent: a NetProbe "passed" without a byte sent; wrong arguments refused as ever. */
int vmc_liar_probe(struct vmc_liar *l, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		   Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	const Vmcheck__V1__NetProbe *np = p->net;
	char link[IF_NAMESIZE] = "eth1";
	bool up = true;
	int r;

	if (l->lie != VMC_LIAR_NET_SILENT || p->kind_case != VMCHECK__V1__PROBE__KIND_NET)
		return 0;
	r = vmc_probe_net_check(np, o);
	if (r < 0)
		return r;
	find_link(l->rootfd, np->mac, link, sizeof(link), &up);
	res->link = vmc_arena_strdup(a, link);
	/* An ephemeral port, as the kernel would have picked one. */
	res->source = vmc_arena_printf(a, "%s:%u", np->address,
				       32768u + (unsigned)(vmc_mono_ns() / 1000 % 28232u));
	if (!res->link || !res->source)
		return vmc_outcome_fail(o, VMCHECK__V1__ERROR__CODE__INTERNAL, ENOMEM,
					"out of memory");
	res->connect_ns = 400000;
	res->rtt_ns = 1000000;
	res->duration_ns = 2000000;
	res->link_was_up = up;
	return 1;
}

/* Reboot once per VM: the marker on the guest's persistent disk says whether it did. */
static void *rebooter_main(void *arg)
{
	struct vmc_liar *l = arg;
	struct timespec ts = { .tv_sec = l->reboot_delay_ms / 1000,
			       .tv_nsec = (long)(l->reboot_delay_ms % 1000) * 1000000 };
	int fd, r;

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	fd = openat(l->rootfd, VMC_LIAR_REBOOT_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0644);
	if (fd < 0 && errno == EEXIST) {
		say(l, "reboot: %s exists, this VM rebooted once already: not again\n",
		    VMC_LIAR_REBOOT_MARKER);
		return NULL;
	}
	if (fd < 0)
		say(l, "reboot: cannot create %s (%s): rebooting anyway\n", VMC_LIAR_REBOOT_MARKER,
		    strerror(errno));
	else
		close(fd);
	say(l, "reboot: rebooting the guest now, as a watchdog would\n");
	r = l->reboot();
	if (r < 0)
		say(l, "reboot: %s\n", strerror(-r));
	return NULL;
}

void vmc_liar_probe_sent(struct vmc_liar *l, const Vmcheck__V1__Probe *p)
{
	int r;

	if (l->lie != VMC_LIAR_REBOOT || p->kind_case != VMCHECK__V1__PROBE__KIND_DISK ||
	    atomic_exchange(&l->disk_probed, true))
		return;
	r = pthread_create(&l->rebooter, NULL, rebooter_main, l);
	if (r)
		say(l, "reboot: no thread: %s\n", strerror(r));
	l->rebooter_started = r == 0;
}

static int hook_start(void *ctx, const struct vmc_sysroot *root)
{
	return vmc_liar_start(ctx, root);
}

static int hook_state(void *ctx, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	return vmc_liar_state(ctx, a, st);
}

static int hook_probe(void *ctx, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		      Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	return vmc_liar_probe(ctx, p, a, res, o);
}

static void hook_probe_sent(void *ctx, const Vmcheck__V1__Probe *p)
{
	vmc_liar_probe_sent(ctx, p);
}

void vmc_liar_hooks(struct vmc_liar *l, struct vmc_agent_hooks *h)
{
	*h = (struct vmc_agent_hooks){
		.ctx = l,
		.start = hook_start,
		.state = hook_state,
		.probe = hook_probe,
		.probe_sent = hook_probe_sent,
	};
}

void vmc_liar_stop(struct vmc_liar *l)
{
	/* Only one thread starts it: the probe that set disk_probed first. */
	if (l->rebooter_started)
		pthread_join(l->rebooter, NULL);
	l->rebooter_started = false;
	if (l->rootfd >= 0)
		close(l->rootfd);
	l->rootfd = -1;
	free(l->boot_blocks);
	l->boot_blocks = NULL;
	l->n_boot_blocks = 0;
}
