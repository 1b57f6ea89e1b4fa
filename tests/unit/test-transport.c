/* SPDX-License-Identifier: MIT */
/*
 * The agent's stream transports against peers that stop reading: a reply
 * that cannot go out within the write timeout ends the stream (stdio) or
 * the client (unix), instead of holding the agent forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "clock.h"
#include "frame.h"
#include "harness.h"
#include "transport.h"

#define BOOT_ID "7d1f6a2e-4c3b-4d5a-9e8f-0a1b2c3d4e5f"

struct served {
	struct vmc_transport *t;
	struct vmc_agent *ag;
	int stop_fd;
	int r;
	pthread_t thread;
	struct fx fx;
};

static void *serve_run(void *arg)
{
	struct served *s = arg;

	s->r = s->t->ops->serve(s->t, s->ag, s->stop_fd);
	return NULL;
}

/*
 * An agent on @t, answering on the transport's own thread, its writes
 * giving up after 200 ms; its root is s->fx, made by the caller.
 */
static void serve_start(struct served *s, struct vmc_transport *t)
{
	struct vmc_agent_config cfg = { 0 };

	s->t = t;
	t->write_timeout_ms = 200;
	fx_write(&s->fx, "proc/sys/kernel/random/boot_id", BOOT_ID "\n");
	cfg.state.root = s->fx.root;
	cfg.state.smt_shift = -1;
	cfg.synchronous = true;
	cfg.transport = t->name;
	CU_ASSERT_EQUAL_FATAL(vmc_agent_new(&cfg, vmc_transport_send, t, &s->ag), 0);
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	CU_ASSERT_FATAL(s->stop_fd >= 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&s->thread, NULL, serve_run, s), 0);
}

/* Wait for serve() to return (at most @ms); false if it did not. */
static bool serve_wait(struct served *s, int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(s->thread, NULL, &until) == 0;
}

static void serve_stop(struct served *s)
{
	(void)eventfd_write(s->stop_fd, 1);
	CU_ASSERT_FATAL(serve_wait(s, 5000));
	vmc_agent_free(s->ag);
	s->t->ops->close(s->t);
	close(s->stop_fd);
	fx_cleanup(&s->fx);
}

/* @n Hello requests, framed back to back. */
static uint8_t *hellos(unsigned n, size_t *len)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello h = VMCHECK__V1__HELLO__INIT;
	uint8_t *all = NULL, *f;
	size_t flen;

	h.protocol_version = 1;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req.hello = &h;
	*len = 0;
	for (unsigned i = 0; i < n; i++) {
		req.id = i + 1;
		CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&req.base, VMC_FRAME_MAX_DEFAULT, &f, &flen), 0);
		all = realloc(all, *len + flen);
		CU_ASSERT_PTR_NOT_NULL_FATAL(all);
		memcpy(all + *len, f, flen);
		*len += flen;
		free(f);
	}
	return all;
}

/* Frames in @buf: complete ones counted, and the bytes of a cut one left over. */
static unsigned count_frames(const uint8_t *buf, size_t n, size_t *left)
{
	struct vmc_frame_reader rd;
	const uint8_t *p;
	size_t len;
	unsigned frames = 0;

	vmc_frame_reader_init(&rd, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&rd, buf, n), 0);
	while (vmc_frame_next(&rd, &p, &len) == 1)
		frames++;
	*left = rd.end - rd.start - rd.pending;
	vmc_frame_reader_free(&rd);
	return frames;
}

