/* SPDX-License-Identifier: MIT */
/* Tests of the VMC1 frame reader and writer: what a hostile or flaky transport sends. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "harness.h"
#include "macro.h"
#include "pb.h"

#define NFRAMES 1000

/* Frame @i of a test stream: 0 to 96 bytes, content depending on @i. */
static size_t payload_len(unsigned i)
{
	return i % 97;
}

static uint8_t payload_byte(unsigned i, size_t j)
{
	return (uint8_t)(i * 31 + j * 7);
}

/* Append frame @i to @dst; returns the bytes written. */
static size_t put_frame(uint8_t *dst, unsigned i)
{
	size_t n = payload_len(i);

	vmc_frame_header(dst, (uint32_t)n);
	for (size_t j = 0; j < n; j++)
		dst[VMC_FRAME_HDR + j] = payload_byte(i, j);
	return VMC_FRAME_HDR + n;
}

static bool payload_ok(unsigned i, const uint8_t *p, size_t len)
{
	if (len != payload_len(i))
		return false;
	for (size_t j = 0; j < len; j++)
		if (p[j] != payload_byte(i, j))
			return false;
	return true;
}

/* The whole test stream, NFRAMES frames back to back (caller frees). */
static uint8_t *make_stream(size_t *len)
{
	uint8_t *s = malloc(NFRAMES * (VMC_FRAME_HDR + 97));
	size_t n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (unsigned i = 0; i < NFRAMES; i++)
		n += put_frame(s + n, i);
	*len = n;
	return s;
}

/* Take every complete frame, checking each against the stream's next. */
static void drain(struct vmc_frame_reader *r, unsigned *got, unsigned *bad)
{
	const uint8_t *p;
	size_t len;
	int k;

	while ((k = vmc_frame_next(r, &p, &len)) == 1) {
		if (!payload_ok(*got, p, len))
			(*bad)++;
		(*got)++;
	}
	CU_ASSERT_EQUAL(k, 0);
}

static void truncated_frame_waits_for_the_rest(void)
{
	struct vmc_frame_reader r;
	uint8_t f[VMC_FRAME_HDR + 97];
	size_t n = put_frame(f, 40);
	const uint8_t *p;
	size_t len;

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, VMC_FRAME_HDR - 1), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f + VMC_FRAME_HDR - 1, 1), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f + VMC_FRAME_HDR, 20), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f + VMC_FRAME_HDR + 20, n - VMC_FRAME_HDR - 20), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_TRUE(payload_ok(40, p, len));
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(r.skipped, 0);
	CU_ASSERT_EQUAL(r.frames, 1);
	vmc_frame_reader_free(&r);
}

static void oversize_length_is_refused_before_allocating(void)
{
	static const uint8_t giant[] = { 'V', 'M', 'C', '1', 0x40, 0, 0, 0 }; /* 1 GiB */
	struct vmc_frame_reader r;
	uint8_t f[VMC_FRAME_HDR + 97];
	size_t n = put_frame(f, 5);
	const uint8_t *p;
	size_t len;

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, giant, sizeof(giant)), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), -EMSGSIZE);
	CU_ASSERT_EQUAL(r.oversize, 1);
	CU_ASSERT_TRUE(r.cap <= 4096);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	/* The announced gigabyte never reached the buffer, not even after more input. */
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, n), 0);
	CU_ASSERT_TRUE(r.cap <= 4096);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_TRUE(payload_ok(5, p, len));
	CU_ASSERT_EQUAL(r.skipped, sizeof(giant));
	vmc_frame_reader_free(&r);

	/* One byte over a small maximum is over. */
	vmc_frame_reader_init(&r, 64);
	vmc_frame_header(f, 65);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, VMC_FRAME_HDR), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), -EMSGSIZE);
	vmc_frame_reader_free(&r);
}

static void garbage_before_a_frame_is_skipped_and_counted(void)
{
	static const char junk[] = "login: root\r\nPassword: VM\x01VMC";
	struct vmc_frame_reader r;
	uint8_t f[VMC_FRAME_HDR + 97];
	size_t n = put_frame(f, 12);
	const uint8_t *p;
	size_t len;

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, junk, sizeof(junk) - 1), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, n), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_TRUE(payload_ok(12, p, len));
	CU_ASSERT_EQUAL(r.skipped, sizeof(junk) - 1);
	vmc_frame_reader_free(&r);
}

