/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the byte stream an agent sends the host, as the host's
 * agent client (host/agent-client.c) reads it.
 *
 * The harness plays the agent on the far end of a socketpair. The input is
 * a script of records, each an op byte, a big-endian u16 length and that
 * many bytes:
 *   RAW    the bytes go on the stream as they are (garbage, cut frames)
 *   FRAME  the bytes framed; when they decode as a Response, its id is
 *          first set to the next call's id, an earlier or later one, or 0
 *          (a push), as the op's high bits say
 *   CALL   the host calls: hello, get_state or subscribe, as the first
 *          byte says, and takes what was sent so far as the answer
 *   EVENTS the host takes every queued or buffered push, merging Event
 *          States into a view as the suite does
 *   EOF    the agent hangs up
 * Calls wait 0 ms: everything the agent says is already on the stream.
 * A reply handed out must carry the id of its call, a push id 0, and every
 * failure must come with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "frame.h"
#include "pb.h"
#include "suite-view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum op {
	OP_RAW,
	OP_FRAME,
	OP_CALL,
	OP_EVENTS,
	OP_EOF,
	OP_COUNT
};

/* What a FRAME record's id becomes when its payload decodes. */
enum id_as {
	ID_NEXT,
	ID_STALE,
	ID_AHEAD,
	ID_PUSH,
	ID_KEEP
};

struct run {
	struct vmc_agent_conn *conn;
	struct vmc_view *view;
	int peer;         /* the agent's end, non-blocking */
	uint64_t next;    /* the id the next call will get */
	bool peer_done;   /* the agent hung up (or its socket is full) */
	bool lost;        /* a call or wait said the agent is gone */
	unsigned unfreed; /* replies left for vmc_agent_close() to free */
};

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-agent-client: %s\n", what);
		abort();
	}
}

/* Put @n bytes on the stream; a full socket ends what the agent says. */
static void put(struct run *run, const void *p, size_t n)
{
	ssize_t w;

	if (run->peer_done || n == 0)
		return;
	w = write(run->peer, p, n);
	if (w != (ssize_t)n) {
		check(w >= 0 || errno == EAGAIN, "write to the host");
		shutdown(run->peer, SHUT_WR);
		run->peer_done = true;
	}
}

/* Drop what the host sent; returns the id of the last request read, or 0. */
static uint64_t drain(struct run *run)
{
	struct vmc_frame_reader rd;
	uint8_t buf[4096];
	const uint8_t *p;
	uint64_t id = 0;
	size_t n;
	ssize_t got;

	vmc_frame_reader_init(&rd, 0);
	while ((got = read(run->peer, buf, sizeof(buf))) > 0) {
		check(vmc_frame_feed(&rd, buf, (size_t)got) == 0, "frame feed");
		while (vmc_frame_next(&rd, &p, &n) == 1) {
			Vmcheck__V1__Request *req = vmcheck__v1__request__unpack(NULL, n, p);

			check(req != NULL, "the host sent an undecodable request");
			id = req->id;
			vmcheck__v1__request__free_unpacked(req, NULL);
		}
	}
	vmc_frame_reader_free(&rd);
	return id;
}

/* A FRAME record: @body framed, its id first rewritten when it decodes. */
static void put_frame(struct run *run, unsigned how, const uint8_t *body, size_t len)
{
	Vmcheck__V1__Response *rsp = vmcheck__v1__response__unpack(NULL, len, body);
	uint8_t hdr[VMC_FRAME_HDR], *frame = NULL;
	size_t flen;

	if (!rsp || how == ID_KEEP) {
		vmc_frame_header(hdr, (uint32_t)len);
		put(run, hdr, sizeof(hdr));
		put(run, body, len);
		vmcheck__v1__response__free_unpacked(rsp, NULL);
		return;
	}
	rsp->id = how == ID_NEXT    ? run->next
		  : how == ID_STALE ? run->next - 1
		  : how == ID_AHEAD ? run->next + 1
				    : 0;
	check(vmc_pb_frame(&rsp->base, UINT32_MAX, &frame, &flen) == 0, "frame a response");
	put(run, frame, flen);
	free(frame);
	vmcheck__v1__response__free_unpacked(rsp, NULL);
}

/* A failure must say what failed, with the code it returned. */
static void check_failure(int r, struct vmc_error *err)
{
	check(r < 0, "negative code");
	check(err->code == r && err->msg && err->msg[0], "a failure without a message");
	vmc_error_clear(err);
}

