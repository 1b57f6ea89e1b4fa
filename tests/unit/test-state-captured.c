/* SPDX-License-Identifier: MIT */
/*
 * The readers against a tree captured from a real machine
 * (tests/fixtures/capture-sysfs), compared with what lsmem, lscpu, lsblk and
 * ip printed on that machine at capture time (DEST/expected/).
 */
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "parse.h"
#include "state.h"

#define FIXTURE "debian12-host"

typedef int (*reader_fn)(const struct vmc_state_opts *, struct vmc_arena *, Vmcheck__V1__State *);

struct captured {
	struct vmc_state_opts o;
	struct vmc_arena a;
	Vmcheck__V1__State st;
};

static void captured_free(struct captured *c)
{
	vmc_arena_free(&c->a);
	vmc_sysroot_close(&c->o.root);
}

/* Run @read on the committed tree; CU_FAIL_FATAL if it fails. */
static void captured_read(struct captured *c, reader_fn read)
{
	int r;

	memset(c, 0, sizeof(*c));
	fx_open_committed(FIXTURE, &c->o.root);
	vmcheck__v1__state__init(&c->st);
	r = read(&c->o, &c->a, &c->st);
	if (r < 0)
		captured_free(c);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

static void expected_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/" FIXTURE "/expected/%s", fx_fixtures_dir(), name);
}

/* A tool's JSON output at capture time; CU_FAIL_FATAL if unreadable. */
static json_object *expected_json(const char *name)
{
	char p[PATH_MAX];
	json_object *j;

	expected_path(p, sizeof(p), name);
	j = json_object_from_file(p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	return j;
}

/* Member @key of @obj; CU_FAIL_FATAL if missing. */
static json_object *member(json_object *obj, const char *key)
{
	json_object *v = NULL;

	CU_ASSERT_FATAL(json_object_object_get_ex(obj, key, &v));
	return v;
}

/* A number from lsmem's human summary ("Memory block size:   134217728"). */
static uint64_t summary_value(const char *label)
{
	char p[PATH_MAX], line[256];
	uint64_t v = UINT64_MAX;
	FILE *fp;

	expected_path(p, sizeof(p), "lsmem-summary.txt");
	fp = fopen(p, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	while (fgets(line, sizeof(line), fp)) {
		const char *s = line + strlen(label);

		if (!strncmp(line, label, strlen(label)))
			CU_ASSERT_EQUAL(vmc_parse_u64(s + strspn(s, " "), 10, &v), 0);
	}
	fclose(fp);
	CU_ASSERT_NOT_EQUAL_FATAL(v, UINT64_MAX);
	return v;
}

static void memory_matches_lsmem(void)
{
	struct captured c;
	json_object *j, *ranges;
	Vmcheck__V1__Memory *m;

	captured_read(&c, vmc_state_read_memory);
	j = expected_json("lsmem.json");
	ranges = member(j, "memory");
	m = c.st.memory;
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->block_size, summary_value("Memory block size:"));
	CU_ASSERT_EQUAL(m->online_bytes, summary_value("Total online memory:"));
	CU_ASSERT_EQUAL(m->offline_bytes, summary_value("Total offline memory:"));
	CU_ASSERT_EQUAL_FATAL(m->n_ranges, json_object_array_length(ranges));
	for (size_t i = 0; i < m->n_ranges; i++) {
		json_object *r = json_object_array_get_idx(ranges, i);
		const Vmcheck__V1__MemoryRange *mr = m->ranges[i];
		unsigned long long start, end, first, last;
		int n;

		CU_ASSERT_EQUAL_FATAL(sscanf(json_object_get_string(member(r, "range")),
					     "0x%llx-0x%llx", &start, &end),
				      2);
		/* "0-23", or "5" for a range of one block. */
		n = sscanf(json_object_get_string(member(r, "block")), "%llu-%llu", &first, &last);
		CU_ASSERT_FATAL(n >= 1);
		if (n == 1)
			last = first;
		CU_ASSERT_EQUAL(mr->start, start);
		CU_ASSERT_EQUAL(mr->end, end);
		CU_ASSERT_EQUAL(mr->size, (uint64_t)json_object_get_int64(member(r, "size")));
		CU_ASSERT_STRING_EQUAL(mr->state, json_object_get_string(member(r, "state")));
		CU_ASSERT_EQUAL(mr->removable, json_object_get_boolean(member(r, "removable")));
		CU_ASSERT_EQUAL(mr->first_block, first);
		CU_ASSERT_EQUAL(mr->last_block, last);
	}
	captured_free(&c);
	json_object_put(j);
}

/* lscpu's "data" for @field ("On-line CPU(s) list:"), or NULL. */
static const char *lscpu_field(json_object *j, const char *field)
{
	json_object *rows = member(j, "lscpu");

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i);

		if (!strcmp(json_object_get_string(member(row, "field")), field))
			return json_object_get_string(member(row, "data"));
	}
	return NULL;
}

