/* SPDX-License-Identifier: MIT */
/* The bounds on what an agent's Response may carry, checked through the descriptors. */
#include "bounds.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A repeated field with a bound of its own; every other one has VMC_BOUND_ENTRIES. */
struct limit {
	const ProtobufCMessageDescriptor *msg;
	const char *field;
	size_t max;
	const char *noun; /* what the entries are, for the message */
};

static const struct limit limits[] = {
	{ &vmcheck__v1__state__descriptor, "links", VMC_BOUND_LINKS, "links" },
	{ &vmcheck__v1__state__descriptor, "blocks", VMC_BOUND_ENTRIES, "block devices" },
	{ &vmcheck__v1__memory__descriptor, "blocks", VMC_BOUND_MEMORY_BLOCKS, "memory blocks" },
	{ &vmcheck__v1__memory__descriptor, "ranges", VMC_BOUND_MEMORY_BLOCKS, "memory ranges" },
	{ &vmcheck__v1__cpus__descriptor, "cpus", VMC_BOUND_CPUS, "cpus" },
	{ &vmcheck__v1__pci__descriptor, "functions", VMC_BOUND_PCI, "pci functions" },
	{ &vmcheck__v1__pci__descriptor, "slots", VMC_BOUND_PCI, "pci slots" },
	{ &vmcheck__v1__crash_dump__descriptor, "files", VMC_BOUND_ENTRIES, "crash files" },
	{ &vmcheck__v1__crash_dir__descriptor, "dumps", VMC_BOUND_ENTRIES, "crash dumps" },
};

/* The bound of repeated field @f of @d, and what to call its entries. */
static size_t limit_of(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
		       const char **noun)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		if (limits[i].msg == d && !strcmp(limits[i].field, f->name)) {
			*noun = limits[i].noun;
			return limits[i].max;
		}
	*noun = f->name;
	return VMC_BOUND_ENTRIES;
}

/* Where a walk is: the field path so far ("state.links[3]"), for the message. */
struct walk {
	char path[256];
	char *why;
	size_t size;
};

/* Append ".name" or "[i]" to the path; returns the old length to restore. */
static size_t path_push(struct walk *w, const char *name, size_t index, int indexed)
{
	size_t len = strlen(w->path), room = sizeof(w->path) - len;

	if (indexed)
		snprintf(w->path + len, room, "[%zu]", index);
	else
		snprintf(w->path + len, room, "%s%s", len ? "." : "", name);
	return len;
}

static int walk_message(struct walk *w, const ProtobufCMessage *m);

/* Check one element of field @f at @p (a pointer to it in the message or its array). */
static int walk_value(struct walk *w, const ProtobufCFieldDescriptor *f, const void *p)
{
	size_t len;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;

		len = s ? strlen(s) : 0; /* within the frame it was decoded from */
		break;
	}
	case PROTOBUF_C_TYPE_BYTES:
		len = ((const ProtobufCBinaryData *)p)->len;
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;

		return sub ? walk_message(w, sub) : 0;
	}
	default:
		return 0;
	}
	if (len <= VMC_BOUND_STRING)
		return 0;
	snprintf(w->why, w->size,
		 "the agent sent a string of %zu bytes (%s), over the bound of %zu bytes", len,
		 w->path, VMC_BOUND_STRING);
	return -EMSGSIZE;
}

/* Check every field of @m that is set. */
static int walk_message(struct walk *w, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t old, n, size;
		const char *elems;
		int r = 0;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		old = path_push(w, f->name, 0, 0);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			r = walk_value(w, f, base + f->offset);
			w->path[old] = '\0';
			if (r < 0)
				return r;
			continue;
		}
		n = *(const size_t *)(base + f->quantifier_offset);
		{
			const char *noun;
			size_t max = limit_of(d, f, &noun);

			if (n > max) {
				snprintf(w->why, w->size,
					 "the agent sent %zu %s (%s), over the bound of %zu %s", n,
					 noun, w->path, max, noun);
				return -EMSGSIZE;
			}
		}
		elems = *(const char *const *)(base + f->offset);
		switch (f->type) {
		case PROTOBUF_C_TYPE_STRING:
		case PROTOBUF_C_TYPE_MESSAGE:
			size = sizeof(void *);
			break;
		case PROTOBUF_C_TYPE_BYTES:
			size = sizeof(ProtobufCBinaryData);
			break;
		default:
			n = 0; /* numbers: the count was all there was to bound */
			size = 0;
			break;
		}
		for (size_t j = 0; j < n && elems && r == 0; j++) {
			size_t mid = path_push(w, NULL, j, 1);

			r = walk_value(w, f, elems + j * size);
			w->path[mid] = '\0';
		}
		w->path[old] = '\0';
		if (r < 0)
			return r;
	}
	return 0;
}

int vmc_bounds_check(const Vmcheck__V1__Response *resp, char *why, size_t size)
{
	struct walk w = { .path = "", .why = why, .size = size };

	if (size)
		why[0] = '\0';
	return walk_message(&w, &resp->base);
}
