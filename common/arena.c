/* SPDX-License-Identifier: MIT */
/* The snapshot arena: bump allocation in chunks, freed chunks cached for the next arena. */
#include "arena.h"

#include <errno.h>
#include <pthread.h>
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

/*
 * Freed chunks are kept for the next arena, up to CACHE_BYTES in all, and
 * none larger than CACHE_CHUNK_MAX. A snapshot is built and freed many
 * times a second; handing its chunks back to malloc makes musl return the
 * pages to the kernel and fault them in again, and with several threads
 * every unmap is a TLB shootdown across CPUs, costlier than the reading
 * itself on a nested guest.
 */
#define CACHE_BYTES (1024u * 1024u)
#define CACHE_CHUNK_MAX (128u * 1024u)

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmc_arena_chunk *cache;
static size_t cache_bytes;

/* A chunk of at least @csize bytes: the first cached one that fits, or new. */
static struct vmc_arena_chunk *chunk_get(size_t csize)
{
	struct vmc_arena_chunk *c = NULL, **pp;

	if (csize <= CACHE_CHUNK_MAX) {
		pthread_mutex_lock(&cache_lock);
		for (pp = &cache; *pp; pp = &(*pp)->next)
			if ((*pp)->size >= csize) {
				c = *pp;
				*pp = c->next;
				cache_bytes -= c->size;
				break;
			}
		pthread_mutex_unlock(&cache_lock);
	}
	if (!c) {
		c = malloc(sizeof(*c) + csize);
		if (c)
			c->size = csize;
	}
	return c;
}

static void chunk_put(struct vmc_arena_chunk *c)
{
	if (c->size <= CACHE_CHUNK_MAX) {
		pthread_mutex_lock(&cache_lock);
		if (cache_bytes + c->size <= CACHE_BYTES) {
			c->next = cache;
			cache = c;
			cache_bytes += c->size;
			c = NULL;
		}
		pthread_mutex_unlock(&cache_lock);
	}
	free(c);
}

static void *bump(struct vmc_arena *a, size_t size)
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
		c = chunk_get(csize);
		if (!c)
			return NULL;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += al;
	a->total += al;
	return p;
}

void *vmc_arena_alloc(struct vmc_arena *a, size_t size)
{
	void *p = bump(a, size);

	if (p)
		memset(p, 0, size);
	return p;
}

void *vmc_arena_scratch(struct vmc_arena *a, size_t size)
{
	return bump(a, size);
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

		chunk_put(c);
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
