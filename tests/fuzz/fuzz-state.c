/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: States a guest chose, merged into the host's view
 * (host/suite-view.c) and diffed (host/state-diff.c) as a step's evidence
 * and vmcheck watch do.
 *
 * The input is records, each an op byte, a big-endian u16 length and that
 * many bytes. The bytes are decoded as a State within the budget the agent
 * client gives a reply; what does not decode is skipped. The op says what
 * is done with it:
 *   MERGE     merge it into the view, diff the view before against after
 *   BASELINE  merge it, then freeze a copy of the view (a step's baseline,
 *             diffed against the view at the end)
 *   RESET     merge it after the view was reset (a new boot)
 *   DIFF      diff it against the view, both ways, against the last State
 *             decoded and against itself
 * A merge must keep every section the State carried and the view's copies
 * must equal the view; a State diffed against itself shows no change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "pb.h"
#include "state-diff.h"
#include "suite-view.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum op {
	OP_MERGE,
	OP_BASELINE,
	OP_RESET,
	OP_DIFF,
	OP_COUNT
};

/* As host/agent-client.c allows one reply once unpacked. */
#define STATE_BUDGET (16 * (size_t)VMC_FRAME_MAX_DEFAULT)

static FILE *null_out;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-state: %s\n", what);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	null_out = fopen("/dev/null", "w");
	check(null_out != NULL, "open /dev/null");
	return 0;
}

/* A decoded State with the budget it was counted against. */
struct decoded {
	struct vmc_pb_budget b;
	Vmcheck__V1__State *st;
};

static void decoded_free(struct decoded *d)
{
	if (d->st)
		vmcheck__v1__state__free_unpacked(d->st, &d->b.alloc);
	d->st = NULL;
}

/* @a and @b pack to the same bytes. */
static int same(const Vmcheck__V1__State *a, const Vmcheck__V1__State *b)
{
	size_t la = vmcheck__v1__state__get_packed_size(a);
	size_t lb = vmcheck__v1__state__get_packed_size(b);
	uint8_t *pa, *pb;
	int eq;

	if (la != lb)
		return 0;
	pa = malloc(la + 1);
	pb = malloc(lb + 1);
	check(pa && pb, "out of memory");
	vmcheck__v1__state__pack(a, pa);
	vmcheck__v1__state__pack(b, pb);
	eq = !memcmp(pa, pb, la);
	free(pa);
	free(pb);
	return eq;
}

/* Merge @st into @v and check what the view then shows. */
static void merge(struct vmc_view *v, const Vmcheck__V1__State *st)
{
	const Vmcheck__V1__State *m;
	struct vmc_view *before = vmc_view_dup(v);

	check(before != NULL, "view dup");
	if (vmc_view_merge(v, st) < 0) {
		check(same(vmc_view_state(v), vmc_view_state(before)),
		      "a failed merge changed the view");
		vmc_view_free(before);
		return;
	}
	m = vmc_view_state(v);
	check((m->sections & st->sections) == (st->sections & 0x7f), "a merged section is missing");
	check(m->generation == st->generation && m->mono_ns == st->mono_ns,
	      "the view's clocks are not the newest State's");
	if (st->sections & VMCHECK__V1__SECTION__SECTION_LINKS)
		check(m->n_links == st->n_links, "merged links differ");
	if (st->sections & VMCHECK__V1__SECTION__SECTION_BLOCKS)
		check(m->n_blocks == st->n_blocks, "merged blocks differ");
	check(m->n_errors <= 7, "more errors than sections");
	vmc_state_diff_write(null_out, vmc_view_state(before), m);
	vmc_view_free(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmc_view *v = vmc_view_new(), *baseline = NULL;
	struct decoded last = { .st = NULL }, cur;

	check(v != NULL, "view");
	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		const uint8_t *body = data + 3;
		struct vmc_view *d;

		size -= 3;
		data += 3;
		if (len > size)
			len = size;
		data += len;
		size -= len;
		vmc_pb_budget_init(&cur.b, STATE_BUDGET);
		cur.st = vmcheck__v1__state__unpack(&cur.b.alloc, len, body);
		if (!cur.st)
			continue;
		switch (op % OP_COUNT) {
		case OP_MERGE:
			merge(v, cur.st);
			break;
		case OP_BASELINE:
			merge(v, cur.st);
			vmc_view_free(baseline);
			baseline = vmc_view_dup(v);
			check(baseline && same(vmc_view_state(baseline), vmc_view_state(v)),
			      "a view's copy differs from the view");
			break;
		case OP_RESET:
			vmc_view_reset(v);
			check(vmc_view_state(v)->sections == 0, "a reset view holds sections");
			merge(v, cur.st);
			break;
		case OP_DIFF:
			vmc_state_diff_write(null_out, cur.st, vmc_view_state(v));
			vmc_state_diff_write(null_out, vmc_view_state(v), cur.st);
			if (last.st)
				vmc_state_diff_write(null_out, last.st, cur.st);
			check(vmc_state_diff_write(null_out, cur.st, cur.st) == 0,
			      "a State differs from itself");
			break;
		}
		/* The merged view against its copy: the same State, no change. */
		d = vmc_view_dup(v);
		check(d && same(vmc_view_state(d), vmc_view_state(v)), "a view's copy differs");
		check(vmc_state_diff_write(null_out, vmc_view_state(v), vmc_view_state(d)) == 0,
		      "a view differs from its copy");
		vmc_view_free(d);
		decoded_free(&last);
		last = cur;
	}
	/* What a failed step's evidence shows: the baseline against the end. */
	if (baseline)
		vmc_state_diff_write(null_out, vmc_view_state(baseline), vmc_view_state(v));
	decoded_free(&last);
	vmc_view_free(baseline);
	vmc_view_free(v);
	return 0;
}
