/* SPDX-License-Identifier: MIT */
/*
 * Framing of the wire protocol: "VMC1", a big-endian u32 payload length,
 * then the payload. The reader never trusts a length before checking it
 * against its maximum, and resynchronises on the magic after garbage
 * (virtio-serial keeps stale bytes across host reconnects).
 */
#ifndef VMC_FRAME_H
#define VMC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMC_FRAME_MAGIC "VMC1"
#define VMC_FRAME_HDR 8u
#define VMC_FRAME_MAX_DEFAULT (4u << 20)

struct vmc_frame_reader {
	uint8_t *buf; /* owned */
	size_t cap;
	size_t start;      /* first unconsumed byte */
	size_t end;        /* one past the last byte fed */
	size_t max;        /* largest payload accepted */
	size_t pending;    /* size of the frame handed out by next(), or 0 */
	uint64_t skipped;  /* garbage bytes dropped while resynchronising */
	uint64_t oversize; /* headers rejected for their length */
	uint64_t frames;   /* frames handed out */
};

/* Prepare @r for payloads up to @max bytes (0: VMC_FRAME_MAX_DEFAULT). */
void vmc_frame_reader_init(struct vmc_frame_reader *r, size_t max);
void vmc_frame_reader_free(struct vmc_frame_reader *r);
/* Forget everything buffered (a new connection starts clean). */
void vmc_frame_reader_reset(struct vmc_frame_reader *r);

/*
 * vmc_frame_feed - append @n bytes read from the transport
 *
 * Returns 0, or -ENOMEM. Call vmc_frame_next() until it returns 0 after
 * every feed: buffered data then never exceeds one maximal frame plus the
 * chunk fed, whatever the peer sends.
 */
int vmc_frame_feed(struct vmc_frame_reader *r, const void *data, size_t n);

/*
 * vmc_frame_next - the next complete frame, if any
 * @payload: set to the payload, valid until the next call on @r
 * @len:     set to the payload length
 *
 * Returns 1 when a frame is available, 0 when more bytes are needed,
 * -EMSGSIZE when a header announced a payload over the maximum (the header
 * is skipped and scanning goes on: call again). Garbage before a magic is
 * skipped silently and counted in @r->skipped.
 */
int vmc_frame_next(struct vmc_frame_reader *r, const uint8_t **payload, size_t *len);

/*
 * vmc_frame_reject - the frame last returned did not decode
 *
 * Scanning restarts one byte after its magic, so a frame whose header was
 * real garbage does not swallow a good frame that follows it.
 */
void vmc_frame_reject(struct vmc_frame_reader *r);

/* Write the 8-byte header for a payload of @len bytes into @hdr. */
void vmc_frame_header(uint8_t hdr[VMC_FRAME_HDR], uint32_t len);

/*
 * How long a frame write waits for a peer that does not read. A peer that
 * takes nothing for this long is stuck; the writer must not be stuck with it.
 */
#define VMC_WRITE_TIMEOUT_MS 10000

/*
 * vmc_write_all - write @n bytes to @fd within @timeout_ms
 * @timeout_ms: for the whole write; -1 waits as long as it takes
 * @written:    if not NULL, set to the bytes written, on failure too
 *
 * Never blocks past the deadline, whether @fd is non-blocking or not: a
 * socket is written with MSG_DONTWAIT and MSG_NOSIGNAL, a blocking pipe
 * only after POLLOUT and at most PIPE_BUF bytes at a time. A pipe whose
 * reader left raises SIGPIPE, as write() does: callers ignore it.
 * Returns 0; -ETIMEDOUT at the deadline: part of the data may be written,
 * so a stream of frames is then unusable and must be given up; -EPIPE when
 * the peer is gone (EPIPE, or POLLHUP/POLLERR without POLLOUT); -errno.
 */
int vmc_write_all(int fd, const void *data, size_t n, int timeout_ms, size_t *written);

#endif
