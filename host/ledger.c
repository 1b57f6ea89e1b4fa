/* SPDX-License-Identifier: MIT */
/*
 * The ledger of what a backend added to a VM: recorded on every add, dropped
 * on every removal, read back in the order a cleanup must follow.
 */
#include "ledger.h"

#include <errno.h>
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
