/* SPDX-License-Identifier: MIT */
/*
 * The ledger of what a backend added to a VM: recorded on every add, dropped
 * on every removal, read back in the order a cleanup must follow.
 */
#include "ledger.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static void entry_free(struct vmc_ledger_entry *e)
{
	free(e->id);
	free(e->device);
}

static ssize_t index_of(const struct vmc_ledger *l, enum vmc_ledger_kind kind, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].kind == kind && !strcmp(l->e[i].id, id))
			return (ssize_t)i;
	return -1;
}

int vmc_ledger_add(struct vmc_ledger *l, enum vmc_ledger_kind kind, const char *id,
		   const char *device)
{
	struct vmc_ledger_entry e = { .kind = kind, .id = strdup(id) };
	struct vmc_ledger_entry *grown;

	if (device)
		e.device = strdup(device);
	grown = realloc(l->e, (l->n + 1) * sizeof(*l->e));
	if (!e.id || (device && !e.device) || !grown) {
		entry_free(&e);
		if (grown)
			l->e = grown;
		return -ENOMEM;
	}
	l->e = grown;
	vmc_ledger_drop(l, kind, id);
	e.seq = ++l->seq;
	l->e[l->n++] = e;
	return 0;
}

bool vmc_ledger_drop(struct vmc_ledger *l, enum vmc_ledger_kind kind, const char *id)
{
	ssize_t i = index_of(l, kind, id);

	if (i < 0)
		return false;
	entry_free(&l->e[i]);
	/* Keep the order of addition: the plan reads it. */
	memmove(&l->e[i], &l->e[i + 1], (l->n - (size_t)i - 1) * sizeof(*l->e));
	l->n--;
	return true;
}

const struct vmc_ledger_entry *vmc_ledger_find(const struct vmc_ledger *l,
					       enum vmc_ledger_kind kind, const char *id)
{
	ssize_t i = index_of(l, kind, id);

	return i < 0 ? NULL : &l->e[i];
}

size_t vmc_ledger_plan(const struct vmc_ledger *l, const struct vmc_ledger_entry **out, size_t max)
{
	size_t k = 0;

	/* A backend cannot go while its device holds it: devices first. */
	for (size_t i = l->n; i-- > 0;)
		if (l->e[i].kind == VMC_LEDGER_DEVICE && k < max)
			out[k++] = &l->e[i];
	for (size_t i = l->n; i-- > 0;)
		if (l->e[i].kind != VMC_LEDGER_DEVICE && k < max)
			out[k++] = &l->e[i];
	return l->n;
}

const char *vmc_ledger_kind_name(enum vmc_ledger_kind kind)
{
	switch (kind) {
	case VMC_LEDGER_DEVICE:
		return "device";
	case VMC_LEDGER_NETDEV:
		return "netdev";
	case VMC_LEDGER_BLOCKDEV:
		return "block node";
	case VMC_LEDGER_OBJECT:
		return "memory backend";
	case VMC_LEDGER_CHARDEV:
		return "chardev";
	case VMC_LEDGER_VOLUME:
		return "volume";
	}
	return "object";
}

void vmc_ledger_clear(struct vmc_ledger *l)
{
	for (size_t i = 0; i < l->n; i++)
		entry_free(&l->e[i]);
	free(l->e);
	*l = (struct vmc_ledger){ 0 };
}

ssize_t vmc_ledger_items(const struct vmc_ledger *l, size_t extra, struct vmc_ledger_item **it,
			 struct vmc_hv_cleaned **c)
{
	const struct vmc_ledger_entry **plan;
	size_t n = l->n;

	*it = NULL;
	*c = NULL;
	if (!n)
		return 0;
	plan = calloc(n, sizeof(*plan));
	*it = calloc(n, sizeof(**it));
	*c = calloc(n + extra, sizeof(**c));
	if (!plan || !*it || !*c) {
		free(plan);
		free(*it);
		free(*c);
		*it = NULL;
		*c = NULL;
		return -ENOMEM;
	}
	vmc_ledger_plan(l, plan, n);
	for (size_t i = 0; i < n; i++) {
		struct vmc_ledger_item *x = &(*it)[i];

		x->kind = plan[i]->kind;
		snprintf(x->id, sizeof(x->id), "%s", plan[i]->id);
		snprintf(x->device, sizeof(x->device), "%s",
			 plan[i]->device ? plan[i]->device : "");
		/* A volume's long path is cut here; the item keeps it whole. */
		snprintf((*c)[i].what, sizeof((*c)[i].what), "%s %.80s",
			 vmc_ledger_kind_name(x->kind), x->id);
	}
	free(plan);
	return (ssize_t)n;
}

void vmc_ledger_settle(struct vmc_ledger_item *it, struct vmc_hv_cleaned *c,
		       enum vmc_ledger_state state, const char *fmt, ...)
{
	va_list ap;

	it->state = state;
	c->removed = state == VMC_LEDGER_GONE;
	va_start(ap, fmt);
	vsnprintf(c->how, sizeof(c->how), fmt, ap);
	va_end(ap);
}

bool vmc_ledger_stop_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return fd >= 0 && poll(&p, 1, 0) == 1;
}

int vmc_ledger_finish(struct vmc_ledger_item *it, size_t n, struct vmc_hv_cleaned *c, size_t n_c,
		      int stop_fd, bool *cut, unsigned ms, const char *event, const char *late,
		      void (*rest)(void *ctx, struct vmc_ledger_item *all, size_t n,
				   struct vmc_ledger_item *it, struct vmc_hv_cleaned *c),
		      void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		if (it[i].state == VMC_LEDGER_DELETING) {
			if (*cut)
				vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_LEFT,
						  "%s sent, no %s yet", it[i].via, event);
			else
				vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_LEFT,
						  "%s sent, %s %u ms (the guest did not let it go)",
						  it[i].via, late, ms);
		}
		if (it[i].state != VMC_LEDGER_PENDING)
			continue;
		if (*cut || vmc_ledger_stop_now(stop_fd))
			*cut = true;
		if (*cut)
			vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_LEFT,
					  "not tried: a second signal cut the cleanup short");
		else
			rest(ctx, it, n, &it[i], &c[i]);
	}
	for (size_t i = 0; i < n_c; i++)
		if (!c[i].removed)
			return -EBUSY;
	return 0;
}
