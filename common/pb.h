/* SPDX-License-Identifier: MIT */
/* protobuf-c glue: a budgeted allocator for unpacking and frame encoding. */
#ifndef VMC_PB_H
#define VMC_PB_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcheck.pb-c.h"

/*
 * An allocator that refuses to hand out more than @limit bytes in total
 * (each block counted with malloc's overhead, as it takes memory), so
 * a hostile message (huge repeated counts, deep nesting) cannot make an
 * unpack consume unbounded memory. One budget serves one unpack.
 */
struct vmc_pb_budget {
	ProtobufCAllocator alloc; /* pass &b->alloc to protobuf-c */
	size_t used;
	size_t limit;
	size_t peak;
	bool over; /* an allocation was refused for the limit */
};

void vmc_pb_budget_init(struct vmc_pb_budget *b, size_t limit);

/*
 * vmc_pb_request_unpack / vmc_pb_response_unpack - decode one payload
 *
 * Returns the message (free with the matching *_free_unpacked and the same
 * budget's allocator) or NULL when the payload is malformed or over budget.
 */
Vmcheck__V1__Request *vmc_pb_request_unpack(struct vmc_pb_budget *b, const uint8_t *buf,
					    size_t len);
Vmcheck__V1__Response *vmc_pb_response_unpack(struct vmc_pb_budget *b, const uint8_t *buf,
					      size_t len);

/*
 * vmc_pb_frame - pack @msg into a freshly allocated frame (header + payload)
 * @out: set to the frame (free()), @len: its length
 *
 * Returns 0, -EMSGSIZE when the packed message exceeds @max, -ENOMEM.
 */
int vmc_pb_frame(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *len);

/* Name of a request kind ("get_state"), or "unknown". */
const char *vmc_pb_request_kind(const Vmcheck__V1__Request *req);

/* Name of a section bit ("links"), or NULL for an unknown bit. */
const char *vmc_section_name(uint32_t bit);
/* Parse a comma list of section names into a mask; -EINVAL on an unknown name. */
int vmc_section_parse(const char *list, uint32_t *mask);
#define VMC_SECTION_ALL 0x7fu

#endif