/* Everything readable from @fd now. */
static uint8_t *slurp(int fd, size_t *n)
{
	uint8_t *buf = NULL;
	ssize_t k;

	*n = 0;
	CU_ASSERT_EQUAL(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	do {
		buf = realloc(buf, *n + 65536);
		CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
		k = read(fd, buf + *n, 65536);
		if (k > 0)
			*n += (size_t)k;
	} while (k > 0);
	return buf;
}

/*
 * stdout nobody reads: replies fill the pipe, the one that does not fit is
 * cut at the deadline, and the transport ends with -ETIMEDOUT rather than
 * sending the next reply after the cut one.
 */
static void stdio_ends_when_stdout_is_not_read(void)
{
	int in[2], out[2];
	struct served s;
	uint8_t *req, *got;
	size_t req_len, got_len, left;
	uint64_t t0;
	unsigned frames;

	CU_ASSERT_EQUAL_FATAL(pipe2(in, O_CLOEXEC), 0);
	CU_ASSERT_EQUAL_FATAL(pipe2(out, O_CLOEXEC), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_transport_fds_open(in[0], out[1], &s.t), 0);
	fx_init(&s.fx);
	serve_start(&s, s.t);
	/* Far more replies than a 64 KiB pipe holds. */
	req = hellos(2000, &req_len);
	CU_ASSERT_FATAL(req_len < 65536);
	t0 = vmc_mono_ns();
	CU_ASSERT_EQUAL_FATAL(write(in[1], req, req_len), (ssize_t)req_len);
	free(req);
	CU_ASSERT_FATAL(serve_wait(&s, 5000));
	CU_ASSERT_EQUAL(s.r, -ETIMEDOUT);
	CU_ASSERT((vmc_mono_ns() - t0) / 1000000 >= 199);
	/*
	 * The pipe holds whole replies: it takes a frame this small whole or
	 * not at all, so the one that timed out is not in it.
	 */
	got = slurp(out[0], &got_len);
	frames = count_frames(got, got_len, &left);
	CU_ASSERT(frames > 100 && frames < 2000);
	CU_ASSERT_EQUAL(left, 0);
	free(got);
	/* Nothing goes out after a cut frame: the host would take it for its rest. */
	CU_ASSERT_EQUAL(s.t->ops->send(s.t, (const uint8_t *)"VMC1\0\0\0\0", 8), -EPIPE);
	got = slurp(out[0], &got_len);
	CU_ASSERT_EQUAL(got_len, 0);
	free(got);
	vmc_agent_free(s.ag);
	s.t->ops->close(s.t);
	close(s.stop_fd);
	fx_cleanup(&s.fx);
	for (int i = 0; i < 2; i++) {
		close(in[i]);
		close(out[i]);
	}
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/*
 * A unix client that stops reading is dropped at the write timeout (it
 * reads what fitted, then EOF); the next client is served as usual.
 */
static void unix_drops_a_client_that_does_not_read(void)
{
	char path[PATH_MAX + 16];
	struct served s;
	uint8_t *req, *got;
	size_t req_len, got_len, left;
	ssize_t k;
	uint8_t buf[4096];
	int deaf, next;

	fx_init(&s.fx);
	snprintf(path, sizeof(path), "%s/agent.sock", s.fx.path);
	CU_ASSERT_EQUAL_FATAL(vmc_transport_unix_open(path, &s.t), 0);
	serve_start(&s, s.t);

	deaf = connect_to(path);
	req = hellos(2000, &req_len);
	CU_ASSERT_EQUAL_FATAL(write(deaf, req, req_len), (ssize_t)req_len);
	free(req);
	/* Without reading (that would let the writes through): wait for the agent's shutdown. */
	{
		struct pollfd pfd = { .fd = deaf, .events = POLLRDHUP };

		CU_ASSERT_EQUAL(poll(&pfd, 1, 5000), 1);
		CU_ASSERT(pfd.revents & POLLRDHUP);
	}
	/* Whole replies up to the one that timed out (small frames go whole or not at all). */
	got = slurp(deaf, &got_len);
	CU_ASSERT(count_frames(got, got_len, &left) > 10);
	CU_ASSERT_EQUAL(left, 0);
	free(got);
	CU_ASSERT_EQUAL(fcntl(deaf, F_SETFL, 0), 0);
	CU_ASSERT_EQUAL(read(deaf, buf, sizeof(buf)), 0);
	close(deaf);

	/* The next client gets its reply. */
	next = connect_to(path);
	req = hellos(1, &req_len);
	CU_ASSERT_EQUAL_FATAL(write(next, req, req_len), (ssize_t)req_len);
	free(req);
	k = read(next, buf, sizeof(buf));
	CU_ASSERT(k > 8);
	CU_ASSERT_EQUAL(count_frames(buf, k > 0 ? (size_t)k : 0, &left), 1);
	close(next);
	serve_stop(&s);
}

VMC_SUITE(transport, NULL, NULL, VMC_TEST(stdio_ends_when_stdout_is_not_read),
	  VMC_TEST(unix_drops_a_client_that_does_not_read))