static void magic_split_across_feeds(void)
{
	struct vmc_frame_reader r;
	uint8_t f[VMC_FRAME_HDR + 97];
	size_t n = put_frame(f, 3);
	const uint8_t *p;
	size_t len;

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, "xyz", 3), 0);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, 2), 0); /* "VM" */
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f + 2, 1), 0); /* "C" */
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f + 3, n - 3), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_TRUE(payload_ok(3, p, len));
	CU_ASSERT_EQUAL(r.skipped, 3);
	vmc_frame_reader_free(&r);
}

static void frames_fed_one_byte_at_a_time(void)
{
	enum {
		K = 100
	}; /* frames 0 (empty) to 99 */
	struct vmc_frame_reader r;
	size_t n;
	_cleanup_free_ uint8_t *s = make_stream(&n);
	size_t end[K], off = 0;
	unsigned got = 0, bad = 0, due = 0;

	for (unsigned i = 0; i < K; i++)
		end[i] = off += VMC_FRAME_HDR + payload_len(i);
	vmc_frame_reader_init(&r, 0);
	for (size_t i = 0; i < end[K - 1]; i++) {
		CU_ASSERT_EQUAL_FATAL(vmc_frame_feed(&r, s + i, 1), 0);
		drain(&r, &got, &bad);
		/* Each frame comes out exactly when its last byte arrives. */
		while (due < K && end[due] <= i + 1)
			due++;
		CU_ASSERT_EQUAL_FATAL(got, due);
	}
	CU_ASSERT_EQUAL(got, K);
	CU_ASSERT_EQUAL(bad, 0);
	vmc_frame_reader_free(&r);
}

static void thousand_frames_in_one_feed(void)
{
	struct vmc_frame_reader r;
	size_t n;
	_cleanup_free_ uint8_t *s = make_stream(&n);
	unsigned got = 0, bad = 0;

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, s, n), 0);
	drain(&r, &got, &bad);
	CU_ASSERT_EQUAL(got, NFRAMES);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(r.frames, NFRAMES);
	CU_ASSERT_EQUAL(r.skipped, 0);
	vmc_frame_reader_free(&r);
}

/* xorshift32: the same "random" chunking on every run. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void thousand_frames_in_random_chunks(void)
{
	struct vmc_frame_reader r;
	size_t n, off = 0;
	_cleanup_free_ uint8_t *s = make_stream(&n);
	unsigned got = 0, bad = 0, feeds = 0;
	uint32_t seed = 0x2545f491;

	vmc_frame_reader_init(&r, 0);
	while (off < n) {
		size_t c = 1 + next_rand(&seed) % 300;

		if (c > n - off)
			c = n - off;
		CU_ASSERT_EQUAL_FATAL(vmc_frame_feed(&r, s + off, c), 0);
		drain(&r, &got, &bad);
		off += c;
		feeds++;
	}
	CU_ASSERT_TRUE(feeds > 100);
	CU_ASSERT_EQUAL(got, NFRAMES);
	CU_ASSERT_EQUAL(bad, 0);
	/* Draining after each feed keeps the buffer near one frame plus one chunk. */
	CU_ASSERT_TRUE(r.cap <= 4096);
	vmc_frame_reader_free(&r);
}

/*
 * Garbage holding a fake header whose length swallows the start of the real
 * frame behind it, as a stale half-written frame on virtio-serial would.
 */
static size_t make_fake_then_real(uint8_t *buf, Vmcheck__V1__Request *req)
{
	static const uint8_t fake[] = {
		'z', 'z', 'V', 'M', 'C', '1', 0, 0, 0, 16, 0x07, 0xff, 0xff, 0xff
	}; /* wire type 7: never protobuf */
	_cleanup_free_ uint8_t *real = NULL;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&req->base, 4096, &real, &n), 0);
	CU_ASSERT_FATAL(n > 12); /* the fake's 16 bytes end inside the real frame */
	memcpy(buf, fake, sizeof(fake));
	memcpy(buf + sizeof(fake), real, n);
	return sizeof(fake) + n;
}

