/* SPDX-License-Identifier: MIT */
/* The kernel log reader: /dev/kmsg records since a sequence number, bounded, parsed strictly. */
#include "kmsg.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
/* A stand-in file is read whole; no kernel log comes near this. */
#define FILE_MAX (16u << 20)
/* Protobuf overhead of one record besides its text, generously. */
#define RECORD_OVERHEAD 48u

/* Digits up to @stop, strictly; advances *p past @stop. */
static int parse_num(const char **p, const char *end, char stop, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (s == end || *s != stop)
		return -EINVAL;
	*p = s + 1;
	*out = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode the kernel's \xNN escapes of @n bytes at @s into @out (room for
 * @n + 1), or only check them when @out is NULL. -EINVAL on a backslash
 * that starts no escape: the kernel escapes backslashes themselves.
 */
static int unescape(const char *s, size_t n, char *out)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '\\') {
			if (out)
				out[j++] = s[i];
			continue;
		}
		if (n - i < 4 || s[i + 1] != 'x' || (hi = hexval(s[i + 2])) < 0 ||
		    (lo = hexval(s[i + 3])) < 0)
			return -EINVAL;
		if (out) {
			/* A NUL would end the C string: keep it as the kernel wrote it. */
			if (hi == 0 && lo == 0) {
				memcpy(out + j, s + i, 4);
				j += 4;
			} else {
				out[j++] = (char)(hi << 4 | lo);
			}
		}
		i += 3;
	}
	if (out)
		out[j] = '\0';
	return 0;
}

/* Decoded copy of @n bytes at @s in @a (or just checked, @a NULL). */
static int decode(struct vmc_arena *a, const char *s, size_t n, char **out)
{
	char *d = NULL;

	if (a && !(d = vmc_arena_alloc(a, n + 1)))
		return -ENOMEM;
	if (unescape(s, n, d) < 0)
		return -EINVAL;
	if (a)
		*out = d;
	return 0;
}

int vmc_kmsg_parse(const char *buf, size_t len, struct vmc_arena *a, Vmcheck__V1__KmsgRecord *rec)
{
	const char *p = buf, *end = buf + len, *nl;
	struct vmc_ptrvec props = { 0 };
	uint64_t pri, seq, ts;
	int r;

	if (parse_num(&p, end, ',', &pri) < 0 || pri > UINT32_MAX ||
	    parse_num(&p, end, ',', &seq) < 0 || parse_num(&p, end, ',', &ts) < 0)
		return -EINVAL;
	/* The flag: '-', 'c' (a continued line) or, from older kernels, '+'. */
	if (end - p < 2 || !strchr("-c+", *p) || *p == '\0' || (p[1] != ';' && p[1] != ','))
		return -EINVAL;
	p++;
	/* Fields a newer kernel may add before the ';' are skipped. */
	while (p < end && *p != ';' && *p != '\n')
		p++;
	if (p == end || *p != ';')
		return -EINVAL;
	p++;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return -EINVAL;
	vmcheck__v1__kmsg_record__init(rec);
	rec->seq = seq;
	rec->facility = (uint32_t)(pri >> 3);
	rec->priority = (uint32_t)(pri & 7);
	rec->ts_us = ts;
	r = decode(a, p, (size_t)(nl - p), &rec->message);
	if (r < 0)
		return r;
	for (p = nl + 1; p < end; p = nl + 1) {
		const char *eq;
		char *prop = NULL;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (*p != ' ' || !nl)
			return -EINVAL;
		p++;
		eq = memchr(p, '=', (size_t)(nl - p));
		if (!eq || eq == p)
			return -EINVAL;
		r = decode(a, p, (size_t)(nl - p), &prop);
		if (r == 0 && a)
			r = vmc_ptrvec_push(a, &props, prop);
		if (r < 0)
			return r;
	}
	if (a) {
		rec->properties = (char **)props.items;
		rec->n_properties = props.n;
	}
	return 0;
}

/* Where records come from: the kernel, one per read(), or a whole file. */
struct source {
	int fd;
	char *file; /* a stand-in file's contents, or NULL */
	size_t size, pos;
	char buf[VMC_KMSG_RECORD_MAX];
};

