/* SPDX-License-Identifier: MIT */
#include "arena.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct vmc_arena_chunk {
	struct vmc_arena_chunk *next;
	size_t used, size;
	max_align_t data[];
};

#define CHUNK_MIN 16384u

void *vmc_arena_alloc(struct vmc_arena *a, size_t size)
{
	struct vmc_arena_chunk *c = a->head;
	size_t al = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	void *p;

	if (al < size)
		return NULL;
	if (!c || c->size - c->used < al) {
		size_t csize = al > CHUNK_MIN ? al : CHUNK_MIN;

		if (csize > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + csize);
		if (!c)
			return NULL;
		c->used = 0;
		c->size = csize;
		c->next = a->head;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += al;
	a->total += al;
	memset(p, 0, size);
	return p;
}

char *vmc_arena_strndup(struct vmc_arena *a, const char *s, size_t n)
{
	char *d = vmc_arena_alloc(a, n + 1);

	if (d)
		memcpy(d, s, n);
	return d;
}

char *vmc_arena_strdup(struct vmc_arena *a, const char *s)
{
	return vmc_arena_strndup(a, s, strlen(s));
}

char *vmc_arena_printf(struct vmc_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *d;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	d = vmc_arena_alloc(a, (size_t)n + 1);
	if (!d)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return d;
}

void vmc_arena_free(struct vmc_arena *a)
{
	struct vmc_arena_chunk *c = a->head;

	while (c) {
		struct vmc_arena_chunk *n = c->next;

		free(c);
		c = n;
	}
	a->head = NULL;
	a->total = 0;
}

void vmc_arena_adopt(struct vmc_arena *to, struct vmc_arena *from)
{
	struct vmc_arena_chunk *c = from->head;

	if (!c)
		return;
	while (c->next)
		c = c->next;
	/* @from's chunks go behind @to's current one, which keeps filling. */
	if (to->head) {
		c->next = to->head->next;
		to->head->next = from->head;
	} else {
		c->next = NULL;
		to->head = from->head;
	}
	to->total += from->total;
	from->head = NULL;
	from->total = 0;
}

int vmc_ptrvec_push(struct vmc_arena *a, struct vmc_ptrvec *v, void *item)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		void **ni = vmc_arena_alloc(a, cap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		if (v->n)
			memcpy(ni, v->items, v->n * sizeof(*ni));
		v->items = ni;
		v->cap = cap;
	}
	v->items[v->n++] = item;
	return 0;
}
