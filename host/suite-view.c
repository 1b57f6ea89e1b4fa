/* SPDX-License-Identifier: MIT */
/*
 * The merged view: per section, the newest State that carried it, held in
 * reference-counted copies shared with the view's duplicates.
 */
#include "suite-view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"

#define NSECTIONS 7 /* bits 0..6 of Section */

/* What one copied State may cost once unpacked: as much as a reply (host/bounds.h). */
#define COPY_BUDGET VMC_BOUND_DECODED

/* One merged State, shared by every view that shows one of its sections. */
struct node {
	unsigned refs;
	struct vmc_pb_budget budget;
	Vmcheck__V1__State *st;
};

struct vmc_view {
	struct node *sec[NSECTIONS]; /* who supplies each section; NULL: none yet */
	/*
	 * A State newer than sec[i] that carried an error for section i
	 * instead of the section: the data in sec[i] is stale and this says
	 * why. NULL once a newer State carries the section again.
	 */
	struct node *err[NSECTIONS];
	struct node *top;          /* the newest merged: generation, boot_id, clocks */
	Vmcheck__V1__State merged; /* pointers into the nodes */
	Vmcheck__V1__SectionError **errors;
};

static void node_put(struct node *n)
{
	if (!n || --n->refs)
		return;
	vmcheck__v1__state__free_unpacked(n->st, &n->budget.alloc);
	free(n);
}

static struct node *node_get(struct node *n)
{
	if (n)
		n->refs++;
	return n;
}

/*
 * A deep copy of @st by packing and unpacking (protobuf-c has no copy), of
 * the sections its bits say it carries only: data a State sends for a
 * section it does not claim is never shown, so it is not kept either.
 */
static struct node *node_copy(const Vmcheck__V1__State *st, int *err)
{
	Vmcheck__V1__State only = *st;
	size_t len;
	uint8_t *buf;
	struct node *n = calloc(1, sizeof(*n));

	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_SYSTEM))
		only.system = NULL;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_LINKS))
		only.links = NULL, only.n_links = 0;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_BLOCKS))
		only.blocks = NULL, only.n_blocks = 0;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_MEMORY))
		only.memory = NULL;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_CPUS))
		only.cpus = NULL;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_PCI))
		only.pci = NULL;
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_CRASH))
		only.crash = NULL;
	only.base.n_unknown_fields = 0;
	only.base.unknown_fields = NULL;
	len = vmcheck__v1__state__get_packed_size(&only);
	buf = malloc(len ? len : 1);
	*err = -ENOMEM;
	if (!buf || !n)
		goto fail;
	vmcheck__v1__state__pack(&only, buf);
	vmc_pb_budget_init(&n->budget, COPY_BUDGET);
	n->st = vmcheck__v1__state__unpack(&n->budget.alloc, len, buf);
	if (!n->st) {
		*err = n->budget.used ? -EMSGSIZE : -ENOMEM;
		goto fail;
	}
	n->refs = 1;
	free(buf);
	return n;
fail:
	free(buf);
	free(n);
	return NULL;
}

/* The error @n holds for section bit @bit, or NULL. */
static Vmcheck__V1__SectionError *error_of(const struct node *n, uint32_t bit)
{
	for (size_t e = 0; n && e < n->st->n_errors; e++)
		if (n->st->errors[e] && (uint32_t)n->st->errors[e]->section == bit)
			return n->st->errors[e];
	return NULL;
}

