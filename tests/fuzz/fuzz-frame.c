/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a byte stream from the host, as the agent receives it.
 *
 * The first input byte chooses the chunk size the rest is fed in (0: all
 * at once), as a transport's reads would split it. Every frame is decoded
 * with a budget and answered by a synchronous agent reading an empty
 * sysroot; the same chunks also go through vmc_agent_feed(), the real
 * agent's entry point. Every reply must be one well-formed frame holding a
 * Response, and every request must get exactly one reply carrying its id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "pb.h"

#define MAX_FRAME (64u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root_dir[] = "/tmp/vmc-fuzz-root-XXXXXX";
static struct vmc_agent_config cfg;

/* What the agent answered to the payload being handled. */
struct replies {
	unsigned n;
	uint64_t id;
	Vmcheck__V1__Response__KindCase kind;
	Vmcheck__V1__Error__Code code;
};

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-frame: %s\n", what);
		abort();
	}
}

static int check_reply(void *ctx, const uint8_t *frame, size_t len)
{
	struct replies *rp = ctx;
	struct vmc_pb_budget b;
	Vmcheck__V1__Response *resp;
	size_t plen;

	check(len >= VMC_FRAME_HDR && len - VMC_FRAME_HDR <= MAX_FRAME, "reply frame size");
	check(!memcmp(frame, VMC_FRAME_MAGIC, 4), "reply frame magic");
	plen = (size_t)frame[4] << 24 | (size_t)frame[5] << 16 | (size_t)frame[6] << 8 | frame[7];
	check(plen == len - VMC_FRAME_HDR, "reply frame length");
	vmc_pb_budget_init(&b, 4 * MAX_FRAME);
	resp = vmc_pb_response_unpack(&b, frame + VMC_FRAME_HDR, plen);
	check(resp != NULL, "reply does not decode");
	if (rp) {
		rp->n++;
		rp->id = resp->id;
		rp->kind = resp->kind_case;
		rp->code = rp->kind == VMCHECK__V1__RESPONSE__KIND_ERROR ? resp->error->code : 0;
	}
	vmcheck__v1__response__free_unpacked(resp, &b.alloc);
	check(b.used == 0, "reply unpack leaked budget");
	return 0;
}

static void remove_root(void)
{
	vmc_sysroot_close(&cfg.state.root);
	rmdir(root_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	check(mkdtemp(root_dir) != NULL, "mkdtemp");
	check(vmc_sysroot_open(&cfg.state.root, root_dir) == 0, "open the sysroot");
	cfg.state.root.live = false;
	cfg.max_frame = MAX_FRAME;
	cfg.synchronous = true;
	cfg.transport = "fuzz";
	atexit(remove_root);
	return 0;
}

/* Decode and answer one payload, checking the reply against the request. */
static void answer(struct vmc_agent *ag, struct replies *rp, struct vmc_frame_reader *r,
		   const uint8_t *p, size_t len)
{
	struct vmc_pb_budget b;
	Vmcheck__V1__Request *req;

	/* A smaller budget than the agent's: what decodes here decodes there. */
	vmc_pb_budget_init(&b, MAX_FRAME);
	req = vmc_pb_request_unpack(&b, p, len);
	rp->n = 0;
	check(vmc_agent_handle_payload(ag, p, len) == 0, "handle_payload failed");
	check(rp->n == 1, "not exactly one reply");
	if (req) {
		check(rp->id == req->id, "reply id differs from the request's");
		check(rp->kind != VMCHECK__V1__RESPONSE__KIND_ERROR ||
			      rp->code != VMCHECK__V1__ERROR__CODE__MALFORMED,
		      "a decodable request called malformed");
		vmcheck__v1__request__free_unpacked(req, &b.alloc);
		check(b.used == 0, "request unpack leaked budget");
	} else {
		vmc_frame_reject(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmc_agent *ag, *fed;
	struct replies rp;
	struct vmc_frame_reader r;
	size_t chunk;

	if (size == 0)
		return 0;
	chunk = data[0] ? data[0] : size;
	data++;
	size--;
	check(vmc_agent_new(&cfg, check_reply, &rp, &ag) == 0, "vmc_agent_new");
	check(vmc_agent_new(&cfg, check_reply, NULL, &fed) == 0, "vmc_agent_new");
	vmc_frame_reader_init(&r, MAX_FRAME);
	while (size > 0) {
		size_t n = size < chunk ? size : chunk;
		const uint8_t *p;
		size_t len;
		int k;

		check(vmc_frame_feed(&r, data, n) == 0, "vmc_frame_feed");
		while ((k = vmc_frame_next(&r, &p, &len)) != 0) {
			if (k == 1)
				answer(ag, &rp, &r, p, len);
			else
				check(k == -EMSGSIZE, "vmc_frame_next: unexpected error");
		}
		check(r.end - r.start <= VMC_FRAME_HDR + MAX_FRAME, "reader holds over one frame");
		check(vmc_agent_feed(fed, data, n) == 0, "vmc_agent_feed");
		data += n;
		size -= n;
	}
	vmc_frame_reader_free(&r);
	vmc_agent_free(fed);
	vmc_agent_free(ag);
	return 0;
}
