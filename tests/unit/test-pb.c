/* SPDX-License-Identifier: MIT */
/* Tests of the protobuf-c glue: the unpack budget, frame packing, section names. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "harness.h"
#include "macro.h"
#include "pb.h"

#define NOFFSETS 200000
#define S(x) VMCHECK__V1__SECTION__SECTION_##x

/* A DiskProbe request with NOFFSETS packed offsets (caller frees the bytes). */
static uint8_t *pack_big_probe(size_t *len)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__DiskProbe disk = VMCHECK__V1__DISK_PROBE__INIT;
	_cleanup_free_ uint64_t *offs = malloc(NOFFSETS * sizeof(*offs));
	uint8_t *buf;

	CU_ASSERT_PTR_NOT_NULL_FATAL(offs);
	for (size_t i = 0; i < NOFFSETS; i++)
		offs[i] = i * 512;
	disk.device = "vdb";
	disk.n_offsets = NOFFSETS;
	disk.offsets = offs;
	probe.kind_case = VMCHECK__V1__PROBE__KIND_DISK;
	probe.disk = &disk;
	req.id = 9;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &probe;
	*len = vmcheck__v1__request__get_packed_size(&req);
	buf = malloc(*len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	vmcheck__v1__request__pack(&req, buf);
	return buf;
}

static void budget_refuses_beyond_its_limit(void)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = pack_big_probe(&len);
	struct vmc_pb_budget b;
	Vmcheck__V1__Request *req;

	/* The wire form is small (varints); decoded, the offsets take 1.6 MB. */
	CU_ASSERT_TRUE(len < NOFFSETS * 4);
	vmc_pb_budget_init(&b, 64 << 10);
	CU_ASSERT_PTR_NULL(vmc_pb_request_unpack(&b, buf, len));
	CU_ASSERT_EQUAL(b.used, 0); /* a refused unpack gives back what it took */
	CU_ASSERT_TRUE(b.peak <= b.limit);

	vmc_pb_budget_init(&b, 16 << 20);
	req = vmc_pb_request_unpack(&b, buf, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(req);
	CU_ASSERT_TRUE(b.used >= NOFFSETS * sizeof(uint64_t));
	CU_ASSERT_EQUAL_FATAL(req->kind_case, VMCHECK__V1__REQUEST__KIND_PROBE);
	CU_ASSERT_EQUAL_FATAL(req->probe->kind_case, VMCHECK__V1__PROBE__KIND_DISK);
	CU_ASSERT_EQUAL_FATAL(req->probe->disk->n_offsets, NOFFSETS);
	CU_ASSERT_EQUAL(req->probe->disk->offsets[NOFFSETS - 1], (uint64_t)(NOFFSETS - 1) * 512);
	CU_ASSERT_STRING_EQUAL(req->probe->disk->device, "vdb");
	vmcheck__v1__request__free_unpacked(req, &b.alloc);
	CU_ASSERT_EQUAL(b.used, 0);
	CU_ASSERT_TRUE(b.peak >= NOFFSETS * sizeof(uint64_t));
}

static void budget_rejects_one_block_larger_than_the_limit(void)
{
	struct vmc_pb_budget b;

	vmc_pb_budget_init(&b, 100);
	CU_ASSERT_PTR_NULL(b.alloc.alloc(b.alloc.allocator_data, 101));
	CU_ASSERT_PTR_NULL(b.alloc.alloc(b.alloc.allocator_data, SIZE_MAX));
	CU_ASSERT_EQUAL(b.used, 0);
}

static void frame_round_trip(void)
{
	static char *caps[] = { "state", "section:links" };
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__HelloReply hello = VMCHECK__V1__HELLO_REPLY__INIT;
	_cleanup_free_ uint8_t *f = NULL;
	struct vmc_frame_reader r;
	struct vmc_pb_budget b;
	Vmcheck__V1__Response *got;
	const uint8_t *p;
	size_t n, len, packed;
	uint8_t *untouched = (uint8_t *)&n;

	hello.protocol_version = 1;
	hello.agent_version = "0.1.0";
	hello.n_capabilities = 2;
	hello.capabilities = caps;
	hello.max_frame = VMC_FRAME_MAX_DEFAULT;
	hello.transport = "unix";
	resp.id = 1ull << 40;
	resp.kind_case = VMCHECK__V1__RESPONSE__KIND_HELLO;
	resp.hello = &hello;
	packed = vmcheck__v1__response__get_packed_size(&resp);

	CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&resp.base, 4096, &f, &n), 0);
	CU_ASSERT_EQUAL(n, VMC_FRAME_HDR + packed);
	CU_ASSERT_EQUAL(memcmp(f, VMC_FRAME_MAGIC, 4), 0);
	CU_ASSERT_EQUAL(f[7], packed); /* big-endian: the low byte last */

	vmc_frame_reader_init(&r, 0);
	CU_ASSERT_EQUAL(vmc_frame_feed(&r, f, n), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_frame_next(&r, &p, &len), 1);
	vmc_pb_budget_init(&b, 1 << 20);
	got = vmc_pb_response_unpack(&b, p, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_EQUAL(got->id, 1ull << 40);
	CU_ASSERT_EQUAL_FATAL(got->kind_case, VMCHECK__V1__RESPONSE__KIND_HELLO);
	CU_ASSERT_EQUAL(got->hello->protocol_version, 1);
	CU_ASSERT_STRING_EQUAL(got->hello->agent_version, "0.1.0");
	CU_ASSERT_EQUAL_FATAL(got->hello->n_capabilities, 2);
	CU_ASSERT_STRING_EQUAL(got->hello->capabilities[1], "section:links");
	CU_ASSERT_EQUAL(got->hello->max_frame, VMC_FRAME_MAX_DEFAULT);
	CU_ASSERT_STRING_EQUAL(got->hello->transport, "unix");
	vmcheck__v1__response__free_unpacked(got, &b.alloc);
	CU_ASSERT_EQUAL(b.used, 0);
	vmc_frame_reader_free(&r);

	/* Over the maximum: refused, outputs untouched. */
	CU_ASSERT_EQUAL(vmc_pb_frame(&resp.base, packed - 1, &untouched, &n), -EMSGSIZE);
	CU_ASSERT_PTR_EQUAL(untouched, (uint8_t *)&n);
}

