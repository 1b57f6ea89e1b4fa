/* SPDX-License-Identifier: MIT */
/*
 * A QEMU process this program started, and the guarantee that neither it
 * nor its sockets nor its files outlive us.
 *
 * The process is its own process group, dies with us (PR_SET_PDEATHSIG),
 * and is killed by SIGINT/SIGTERM/SIGHUP handlers installed at the first
 * spawn (they kill every QEMU spawned here, remove its sockets and
 * re-raise). Its files sit in one workdir under fixed names.
 */
#ifndef VMC_QEMU_PROC_H
#define VMC_QEMU_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct vmc_qmp;

/* The files of a QEMU process in its workdir. */
enum vmc_qemu_file {
	VMC_QEMU_FILE_QMP,     /* qmp.sock */
	VMC_QEMU_FILE_AGENT,   /* agent.sock */
	VMC_QEMU_FILE_CONSOLE, /* console.log */
	VMC_QEMU_FILE_STDERR,  /* qemu.stderr */
	VMC_QEMU_FILE_CRASH,   /* crash-disk.img */
	VMC_QEMU_FILE_ROOT,    /* root-overlay.qcow2 */
	VMC_QEMU_FILE_VARS,    /* efi-vars.fd: the UEFI variable store of an aarch64 guest */
	VMC_QEMU_FILE_N,
};

struct vmc_qemu_proc;

/*
 * vmc_qemu_proc_new - a process not started yet, its files in @workdir
 * @own_dir: remove @workdir with the files (when empty by then)
 * @keep: keep the logs and the workdir (the sockets always go)
 * Returns NULL when out of memory.
 */
struct vmc_qemu_proc *vmc_qemu_proc_new(const char *workdir, bool own_dir, bool keep);

/*
 * Change what vmc_qemu_proc_stop() and vmc_qemu_proc_discard() remove
 * besides the sockets (the arguments of vmc_qemu_proc_new()).
 */
void vmc_qemu_proc_set_cleanup(struct vmc_qemu_proc *p, bool own_dir, bool keep);

/* The path of file @f of @p ("WORKDIR/qmp.sock"). */
const char *vmc_qemu_proc_file(const struct vmc_qemu_proc *p, enum vmc_qemu_file f);

/* The name of file @f in any workdir ("qmp.sock"). */
const char *vmc_qemu_proc_file_name(enum vmc_qemu_file f);

/*
 * vmc_qemu_proc_spawn - fork and exec @argv (argv[0] a path) as @p
 * @qmp_fd, @agent_fd: listening sockets QEMU inherits (the others do not)
 * QEMU's stdout and stderr go to the file VMC_QEMU_FILE_STDERR, its
 * environment is ours plus LIBC_FATAL_STDERR_=1. Returns 0, or a negative
 * code with @err set; then nothing runs.
 */
int vmc_qemu_proc_spawn(struct vmc_qemu_proc *p, char **argv, int qmp_fd, int agent_fd,
			struct vmc_error *err);

/*
 * vmc_qemu_proc_status - has the process ended?
 * @wait_ms: how long to wait for it to end (0: just look)
 * Returns 0 if running; -ESRCH with @err = how it ended ("QEMU exited on
 * signal 6 (Aborted)"), "; last QMP command: @last_cmd" when given, and the
 * last lines of its stderr.
 */
int vmc_qemu_proc_status(struct vmc_qemu_proc *p, int wait_ms, const char *last_cmd,
			 struct vmc_error *err);

/*
 * vmc_qemu_proc_stop - end the process (QMP quit over @q if non-NULL, then
 * SIGTERM, then SIGKILL), reap it, remove its sockets and files
 * (as vmc_qemu_proc_new() said) and free @p. NULL is a no-op.
 */
void vmc_qemu_proc_stop(struct vmc_qemu_proc *p, struct vmc_qmp *q);

/*
 * vmc_qemu_proc_discard - remove the sockets and files of @p, which never
 * started or is reaped already (vmc_qemu_proc_kill()), and free it.
 */
void vmc_qemu_proc_discard(struct vmc_qemu_proc *p);

/*
 * vmc_qemu_proc_ended - how the process ended, waiting up to @wait_ms for
 * it: 0 if it exited with status 0; -EIO with @err saying how otherwise (a
 * signal, another status, its stderr's end); -EBUSY if it has not exited.
 */
int vmc_qemu_proc_ended(struct vmc_qemu_proc *p, int wait_ms, const char *last_cmd,
			struct vmc_error *err);
/* The serial console's log file (the launcher's chardev file). */
const char *vmc_qemu_proc_console(const struct vmc_qemu_proc *p);

/* The process is gone (destroy): reap it, keep @p for status reports. */
void vmc_qemu_proc_kill(struct vmc_qemu_proc *p, struct vmc_qmp *q);

const char *vmc_qemu_proc_workdir(const struct vmc_qemu_proc *p);
pid_t vmc_qemu_proc_pid(const struct vmc_qemu_proc *p);
uint64_t vmc_qemu_proc_started_ns(const struct vmc_qemu_proc *p);

#endif