/* One call of the kind @sel picks; its reply is checked and maybe freed. */
static void call(struct run *run, uint8_t sel)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState gs = VMCHECK__V1__GET_STATE__INIT;
	Vmcheck__V1__Subscribe sub = VMCHECK__V1__SUBSCRIBE__INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Response__KindCase want;
	uint64_t id = run->next, sent;
	int r;

	switch (sel % 3) {
	case 0:
		r = vmc_agent_hello(run->conn, 0, &rsp, &err);
		if (r == 0)
			check(rsp->kind_case == VMCHECK__V1__RESPONSE__KIND_HELLO &&
				      rsp->hello->protocol_version == 1,
			      "hello accepted a bad reply");
		want = VMCHECK__V1__RESPONSE__KIND_HELLO;
		break;
	case 1:
		req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
		req.get_state = &gs;
		r = vmc_agent_call(run->conn, &req, 0, &rsp, &err);
		want = VMCHECK__V1__RESPONSE__KIND_STATE;
		break;
	default:
		sub.sections = sel;
		req.kind_case = VMCHECK__V1__REQUEST__KIND_SUBSCRIBE;
		req.subscribe = &sub;
		r = vmc_agent_call(run->conn, &req, 0, &rsp, &err);
		want = VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED;
		break;
	}
	/* A call on a connection known dead sends nothing, and takes no id. */
	sent = drain(run);
	check(sent == 0 || sent == id, "the request did not carry the expected id");
	if (sent)
		run->next++;
	if (r < 0) {
		check_failure(r, &err);
		run->lost |= r == -EPIPE;
		return;
	}
	check(sent && !run->lost, "a reply after the agent was gone");
	check(rsp->id == id, "a reply handed out for another call");
	r = vmc_agent_expect(run->conn, rsp, want, "the call", &err);
	if (r < 0)
		check_failure(r, &err);
	else if (want == VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED && rsp->subscribed->state)
		vmc_view_merge(run->view, rsp->subscribed->state);
	/* Some replies stay lent, for vmc_agent_close() to free. */
	if (sel & 0x80)
		run->unfreed++;
	else
		vmc_agent_response_free(run->conn, rsp);
}

/* Take every push there is now, as the suite's pump does. */
static void events(struct run *run)
{
	struct vmc_error err = VMC_ERROR_INIT;

	for (unsigned n = 0; n < 100000; n++) {
		Vmcheck__V1__Response *rsp;
		int r = vmc_agent_next_event(run->conn, 0, &rsp, &err);

		if (r == -EPROTO) {
			check_failure(r, &err);
			continue;
		}
		if (r < 0) {
			check_failure(r, &err);
			run->lost |= r == -EPIPE;
			return;
		}
		check(rsp->id == 0, "a push with an id");
		if (rsp->kind_case == VMCHECK__V1__RESPONSE__KIND_EVENT && rsp->event->state)
			vmc_view_merge(run->view, rsp->event->state);
		vmc_agent_response_free(run->conn, rsp);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct run run = { .peer = -1 };
	Vmcheck__V1__Response *rsp;
	int sv[2], r;

	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	check(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	run.peer = sv[1];
	check(vmc_agent_connect_fd(sv[0], "fuzz", &run.conn, &err) == 0, "connect_fd");
	run.view = vmc_view_new();
	check(run.view != NULL, "view");
	/*
	 * The first id is random: a hello that times out tells it. libFuzzer's
	 * own SIGALRM (its -timeout watchdog, every few seconds) can land in
	 * that poll: -EINTR is the same "nothing came", the frame was sent.
	 */
	r = vmc_agent_hello(run.conn, 0, &rsp, &err);
	if (r != -ETIMEDOUT && r != -EINTR)
		fprintf(stderr, "fuzz-agent-client: the first hello gave %d (%s)\n", r,
			err.msg ? err.msg : "no message");
	check(r == -ETIMEDOUT || r == -EINTR, "the first hello");
	vmc_error_clear(&err);
	run.next = drain(&run) + 1;
	check(run.next > 1, "the first hello carried no id");

	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		const uint8_t *body = data + 3;

		size -= 3;
		data += 3;
		if (len > size)
			len = size;
		data += len;
		size -= len;
		switch (op % OP_COUNT) {
		case OP_RAW:
			put(&run, body, len);
			break;
		case OP_FRAME:
			put_frame(&run, (op / OP_COUNT) % (ID_KEEP + 1), body, len);
			break;
		case OP_CALL:
			call(&run, len ? body[0] : 0);
			break;
		case OP_EVENTS:
			events(&run);
			break;
		case OP_EOF:
			if (!run.peer_done)
				shutdown(run.peer, SHUT_WR);
			run.peer_done = true;
			break;
		}
	}
	/* The last word: the agent hangs up, the host takes what is left. */
	shutdown(run.peer, SHUT_WR);
	run.peer_done = true;
	events(&run);
	vmc_agent_close(run.conn);
	close(run.peer);
	vmc_view_free(run.view);
	return 0;
}