static void reject_recovers_the_frame_inside_a_fake_one(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState gs = VMCHECK__V1__GET_STATE__INIT;
	struct vmc_frame_reader r;
	struct vmc_pb_budget b;
	Vmcheck__V1__Request *got;
	uint8_t buf[256];
	const uint8_t *p;
	size_t n, len;

	req.id = 77;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	gs.sections = VMCHECK__V1__SECTION__SECTION_LINKS;
	req.get_state = &gs;
	n = make_fake_then_real(buf, &req);
	vmc_pb_budget_init(&b, 1 << 20);

	/* Without reject the fake frame eats the real one's header. */
	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, buf, n), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_EQUAL(len, 16);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	vmc_frame_reader_free(&r);

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, buf, n), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_PTR_NULL(vmc_pb_request_unpack(&b, p, len));
	vmc_frame_reject(&r);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	got = vmc_pb_request_unpack(&b, p, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_EQUAL(got->id, 77);
	CU_ASSERT_EQUAL_FATAL(got->kind_case, VMCHECK__V1__REQUEST__KIND_GET_STATE);
	CU_ASSERT_EQUAL(got->get_state->sections, VMCHECK__V1__SECTION__SECTION_LINKS);
	vmcheck__v1__request__free_unpacked(got, &b.alloc);
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	/* Every byte before the real frame, fake header included. */
	CU_ASSERT_EQUAL(r.skipped, 14);
	vmc_frame_reader_free(&r);
}

static void zero_length_payload(void)
{
	struct vmc_frame_reader r;
	uint8_t f[2 * VMC_FRAME_HDR + 97];
	size_t n = put_frame(f, 0);
	const uint8_t *p;
	size_t len = 99;

	n += put_frame(f + n, 1);
	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, n), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	CU_ASSERT_TRUE(payload_ok(1, p, len));
	CU_ASSERT_EQUAL(vmc_frame_next(&r, &p, &len), 0);
	vmc_frame_reader_free(&r);
}

struct pipe_reader {
	int fd;
	size_t n;
	uint8_t *buf;
};

static void *read_to_eof(void *arg)
{
	struct pipe_reader *pr = arg;
	ssize_t k;

	/* Slow reads so the writer meets a full pipe and EAGAIN. */
	while ((k = read(pr->fd, pr->buf + pr->n, 1000)) > 0)
		pr->n += (size_t)k;
	return NULL;
}

static void write_all_fills_a_nonblocking_pipe(void)
{
	enum {
		SIZE = 1 << 20
	};
	_cleanup_free_ uint8_t *out = malloc(SIZE);
	_cleanup_free_ uint8_t *in = malloc(SIZE + 1000);
	struct pipe_reader pr = { .buf = in };
	pthread_t t;
	int fds[2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	for (size_t i = 0; i < SIZE; i++)
		out[i] = (uint8_t)(i * 131 >> 3);
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	CU_ASSERT_EQUAL_FATAL(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
	pr.fd = fds[0];
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, read_to_eof, &pr), 0);
	CU_ASSERT_EQUAL(vmc_write_all(fds[1], out, SIZE, VMC_WRITE_TIMEOUT_MS, NULL), 0);
	close(fds[1]);
	pthread_join(t, NULL);
	close(fds[0]);
	CU_ASSERT_EQUAL_FATAL(pr.n, SIZE);
	CU_ASSERT_EQUAL(memcmp(in, out, SIZE), 0);
}

static void write_all_reports_a_gone_peer(void)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	int fds[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	close(fds[0]);
	sigaction(SIGPIPE, &ign, &old);
	CU_ASSERT_EQUAL(vmc_write_all(fds[1], "x", 1, VMC_WRITE_TIMEOUT_MS, NULL), -EPIPE);
	sigaction(SIGPIPE, &old, NULL);
	close(fds[1]);
}

