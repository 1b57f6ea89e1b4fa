/* SPDX-License-Identifier: MIT */
/*
 * The kernel log as evidence: records from /dev/kmsg (dev/kmsg below the
 * sysroot; on a fixture root a regular file of concatenated records stands
 * in for it) since a sequence number.
 */
#ifndef VMC_KMSG_H
#define VMC_KMSG_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "outcome.h"

#define VMC_KMSG_DEFAULT_RECORDS 1000u
#define VMC_KMSG_MAX_RECORDS 10000u
/* Largest record read(2) may hand out: the kernel's limit is 8 KiB. */
#define VMC_KMSG_RECORD_MAX 16384u

/*
 * vmc_kmsg_parse - parse exactly one record
 * @buf: "PRI,SEQ,TS_US,FLAG[,MORE...];MESSAGE\n" then zero or more
 *       " KEY=VALUE\n" continuation lines, and nothing else
 * @a:   where the decoded message and properties go; NULL: validate only,
 *       rec->message and rec->properties are left alone
 *
 * Fields after FLAG are ignored (the kernel may add more, e.g. the caller
 * id). \xNN escapes in the message and values are decoded, except \x00,
 * which stays as written. Returns 0; -EINVAL when anything does not parse
 * (bad number, missing separator, a backslash that is no \xNN escape, text
 * after the last line); -ENOMEM. @rec is only valid on success.
 */
int vmc_kmsg_parse(const char *buf, size_t len, struct vmc_arena *a, Vmcheck__V1__KmsgRecord *rec);

/*
 * vmc_kmsg_read - the records with seq >= @since_seq, oldest first
 * @max_records: 0 means VMC_KMSG_DEFAULT_RECORDS; capped at VMC_KMSG_MAX_RECORDS
 * @max_bytes:   stop before the records' text would exceed this (a reply
 *               must fit in a frame); out->next_seq says where to go on
 *
 * Records overwritten while reading (EPIPE) are skipped; records that do
 * not parse are counted in out->malformed. Returns 0, or -errno with the
 * reason in @o when dev/kmsg cannot be opened or read.
 */
int vmc_kmsg_read(int rootfd, uint64_t since_seq, uint32_t max_records, size_t max_bytes,
		  struct vmc_arena *a, Vmcheck__V1__Kmsg *out, struct vmc_outcome *o);

#endif