static int load_file(struct source *s, off_t size)
{
	ssize_t n;

	if (size < 0 || (uint64_t)size > FILE_MAX)
		return -EFBIG;
	s->file = malloc((size_t)size + 1);
	if (!s->file)
		return -ENOMEM;
	while (s->size < (size_t)size) {
		n = TEMP_FAILURE_RETRY(read(s->fd, s->file + s->size, (size_t)size - s->size));
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		s->size += (size_t)n;
	}
	return 0;
}

/* The next record: its length (and *rec), 0 at the end, or -errno. */
static ssize_t next_record(struct source *s, const char **rec)
{
	if (s->file) {
		const char *p = s->file + s->pos, *end = s->file + s->size, *nl = p;

		if (p == end)
			return 0;
		/* A record runs through its continuation lines (leading blank). */
		while ((nl = memchr(nl, '\n', (size_t)(end - nl))) && nl + 1 < end && nl[1] == ' ')
			nl++;
		s->pos = nl ? (size_t)(nl + 1 - s->file) : s->size;
		*rec = p;
		return s->file + s->pos - p;
	}
	for (;;) {
		ssize_t n = read(s->fd, s->buf, sizeof(s->buf));

		if (n >= 0) {
			*rec = s->buf;
			return n;
		}
		/* EPIPE: the next record was overwritten; the read after gets a later one. */
		if (errno == EINTR || errno == EPIPE)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

static size_t record_bytes(const Vmcheck__V1__KmsgRecord *rec)
{
	size_t n = strlen(rec->message) + RECORD_OVERHEAD;

	for (size_t i = 0; i < rec->n_properties; i++)
		n += strlen(rec->properties[i]) + 2;
	return n;
}

static void source_free(struct source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->file);
	free(s);
}

static int open_source(int rootfd, struct source **out)
{
	struct source *s = calloc(1, sizeof(*s));
	struct stat st;
	int r = 0;

	if (!s)
		return -ENOMEM;
	s->fd = openat(rootfd, "dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (s->fd < 0 || fstat(s->fd, &st) < 0)
		r = -errno;
	else if (S_ISREG(st.st_mode))
		r = load_file(s, st.st_size);
	if (r < 0) {
		source_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int vmc_kmsg_read(int rootfd, uint64_t since_seq, uint32_t max_records, size_t max_bytes,
		  struct vmc_arena *a, Vmcheck__V1__Kmsg *out, struct vmc_outcome *o)
{
	struct vmc_ptrvec recs = { 0 };
	struct source *s;
	uint64_t next = since_seq;
	uint32_t malformed = 0;
	size_t bytes = 0;
	ssize_t n = 0;
	int r;

	if (!max_records)
		max_records = VMC_KMSG_DEFAULT_RECORDS;
	if (max_records > VMC_KMSG_MAX_RECORDS)
		max_records = VMC_KMSG_MAX_RECORDS;
	r = open_source(rootfd, &s);
	if (r < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r, "opening dev/kmsg: %s",
					strerror(-r));
	/* /dev/kmsg cannot seek to a sequence number: read all, keep the wanted. */
	while (recs.n < max_records) {
		Vmcheck__V1__KmsgRecord hdr, *rec;
		const char *raw = NULL;
		size_t size;

		n = next_record(s, &raw);
		if (n <= 0)
			break;
		if (vmc_kmsg_parse(raw, (size_t)n, NULL, &hdr) < 0) {
			malformed++;
			continue;
		}
		if (hdr.seq < since_seq)
			continue;
		rec = vmc_arena_alloc(a, sizeof(*rec));
		if (!rec || vmc_kmsg_parse(raw, (size_t)n, a, rec) < 0) {
			n = -ENOMEM;
			break;
		}
		size = record_bytes(rec);
		if (bytes + size > max_bytes)
			break;
		if (vmc_ptrvec_push(a, &recs, rec) < 0) {
			n = -ENOMEM;
			break;
		}
		bytes += size;
		next = rec->seq + 1;
	}
	source_free(s);
	if (n < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(-n), (int)-n, "reading dev/kmsg: %s",
					strerror((int)-n));
	out->records = (Vmcheck__V1__KmsgRecord **)recs.items;
	out->n_records = recs.n;
	out->next_seq = next;
	out->malformed = malformed;
	vmc_outcome_ok(o, "%zu record(s)", recs.n);
	return 0;
}