static bool in_list(const char *list, unsigned cpu)
{
	bool in = false;

	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains(list, cpu, &in), 0);
	return in;
}

static void cpus_match_lscpu(void)
{
	struct captured c;
	json_object *j;
	const char *online;
	Vmcheck__V1__Cpus *cpus;
	size_t n_online = 0, n_listed = 0;

	captured_read(&c, vmc_state_read_cpus);
	j = expected_json("lscpu.json");
	online = lscpu_field(j, "On-line CPU(s) list:");
	CU_ASSERT_PTR_NOT_NULL_FATAL(online);
	cpus = c.st.cpus;
	CU_ASSERT_PTR_NOT_NULL_FATAL(cpus);
	/* lscpu prints "0,1" where the kernel says "0-1": compare as sets. */
	for (unsigned cpu = 0; cpu < 1024; cpu++) {
		CU_ASSERT_EQUAL(in_list(cpus->online, cpu), in_list(online, cpu));
		n_listed += in_list(online, cpu);
	}
	/* Every online CPU has its own entry, flagged online. */
	for (size_t i = 0; i < cpus->n_cpus; i++) {
		CU_ASSERT_EQUAL(cpus->cpus[i]->online, in_list(online, cpus->cpus[i]->id));
		n_online += cpus->cpus[i]->online;
	}
	CU_ASSERT_EQUAL(n_online, n_listed);
	captured_free(&c);
	json_object_put(j);
}

static const Vmcheck__V1__Block *find_block(const Vmcheck__V1__State *st, const char *name)
{
	for (size_t i = 0; i < st->n_blocks; i++)
		if (!strcmp(st->blocks[i]->name, name))
			return st->blocks[i];
	return NULL;
}

/* Check lsblk's @devs and their children against @st; count them in @n. */
static void compare_lsblk(const Vmcheck__V1__State *st, json_object *devs, size_t *n)
{
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		json_object *d = json_object_array_get_idx(devs, i), *children;
		const char *name = json_object_get_string(member(d, "name"));
		const Vmcheck__V1__Block *b = find_block(st, name);
		char majmin[32];

		CU_ASSERT_PTR_NOT_NULL(b);
		if (!b) {
			fprintf(stderr, "    lsblk device %s missing from the reader\n", name);
			continue;
		}
		(*n)++;
		snprintf(majmin, sizeof(majmin), "%u:%u", b->major, b->minor);
		CU_ASSERT_STRING_EQUAL(majmin, json_object_get_string(member(d, "maj:min")));
		CU_ASSERT_EQUAL(b->size_bytes, (uint64_t)json_object_get_int64(member(d, "size")));
		CU_ASSERT_EQUAL(b->ro, json_object_get_boolean(member(d, "ro")));
		if (json_object_object_get_ex(d, "children", &children))
			compare_lsblk(st, children, n);
	}
}

static void blocks_match_lsblk(void)
{
	struct captured c;
	json_object *j;
	size_t n = 0, hidden = 0;

	captured_read(&c, vmc_state_read_blocks);
	j = expected_json("lsblk.json");
	compare_lsblk(&c.st, member(j, "blockdevices"), &n);
	/* What lsblk leaves out by default: RAM disks and unattached loops. */
	for (size_t i = 0; i < c.st.n_blocks; i++) {
		const Vmcheck__V1__Block *b = c.st.blocks[i];

		if (b->major == 1 || (!strcmp(b->type, "loop") && b->size_bytes == 0))
			hidden++;
	}
	CU_ASSERT(hidden > 0); /* the capture has unattached loop devices */
	CU_ASSERT_EQUAL(n + hidden, c.st.n_blocks);
	captured_free(&c);
	json_object_put(j);
}

