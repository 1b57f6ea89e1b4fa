/* SPDX-License-Identifier: MIT */
/*
 * The kdump check (check-kdump.c): what makes a guest ready to dump, which
 * dump is the new one, when a dump being written is still on its way, and
 * how long each phase may take. Pure functions of the guest's reports and
 * the clock, so the verdicts are unit-tested without crashing a guest.
 */
#ifndef VMC_CHECK_KDUMP_H
#define VMC_CHECK_KDUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"

/*
 * Deadlines, against what was measured under TCG on a loaded 2-core host
 * (doc/facts.md, "kdump in the embedded guest", paragraph "Timings"):
 * crash -> the capture kernel's agent 4.5-7.7 s; the dump (makedumpfile -l
 * -d 31) of 512 MiB 1.3-2.1 s, 2 GiB 2.6 s, 4 GiB 4.9 s: it scans every
 * page frame of the crashed guest, so it gets a base plus a share per GiB;
 * the capture kernel's reset -> the next normal boot's agent 6-14 s.
 */
#define VMC_KDUMP_SAVE_BASE_MS 20000
#define VMC_KDUMP_SAVE_MS_PER_GIB 2000
/* Booting a big guest costs ~20 ms per GiB (1 TiB: 21 s to userspace under TCG). */
#define VMC_KDUMP_BOOT_MS_PER_GIB 50
/* A vmcore.incomplete that does not grow for this long has stalled. */
#define VMC_KDUMP_STALL_MS 15000

struct vmc_kdump_deadlines {
	unsigned capture_ms; /* the crash -> the capture kernel's agent answers */
	unsigned save_ms;    /* the capture kernel's agent -> the dump saved */
	unsigned reboot_ms;  /* the dump saved -> the next normal boot's agent */
};

/*
 * vmc_kdump_deadlines - the phases' deadlines for a guest of @mem_bytes
 * (0: unknown, counted as 1 GiB), @boot_ms being the run's deadline for a
 * boot (3 x --deadline-ms): capture_ms = @boot_ms; save_ms = 20 s + 2 s per
 * started GiB; reboot_ms = @boot_ms + 50 ms per started GiB. Saturates
 * rather than wrapping.
 */
void vmc_kdump_deadlines(uint64_t mem_bytes, unsigned boot_ms, struct vmc_kdump_deadlines *out);

/*
 * The guest's memory from its memory section: its blocks but those below
 * @ram_base (struct vmc_arch.ram_base: arm virt's UEFI flash is no RAM);
 * else MemTotal; 0 if unknown.
 */
uint64_t vmc_kdump_guest_bytes(const Vmcheck__V1__State *st, uint64_t ram_base);

/* What the guest offers a crash, and the dumps there before it. */
struct vmc_kdump_ready {
	char dir[256];   /* the crash dir dumps will land in ("/var/crash") */
	char where[512]; /* "/dev/vda (ext4) on /var/crash", or why unknown */
	uint64_t crash_size;
	char **before; /* "DIR/NAME" of every dump present; owned */
	size_t n_before;
};

/*
 * vmc_kdump_ready - is the guest ready to dump, from its crash section?
 * Holds when a crash kernel is loaded (kexec_crash_loaded), memory is
 * reserved for it, and a crash dir exists, is writable and is on a known
 * filesystem not held in RAM (rootfs, ramfs, tmpfs: the dump would be gone
 * after the reboot; unknown: the agent found no mount for it, so nothing
 * proves it would not be). The first such dir is @r->dir. @why starts with
 * "kdump not armed" when no crash kernel is loaded. Fills @r either way
 * (release with vmc_kdump_ready_free()); false with @why also on -ENOMEM.
 */
bool vmc_kdump_ready(const Vmcheck__V1__Crash *c, struct vmc_kdump_ready *r, struct vmc_why *why);
void vmc_kdump_ready_free(struct vmc_kdump_ready *r);

/*
 * vmc_kdump_new_dump - the dump of @c no dump of @r's baseline names, in
 * any crash dir; if several are new, the one with the latest mtime (the
 * last listed on a tie). @dir: the crash dir it is in. NULL if none.
 */
const Vmcheck__V1__CrashDump *vmc_kdump_new_dump(const Vmcheck__V1__Crash *c,
						 const struct vmc_kdump_ready *r, const char **dir);

/*
 * Following a dump while the capture kernel writes it. A dump with a file
 * named *incomplete* is being written: as long as its vmcore grows (at
 * least once per stall_ms), it is in progress however long it takes; the
 * deadline only bounds the wait for a dump to appear or to start growing.
 */
enum vmc_kdump_progress {
	VMC_KDUMP_WAITING, /* no new dump yet, or no vmcore in it yet; within the deadline */
	VMC_KDUMP_WRITING, /* vmcore.incomplete seen, growing */
	VMC_KDUMP_SAVED,   /* a vmcore and no *incomplete* file left */
	VMC_KDUMP_LATE,    /* the deadline passed with nothing being written */
	VMC_KDUMP_STALLED, /* the incomplete vmcore stopped growing for stall_ms */
};

struct vmc_kdump_track {
	uint64_t start_ns, deadline_ns, stall_ns;
	bool seen;        /* an incomplete vmcore was seen */
	uint64_t size;    /* its size when last seen to grow */
	uint64_t grew_ns; /* when that was */
};

void vmc_kdump_track_init(struct vmc_kdump_track *t, uint64_t now_ns, unsigned deadline_ms,
			  unsigned stall_ms);

/*
 * vmc_kdump_track - one look at the new dump @d (NULL: none yet) at
 * @now_ns. LATE and STALLED come with the reason in @why, WRITING with the
 * size and rate so far.
 */
enum vmc_kdump_progress vmc_kdump_track(struct vmc_kdump_track *t, const Vmcheck__V1__CrashDump *d,
					uint64_t now_ns, struct vmc_why *why);

/*
 * vmc_kdump_track_due - how long a wait for news may last, from @now_ns,
 * without missing a verdict: once an incomplete vmcore was seen, stall_ms
 * after it last grew (when it is STALLED unless it grows); before, the
 * deadline (LATE) or stall_ms from now, whichever comes first (a dump seen
 * meanwhile could stall no sooner). Judged at that time with no news, @t
 * is LATE, STALLED, or (still before the deadline) WAITING.
 */
uint64_t vmc_kdump_track_due(const struct vmc_kdump_track *t, uint64_t now_ns);

/*
 * vmc_kdump_dump_ok - a dump found after the reboot: whole (a vmcore, no
 * *incomplete* file left), its header an ELF core or a makedumpfile dump
 * (as the agent read its first bytes), and not empty. @why says what is
 * wrong, or describes the dump when it holds.
 */
bool vmc_kdump_dump_ok(const Vmcheck__V1__CrashDump *d, struct vmc_why *why);

#endif
