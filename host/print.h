/* SPDX-License-Identifier: MIT */
/*
 * Output of agent messages: JSON generated from the protobuf-c descriptors
 * (print-json.c) and tables shaped like the tools users already read
 * (print-text.c: ip -br, lsblk, lsmem, lscpu).
 */
#ifndef VMC_PRINT_H
#define VMC_PRINT_H

#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "pb.h"

/*
 * vmc_json_from_message - @m as a JSON object, generically
 *
 * The contract integration tests rely on: proto field names as keys; every
 * field present, defaults included (0, "", false, []); of a oneof only the
 * member set; enums by value name ("CARRIER_UP"), an unknown value as its
 * number; 64-bit integers as JSON integers; bytes as lowercase hex; nested
 * messages as objects, unset ones as null. Returns a new reference (put it
 * with json_object_put()), NULL for a NULL @m or on ENOMEM.
 */
struct json_object *vmc_json_from_message(const ProtobufCMessage *m);

/* @m as one line of JSON on @fp, then flush. Returns 0 or -ENOMEM / -EIO. */
int vmc_json_print(FILE *fp, const ProtobufCMessage *m);

/*
 * vmc_print_state - every section present in @st, one table each, titled
 * when more than one is printed. Tolerates missing sections, NULL strings
 * and empty arrays. Section errors are not printed here.
 */
void vmc_print_state(FILE *fp, const Vmcheck__V1__State *st);

/* "vmcheck: section memory: <message>" for each of @st's section errors. */
void vmc_print_section_errors(FILE *fp, const Vmcheck__V1__State *st);

/* A few lines summing up @st (the baseline of a watch). */
void vmc_print_summary(FILE *fp, const Vmcheck__V1__State *st);

/*
 * vmc_print_event - one pushed Event: host receive time @host_ns (realtime),
 * kernel and read times, latency from the kernel message to the snapshot,
 * the causes, then what changed since @prev (NULL: no diff), as
 * vmc_state_diff_write() puts it.
 */
void vmc_print_event(FILE *fp, const Vmcheck__V1__Event *ev, const Vmcheck__V1__State *prev,
		     int64_t host_ns);

#endif
