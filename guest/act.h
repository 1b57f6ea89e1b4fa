/* SPDX-License-Identifier: MIT */
/*
 * Guest-side actions the host asks for: CPU and memory-block onlining,
 * suspend and crash. Every path is relative to the sysroot fd, so tests run
 * against fixture trees. Each function returns 0 with the detail in @o, or
 * -errno with the Error code, errno and reason in @o.
 */
#ifndef VMC_ACT_H
#define VMC_ACT_H

#include <stdbool.h>
#include <stdint.h>

#include "outcome.h"

/* Write "1" or "0" to sys/devices/system/cpu/cpuN/online. */
int vmc_act_cpu_online(int rootfd, uint32_t cpu, bool online, struct vmc_outcome *o);

/*
 * vmc_act_memory_online - write @zone to sys/devices/system/memory/memoryN/state
 * @zone: "online_movable" ("" means it), "online_kernel", "online" or "offline";
 *        any other word is refused with BAD_ARGUMENT before anything is touched
 *
 * A block already in the wanted state (online for the three online words)
 * is left alone and reported as such: the kernel would answer EINVAL. For
 * online_movable the block must be, or end up, in zone Movable, for
 * online_kernel in Normal, DMA32 or DMA, as its valid_zones says (an online
 * block's names exactly its zone): one online elsewhere, or that lands
 * elsewhere, is refused with NOT_PERMITTED ("memory35 is already online in
 * zone Normal, not Movable"). Plain "online" takes any zone.
 */
int vmc_act_memory_online(int rootfd, uint64_t block, const char *zone, struct vmc_outcome *o);

/*
 * vmc_act_suspend_open - check that the kernel offers @state and open sys/power/state
 * @state: "mem" ("" means it) or "freeze"
 * @word:  set to the word to write
 * @fd:    set to the open file, for vmc_act_write() once the reply is out
 *
 * Everything that can be refused is refused here, while a reply can still
 * say so; the write itself returns only after the guest woke up.
 */
int vmc_act_suspend_open(int rootfd, const char *state, const char **word, int *fd,
			 struct vmc_outcome *o);

/* Open proc/sysrq-trigger for vmc_act_crash(); refusals as above. */
int vmc_act_crash_open(int rootfd, int *fd, struct vmc_outcome *o);

/* Write @word to the attribute @fd in one write(). Returns 0 or -errno. */
int vmc_act_write(int fd, const char *word);

/* sync(), then "c" to the sysrq trigger @fd: on a live kernel it does not return. */
int vmc_act_crash(int fd);

#endif