static void links_match_ip(void)
{
	struct captured c;
	json_object *j;
	size_t n;

	captured_read(&c, vmc_state_read_links);
	j = expected_json("ip-link.json");
	n = json_object_array_length(j);
	CU_ASSERT_EQUAL(c.st.n_links, n);
	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(j, i), *mac;
		const char *name = json_object_get_string(member(l, "ifname"));
		const Vmcheck__V1__Link *k = NULL;

		for (size_t x = 0; x < c.st.n_links; x++)
			if (!strcmp(c.st.links[x]->name, name))
				k = c.st.links[x];
		CU_ASSERT_PTR_NOT_NULL(k);
		if (!k) {
			fprintf(stderr, "    ip link %s missing from the reader\n", name);
			continue;
		}
		CU_ASSERT_EQUAL(k->ifindex, json_object_get_int64(member(l, "ifindex")));
		CU_ASSERT_EQUAL(k->mtu, json_object_get_int64(member(l, "mtu")));
		if (json_object_object_get_ex(l, "address", &mac))
			CU_ASSERT_EQUAL(strcasecmp(k->mac, json_object_get_string(mac)), 0);
	}
	captured_free(&c);
	json_object_put(j);
}

/* A whole snapshot of the tree, packed with its clocks zeroed. */
struct packed_snapshot {
	const struct vmc_state_opts *o;
	int r;
	uint32_t sections;
	uint8_t *buf;
	size_t len;
};

static void *take_snapshot(void *p)
{
	struct packed_snapshot *s = p;
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State *st;

	s->r = vmc_state_read(s->o, 0, 1, &a, &st);
	if (s->r == 0) {
		st->realtime_ns = st->mono_ns = st->read_ns = 0;
		s->sections = st->sections;
		s->len = vmcheck__v1__state__get_packed_size(st);
		s->buf = malloc(s->len ? s->len : 1);
		if (s->buf)
			vmcheck__v1__state__pack(st, s->buf);
	}
	vmc_arena_free(&a);
	return NULL;
}

/*
 * vmc_state_read hands memory, PCI and CPUs to a side thread that one
 * snapshot at a time may use: snapshots taken at once (some on the side
 * thread, some alone) and one after another must all be the same bytes,
 * and equal to the sections read one by one.
 */
static void snapshots_agree_however_they_are_taken(void)
{
	struct vmc_state_opts o = { 0 };
	struct packed_snapshot s[4] = { 0 }, ref = { 0 };
	pthread_t t[3];
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State one;
	size_t len;
	uint8_t *buf;

	fx_open_committed(FIXTURE, &o.root);
	for (size_t i = 0; i < ARRAY_SIZE(s); i++)
		s[i].o = &o;
	ref.o = &o;
	take_snapshot(&ref);
	CU_ASSERT_EQUAL_FATAL(ref.r, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ref.buf);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, take_snapshot, &s[i]), 0);
	take_snapshot(&s[3]);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
		CU_ASSERT_EQUAL(s[i].r, 0);
		CU_ASSERT_EQUAL(s[i].sections, ref.sections);
		CU_ASSERT_EQUAL(s[i].len, ref.len);
		CU_ASSERT(s[i].buf && s[i].len == ref.len && !memcmp(s[i].buf, ref.buf, ref.len));
		free(s[i].buf);
	}

	/* The same State, section by section on this thread alone. */
	vmcheck__v1__state__init(&one);
	one.generation = 1;
	CU_ASSERT_EQUAL(vmc_state_read_system(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_links(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_blocks(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_memory(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_cpus(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_pci(&o, &a, &one), 0);
	CU_ASSERT_EQUAL(vmc_state_read_crash(&o, &a, &one), 0);
	CU_ASSERT_PTR_NOT_NULL(one.memory);
	CU_ASSERT_PTR_NOT_NULL(one.pci);
	CU_ASSERT_PTR_NOT_NULL(one.cpus);
	one.sections = ref.sections;
	{
		char boot_id[64];

		one.boot_id = vmc_sysroot_read_str(o.root.fd, "proc/sys/kernel/random/boot_id",
						   boot_id, sizeof(boot_id)) >= 0
				      ? vmc_arena_strdup(&a, boot_id)
				      : "";
		len = vmcheck__v1__state__get_packed_size(&one);
		buf = malloc(len ? len : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
		vmcheck__v1__state__pack(&one, buf);
	}
	CU_ASSERT_EQUAL(len, ref.len);
	CU_ASSERT(len == ref.len && !memcmp(buf, ref.buf, len));
	free(buf);
	free(ref.buf);
	vmc_arena_free(&a);
	vmc_sysroot_close(&o.root);
}

VMC_SUITE(captured, NULL, NULL, VMC_TEST(memory_matches_lsmem), VMC_TEST(cpus_match_lscpu),
	  VMC_TEST(blocks_match_lsblk), VMC_TEST(links_match_ip),
	  VMC_TEST(snapshots_agree_however_they_are_taken))
