/* SPDX-License-Identifier: MIT */
/*
 * What a guest can make the host hold: every bound on what the agent sends,
 * in one place, each with why it is where it is. A guest over a bound is a
 * fault that names the bound (the connection is cut off and the step
 * fails), never a host out of memory and never a cut that passes.
 *
 * The bounds are far above any real guest: a guest that reaches one is
 * lying or broken. The memory they add up to per agent connection is in
 * doc/design.md ("What a guest can make the host hold").
 */
#ifndef VMC_BOUNDS_H
#define VMC_BOUNDS_H

#include <stddef.h>

#include "frame.h"
#include "pb.h"

/*
 * One frame's payload (common/frame.h): a header announcing more is skipped
 * before anything is allocated for it. 4 MiB holds a State of 65536 memory
 * blocks (about 2 MiB on the wire) with room to spare.
 */
#define VMC_BOUND_FRAME ((size_t)VMC_FRAME_MAX_DEFAULT)

/*
 * What one reply may cost once decoded (the protobuf-c allocator's budget).
 * A real State decodes to about 4 times its wire size; protobuf-c turns a
 * 2-byte empty element into a struct of ~100 bytes, so a hostile frame
 * could ask for 50 times: the budget is 16 frames, and a reply that needs
 * more is refused while it is being decoded.
 */
#define VMC_BOUND_DECODED (16 * VMC_BOUND_FRAME)

/*
 * Pushes queued while a reply is awaited. A real agent coalesces a kernel
 * burst into one push (2 ms window): a few per second, a few dozen during
 * a hotplug storm. More pushes, or more decoded bytes, than this before
 * the reply is a flood.
 */
#define VMC_BOUND_QUEUE_PUSHES 4096
#define VMC_BOUND_QUEUE_BYTES ((size_t)64 << 20)

/*
 * Replies with an id no request is waiting for, dropped while one reply is
 * awaited. A virtio-serial port keeps a previous session's replies, a
 * handful; thousands are an agent answering nothing it was asked.
 */
#define VMC_BOUND_STALE_REPLIES 4096

/*
 * Bytes in one string or bytes field. The longest real ones: /proc/cmdline
 * (2048 on x86, 4096 elsewhere), a CPU list of 8192 CPUs written one by
 * one (~40 KiB), a sysfs path (PATH_MAX, 4096). A hostname is 64 at most.
 */
#define VMC_BOUND_STRING ((size_t)64 << 10)

/*
 * Entries per repeated field, by section. Links: a container host with
 * thousands of veth pairs and VLANs stays under 65536. Memory blocks: 131072
 * blocks of 128 MiB are 16 TiB, QEMU's largest guest; a 512 GiB guest has
 * 4096. CPUs: the kernel's NR_CPUS is at most 8192. PCI: 256 buses of 32
 * devices of 8 functions is 65536 per segment. Every other list (block
 * devices, partitions, addresses per link, crash dumps and their files,
 * capabilities, kernel log records, causes) gets VMC_BOUND_ENTRIES.
 */
#define VMC_BOUND_LINKS 65536
#define VMC_BOUND_MEMORY_BLOCKS 131072
#define VMC_BOUND_CPUS 16384
#define VMC_BOUND_PCI 65536
#define VMC_BOUND_ENTRIES 65536

/*
 * Evidence a failed step keeps of the guest: lines of the diff since the
 * step began (a real step changes a few items; a guest that swaps 65536
 * links still gets its first 2000 told, and the count of the rest), and the
 * bytes of one kernel log record (the kernel's own limit is 1024, 2048
 * since Linux 6.1).
 */
#define VMC_BOUND_DIFF_LINES 2000
#define VMC_BOUND_KMSG_LINE 4096

/*
 * vmc_bounds_check - check a decoded Response against the bounds above
 * @why: set to what broke which bound ("the agent sent 100000 links
 *       (state.links), over the bound of 65536"), "" when none did
 *
 * Walks every field through the protobuf-c descriptors, so a field added
 * to the protocol is bounded without a change here. Returns 0, or
 * -EMSGSIZE with @why set.
 */
int vmc_bounds_check(const Vmcheck__V1__Response *resp, char *why, size_t size);

#endif