/* A writer on its own thread, so a write that blocks past its deadline cannot hang the test. */
struct timed_write {
	int fd;
	size_t n, done;
	int timeout_ms, r;
	uint64_t ms;
	uint8_t *data;
};

static void *timed_write_run(void *arg)
{
	struct timed_write *w = arg;
	uint64_t t0 = vmc_mono_ns();

	w->r = vmc_write_all(w->fd, w->data, w->n, w->timeout_ms, &w->done);
	w->ms = (vmc_mono_ns() - t0) / 1000000;
	return NULL;
}

/*
 * Write @n bytes to @fd, whose reader never reads, with a 200 ms deadline:
 * -ETIMEDOUT after 200 ms, with part written. A write that blocks past its
 * deadline fails the test; closing @reader then frees the writer.
 */
static void times_out_unread(int fd, int reader, size_t n)
{
	struct timed_write w = { .fd = fd, .n = n, .timeout_ms = 200 };
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	struct timespec until;
	pthread_t t;
	ssize_t k;
	size_t got = 0;
	uint8_t buf[65536];

	w.data = calloc(1, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w.data);
	sigaction(SIGPIPE, &ign, &old);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, timed_write_run, &w), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	if (pthread_timedjoin_np(t, NULL, &until) != 0) {
		CU_FAIL("the write blocked past its deadline");
		close(reader);
		pthread_join(t, NULL);
		reader = -1;
	}
	sigaction(SIGPIPE, &old, NULL);
	CU_ASSERT_EQUAL(w.r, -ETIMEDOUT);
	CU_ASSERT(w.ms >= 199 && w.ms < 2000);
	CU_ASSERT(w.done > 0 && w.done < n);
	/* What it says it wrote is what the reader can read, no more. */
	if (reader >= 0) {
		CU_ASSERT_EQUAL(fcntl(reader, F_SETFL, O_NONBLOCK), 0);
		while ((k = read(reader, buf, sizeof(buf))) > 0)
			got += (size_t)k;
		CU_ASSERT_EQUAL(got, w.done);
		close(reader);
	}
	free(w.data);
}

static void write_times_out_on_a_socket_nobody_reads(void)
{
	int sv[2];

	/* Blocking: MSG_DONTWAIT keeps the write from waiting past the deadline. */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	times_out_unread(sv[0], sv[1], 8 << 20);
	close(sv[0]);
}

static void write_times_out_on_a_pipe_nobody_reads(void)
{
	int fds[2];

	/* A blocking pipe: written after POLLOUT, PIPE_BUF at a time. */
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	times_out_unread(fds[1], fds[0], 1 << 20);
	close(fds[1]);
	/* Non-blocking: EAGAIN, then POLLOUT until the deadline. */
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	times_out_unread(fds[1], fds[0], 1 << 20);
	close(fds[1]);
}

/* A socket whose peer left: -EPIPE, not SIGPIPE (MSG_NOSIGNAL). */
static void write_to_a_closed_socket_is_epipe(void)
{
	size_t done = 99;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	CU_ASSERT_EQUAL(vmc_write_all(sv[0], "x", 1, 1000, &done), -EPIPE);
	CU_ASSERT_EQUAL(done, 0);
	close(sv[0]);
}

VMC_SUITE(frame, NULL, NULL, VMC_TEST(truncated_frame_waits_for_the_rest),
	  VMC_TEST(oversize_length_is_refused_before_allocating),
	  VMC_TEST(garbage_before_a_frame_is_skipped_and_counted),
	  VMC_TEST(magic_split_across_feeds), VMC_TEST(frames_fed_one_byte_at_a_time),
	  VMC_TEST(thousand_frames_in_one_feed), VMC_TEST(thousand_frames_in_random_chunks),
	  VMC_TEST(reject_recovers_the_frame_inside_a_fake_one), VMC_TEST(zero_length_payload),
	  VMC_TEST(write_all_fills_a_nonblocking_pipe), VMC_TEST(write_all_reports_a_gone_peer),
	  VMC_TEST(write_times_out_on_a_socket_nobody_reads),
	  VMC_TEST(write_times_out_on_a_pipe_nobody_reads),
	  VMC_TEST(write_to_a_closed_socket_is_epipe))