static void request_kind_names(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState gs = VMCHECK__V1__GET_STATE__INIT;

	CU_ASSERT_STRING_EQUAL(vmc_pb_request_kind(&req), "none");
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &gs;
	CU_ASSERT_STRING_EQUAL(vmc_pb_request_kind(&req), "get_state");
	req.kind_case = 99; /* a kind from a newer host */
	CU_ASSERT_STRING_EQUAL(vmc_pb_request_kind(&req), "unknown");
}

/* vmc_section_name() agrees with the contract's Section enum, bit for bit. */
static void section_names_match_the_proto(void)
{
	const ProtobufCEnumDescriptor *d = &vmcheck__v1__section__descriptor;
	uint32_t all = 0;

	for (unsigned i = 0; i < d->n_values; i++) {
		const ProtobufCEnumValue *v = &d->values[i];
		char want[32];
		size_t k;

		if (v->value == 0)
			continue;
		/* "SECTION_LINKS" -> "links" */
		for (k = 0; v->name[8 + k] && k < sizeof(want) - 1; k++)
			want[k] = (char)tolower((unsigned char)v->name[8 + k]);
		want[k] = '\0';
		CU_ASSERT_PTR_NOT_NULL_FATAL(vmc_section_name((uint32_t)v->value));
		CU_ASSERT_STRING_EQUAL(vmc_section_name((uint32_t)v->value), want);
		all |= (uint32_t)v->value;
	}
	CU_ASSERT_EQUAL(all, VMC_SECTION_ALL);
	CU_ASSERT_PTR_NULL(vmc_section_name(0));
	CU_ASSERT_PTR_NULL(vmc_section_name(3));
	CU_ASSERT_PTR_NULL(vmc_section_name(VMC_SECTION_ALL + 1));
}

static void section_lists_parse_strictly(void)
{
	uint32_t m = 0;

	CU_ASSERT_EQUAL(vmc_section_parse("links,memory", &m), 0);
	CU_ASSERT_EQUAL(m, S(LINKS) | S(MEMORY));
	CU_ASSERT_EQUAL(vmc_section_parse("crash", &m), 0);
	CU_ASSERT_EQUAL(m, S(CRASH));
	CU_ASSERT_EQUAL(vmc_section_parse("all", &m), 0);
	CU_ASSERT_EQUAL(m, VMC_SECTION_ALL);
	CU_ASSERT_EQUAL(vmc_section_parse("cpus,all", &m), 0);
	CU_ASSERT_EQUAL(m, VMC_SECTION_ALL);
	m = 5;
	CU_ASSERT_EQUAL(vmc_section_parse("links,disks", &m), -EINVAL);
	CU_ASSERT_EQUAL(vmc_section_parse("link", &m), -EINVAL);
	CU_ASSERT_EQUAL(vmc_section_parse("linksx", &m), -EINVAL);
	CU_ASSERT_EQUAL(vmc_section_parse("links,,pci", &m), -EINVAL);
	CU_ASSERT_EQUAL(vmc_section_parse("LINKS", &m), -EINVAL);
	CU_ASSERT_EQUAL(m, 5); /* untouched on failure */
}

VMC_SUITE(pb, NULL, NULL, VMC_TEST(budget_refuses_beyond_its_limit),
	  VMC_TEST(budget_rejects_one_block_larger_than_the_limit), VMC_TEST(frame_round_trip),
	  VMC_TEST(request_kind_names), VMC_TEST(section_names_match_the_proto),
	  VMC_TEST(section_lists_parse_strictly))