/* Rebuild v->merged from the nodes. Returns 0 or -ENOMEM (v->merged then lacks errors). */
static int compose(struct vmc_view *v)
{
	Vmcheck__V1__State *m = &v->merged;
	size_t nerr = 0;

	vmcheck__v1__state__init(m);
	free(v->errors);
	v->errors = NULL;
	if (v->top) {
		m->generation = v->top->st->generation;
		m->boot_id = v->top->st->boot_id;
		m->mono_ns = v->top->st->mono_ns;
		m->realtime_ns = v->top->st->realtime_ns;
		m->read_ns = v->top->st->read_ns;
	}
	for (unsigned i = 0; i < NSECTIONS; i++) {
		const Vmcheck__V1__State *s = v->sec[i] ? v->sec[i]->st : NULL;

		nerr += error_of(v->err[i], 1u << i) != NULL;
		if (!s)
			continue;
		m->sections |= 1u << i;
		switch (1u << i) {
		case VMCHECK__V1__SECTION__SECTION_SYSTEM:
			m->system = s->system;
			break;
		case VMCHECK__V1__SECTION__SECTION_LINKS:
			m->links = s->links;
			m->n_links = s->n_links;
			break;
		case VMCHECK__V1__SECTION__SECTION_BLOCKS:
			m->blocks = s->blocks;
			m->n_blocks = s->n_blocks;
			break;
		case VMCHECK__V1__SECTION__SECTION_MEMORY:
			m->memory = s->memory;
			break;
		case VMCHECK__V1__SECTION__SECTION_CPUS:
			m->cpus = s->cpus;
			break;
		case VMCHECK__V1__SECTION__SECTION_PCI:
			m->pci = s->pci;
			break;
		case VMCHECK__V1__SECTION__SECTION_CRASH:
			m->crash = s->crash;
			break;
		}
	}
	if (!nerr)
		return 0;
	v->errors = calloc(nerr, sizeof(*v->errors));
	if (!v->errors)
		return -ENOMEM;
	for (unsigned i = 0; i < NSECTIONS; i++) {
		Vmcheck__V1__SectionError *e = error_of(v->err[i], 1u << i);

		if (e)
			v->errors[m->n_errors++] = e;
	}
	m->errors = v->errors;
	return 0;
}

struct vmc_view *vmc_view_new(void)
{
	struct vmc_view *v = calloc(1, sizeof(*v));

	if (v)
		vmcheck__v1__state__init(&v->merged);
	return v;
}

void vmc_view_reset(struct vmc_view *v)
{
	for (unsigned i = 0; i < NSECTIONS; i++) {
		node_put(v->sec[i]);
		node_put(v->err[i]);
		v->sec[i] = v->err[i] = NULL;
	}
	node_put(v->top);
	v->top = NULL;
	compose(v); /* no errors left: cannot fail */
}

void vmc_view_free(struct vmc_view *v)
{
	if (!v)
		return;
	vmc_view_reset(v);
	free(v->errors);
	free(v);
}

int vmc_view_merge(struct vmc_view *v, const Vmcheck__V1__State *st)
{
	struct node *old[NSECTIONS], *old_err[NSECTIONS], *old_top = v->top, *n;
	int r;

	n = node_copy(st, &r);
	if (!n)
		return r;
	memcpy(old, v->sec, sizeof(old));
	memcpy(old_err, v->err, sizeof(old_err));
	for (unsigned i = 0; i < NSECTIONS; i++) {
		bool errored = error_of(n, 1u << i) != NULL;

		if (st->sections & (1u << i))
			v->sec[i] = node_get(n);
		/* Not read this time: the old data stays, with why it is old. */
		if (errored || (st->sections & (1u << i)))
			v->err[i] = errored ? node_get(n) : NULL;
	}
	v->top = n; /* takes the reference node_copy() made */
	r = compose(v);
	if (r < 0) {
		for (unsigned i = 0; i < NSECTIONS; i++) {
			if (v->sec[i] != old[i])
				node_put(v->sec[i]);
			if (v->err[i] != old_err[i])
				node_put(v->err[i]);
		}
		memcpy(v->sec, old, sizeof(old));
		memcpy(v->err, old_err, sizeof(old_err));
		v->top = old_top;
		node_put(n);
		compose(v); /* as before the merge, which composed */
		return r;
	}
	for (unsigned i = 0; i < NSECTIONS; i++) {
		if (v->sec[i] != old[i])
			node_put(old[i]);
		if (v->err[i] != old_err[i])
			node_put(old_err[i]);
	}
	node_put(old_top);
	return 0;
}

const Vmcheck__V1__State *vmc_view_state(const struct vmc_view *v)
{
	return &v->merged;
}

struct vmc_view *vmc_view_dup(const struct vmc_view *v)
{
	struct vmc_view *d = vmc_view_new();

	if (!d)
		return NULL;
	for (unsigned i = 0; i < NSECTIONS; i++) {
		d->sec[i] = node_get(v->sec[i]);
		d->err[i] = node_get(v->err[i]);
	}
	d->top = node_get(v->top);
	if (compose(d) < 0) {
		vmc_view_free(d);
		return NULL;
	}
	return d;
}
