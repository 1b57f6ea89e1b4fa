/* SPDX-License-Identifier: MIT */
/* protobuf-c glue: the budgeted allocator, frame packing, section and request names. */
#include "pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Each block carries what it was charged in front so free() can give it back. */
struct budget_hdr {
	size_t size;
	max_align_t align[];
};

/*
 * What a block of @size really takes: our header, and malloc's own (glibc:
 * a size word, 16-byte granules, 32 bytes at least). Counting only @size
 * would let a message of a million 1-byte strings take 32 times its budget.
 */
static size_t charge(size_t size)
{
	size_t n = sizeof(struct budget_hdr) + size + 8;

	return n < 32 ? 32 : (n + 15) & ~(size_t)15;
}

static void *budget_alloc(void *data, size_t size)
{
	struct vmc_pb_budget *b = data;
	struct budget_hdr *h;
	size_t cost;

	if (size > b->limit || charge(size) > b->limit || b->used > b->limit - charge(size)) {
		b->over = true;
		return NULL;
	}
	cost = charge(size);
	h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	h->size = cost;
	b->used += cost;
	if (b->used > b->peak)
		b->peak = b->used;
	return h->align;
}

static void budget_free(void *data, void *ptr)
{
	struct vmc_pb_budget *b = data;
	struct budget_hdr *h;

	if (!ptr)
		return;
	h = (struct budget_hdr *)((char *)ptr - offsetof(struct budget_hdr, align));
	b->used -= h->size;
	free(h);
}

void vmc_pb_budget_init(struct vmc_pb_budget *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
	b->alloc.alloc = budget_alloc;
	b->alloc.free = budget_free;
	b->alloc.allocator_data = b;
}

Vmcheck__V1__Request *vmc_pb_request_unpack(struct vmc_pb_budget *b, const uint8_t *buf, size_t len)
{
	return vmcheck__v1__request__unpack(&b->alloc, len, buf);
}

Vmcheck__V1__Response *vmc_pb_response_unpack(struct vmc_pb_budget *b, const uint8_t *buf,
					      size_t len)
{
	return vmcheck__v1__response__unpack(&b->alloc, len, buf);
}

int vmc_pb_frame(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *f;

	if (n > max || n > UINT32_MAX)
		return -EMSGSIZE;
	f = malloc(VMC_FRAME_HDR + n);
	if (!f)
		return -ENOMEM;
	vmc_frame_header(f, (uint32_t)n);
	protobuf_c_message_pack(msg, f + VMC_FRAME_HDR);
	*out = f;
	*len = VMC_FRAME_HDR + n;
	return 0;
}

const char *vmc_pb_request_kind(const Vmcheck__V1__Request *req)
{
	const ProtobufCFieldDescriptor *f;

	if (req->kind_case == VMCHECK__V1__REQUEST__KIND__NOT_SET)
		return "none";
	f = protobuf_c_message_descriptor_get_field(&vmcheck__v1__request__descriptor,
						    req->kind_case);
	return f ? f->name : "unknown";
}

static const char *const section_names[] = {
	"system", "links", "blocks", "memory", "cpus", "pci", "crash",
};

const char *vmc_section_name(uint32_t bit)
{
	for (unsigned i = 0; i < sizeof(section_names) / sizeof(section_names[0]); i++)
		if (bit == 1u << i)
			return section_names[i];
	return NULL;
}

int vmc_section_parse(const char *list, uint32_t *mask)
{
	uint32_t m = 0;
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		unsigned i;

		for (i = 0; i < sizeof(section_names) / sizeof(section_names[0]); i++)
			if (strlen(section_names[i]) == n && !strncmp(p, section_names[i], n))
				break;
		if (n == 3 && !strncmp(p, "all", 3))
			m |= VMC_SECTION_ALL;
		else if (i == sizeof(section_names) / sizeof(section_names[0]))
			return -EINVAL;
		else
			m |= 1u << i;
		p += n;
		if (*p == ',')
			p++;
	}
	*mask = m;
	return 0;
}
