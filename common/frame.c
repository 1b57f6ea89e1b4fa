/* SPDX-License-Identifier: MIT */
/* The frame reader (lengths checked, resync on the magic) and writes bounded by a deadline. */
#include "frame.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"

void vmc_frame_reader_init(struct vmc_frame_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max ? max : VMC_FRAME_MAX_DEFAULT;
}

void vmc_frame_reader_free(struct vmc_frame_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->start = r->end = r->pending = 0;
}

void vmc_frame_reader_reset(struct vmc_frame_reader *r)
{
	r->start = r->end = r->pending = 0;
}

static void compact(struct vmc_frame_reader *r)
{
	if (r->start == 0)
		return;
	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
}

/*
 * Drop bytes that cannot begin a frame: everything before the first "VMC1",
 * keeping a tail that could be the start of a magic split across reads.
 */
static void skip_garbage(struct vmc_frame_reader *r)
{
	size_t n = r->end - r->start, i;
	const uint8_t *p;

	if (n == 0)
		return; /* also: buf may still be NULL */
	p = r->buf + r->start;

	for (i = 0; i < n; i++) {
		size_t k = n - i < 4 ? n - i : 4;

		if (memcmp(p + i, VMC_FRAME_MAGIC, k) == 0)
			break;
	}
	r->skipped += i;
	r->start += i;
}

static int reserve(struct vmc_frame_reader *r, size_t need)
{
	uint8_t *nb;
	size_t cap;

	if (r->cap >= need)
		return 0;
	cap = r->cap ? r->cap : 4096;
	while (cap < need)
		cap *= 2;
	nb = realloc(r->buf, cap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	r->cap = cap;
	return 0;
}

int vmc_frame_feed(struct vmc_frame_reader *r, const void *data, size_t n)
{
	int err;

	if (n == 0)
		return 0;
	/* Consume the frame handed out last time before adding bytes. */
	if (r->pending) {
		r->start += r->pending;
		r->pending = 0;
	}
	skip_garbage(r);
	compact(r);
	/*
	 * Callers drain with vmc_frame_next() after every feed, so what stays
	 * buffered is at most one incomplete frame whose header was already
	 * checked against the maximum, plus the chunk being added.
	 */
	err = reserve(r, r->end + n);
	if (err < 0)
		return err;
	memcpy(r->buf + r->end, data, n);
	r->end += n;
	return 0;
}

int vmc_frame_next(struct vmc_frame_reader *r, const uint8_t **payload, size_t *len)
{
	const uint8_t *p;
	uint32_t plen;

	if (r->pending) {
		r->start += r->pending;
		r->pending = 0;
	}
	for (;;) {
		skip_garbage(r);
		if (r->end - r->start < VMC_FRAME_HDR)
			return 0;
		p = r->buf + r->start;
		plen = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 |
		       (uint32_t)p[7];
		if (plen > r->max) {
			/* Reject before allocating anything for it. */
			r->oversize++;
			r->start++;
			r->skipped++;
			return -EMSGSIZE;
		}
		if (r->end - r->start < VMC_FRAME_HDR + (size_t)plen)
			return 0;
		*payload = p + VMC_FRAME_HDR;
		*len = plen;
		r->pending = VMC_FRAME_HDR + plen;
		r->frames++;
		return 1;
	}
}

void vmc_frame_reject(struct vmc_frame_reader *r)
{
	if (!r->pending)
		return;
	r->pending = 0;
	r->start++;
	r->skipped++;
}

void vmc_frame_header(uint8_t hdr[VMC_FRAME_HDR], uint32_t len)
{
	memcpy(hdr, VMC_FRAME_MAGIC, 4);
	hdr[4] = len >> 24;
	hdr[5] = len >> 16;
	hdr[6] = len >> 8;
	hdr[7] = len;
}

/*
 * Wait until @fd takes more bytes or @deadline (ns, UINT64_MAX: none)
 * passes. Returns 0, -ETIMEDOUT, -EPIPE when the peer is gone, -errno.
 */
static int wait_writable(int fd, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		uint64_t now = vmc_mono_ns();
		int ms = -1, r;

		if (deadline != UINT64_MAX)
			ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLOUT)
			return 0;
		/* HUP without POLLOUT: a virtio port whose host left, a closed pipe. */
		return -EPIPE;
	}
}

int vmc_write_all(int fd, const void *data, size_t n, int timeout_ms, size_t *written)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : vmc_mono_ns() + (uint64_t)timeout_ms * 1000000;
	const uint8_t *p = data;
	int fl = fcntl(fd, F_GETFL);
	bool sock = true, blocking = fl >= 0 && !(fl & O_NONBLOCK);
	size_t done = 0;
	int r = 0;

	while (done < n) {
		size_t chunk = n - done;
		ssize_t w = -1;

		if (sock) {
			w = send(fd, p + done, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK)
				sock = false;
		}
		if (!sock) {
			/* After POLLOUT a blocking pipe takes PIPE_BUF bytes at once. */
			if (blocking) {
				r = wait_writable(fd, deadline);
				if (r < 0)
					break;
				chunk = chunk < PIPE_BUF ? chunk : PIPE_BUF;
			}
			w = write(fd, p + done, chunk);
		}
		if (w >= 0) {
			done += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			r = errno == ECONNRESET ? -EPIPE : -errno;
			break;
		}
		r = wait_writable(fd, deadline);
		if (r < 0)
			break;
	}
	if (written)
		*written = done;
	return r;
}
