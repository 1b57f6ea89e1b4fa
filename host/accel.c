/* SPDX-License-Identifier: MIT */
/*
 * The KVM probe behind --accel auto and its cache: a boot of the guest
 * under KVM decides, not the presence of /dev/kvm.
 */
#include "accel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "clock.h"
#include "hv-qmp-client.h"
#include "qemu-proc.h"

static char foreign_why[160]; /* vmc_accel_foreign()'s reason */
static char probe_accel[8];   /* "kvm" or "tcg" once decided in this process */
static char probe_why[512];
static bool probe_pending_write; /* decided by a probe, not yet cached */

static void probe_cache_path(char *buf, size_t size)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (rt && *rt)
		snprintf(buf, size, "%s/vmcheck-kvm-probe", rt);
	else
		snprintf(buf, size, "/tmp/vmcheck-kvm-probe-%u", (unsigned)getuid());
}

/* What the verdict depends on: the host kernel and the QEMU binary. */
static void probe_key(const char *qemu, char *buf, size_t size)
{
	struct utsname u;
	struct stat st;

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	if (stat(qemu, &st) < 0)
		memset(&st, 0, sizeof(st));
	snprintf(buf, size, "linux %s; %s %lld %lld", u.release, qemu, (long long)st.st_size,
		 (long long)st.st_mtime);
}

/* Cache format: one line "KEY\tACCEL\tWHY". Ours only (uid), no symlinks. */
static bool probe_read_cache(const char *qemu)
{
	char path[512], key[512], buf[2048], *tab1, *tab2;
	_cleanup_close_ int fd = -1;
	struct stat st;
	ssize_t n;

	probe_cache_path(path, sizeof(path));
	probe_key(qemu, key, sizeof(key));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != getuid())
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	tab1 = strchr(buf, '\t');
	tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
	if (!tab2)
		return false;
	*tab1++ = *tab2++ = '\0';
	if (strcmp(buf, key) || (strcmp(tab1, "kvm") && strcmp(tab1, "tcg")))
		return false;
	snprintf(probe_accel, sizeof(probe_accel), "%s", tab1);
	snprintf(probe_why, sizeof(probe_why), "%.280s (cached in %.200s)", tab2, path);
	return true;
}

static void probe_write_cache(const char *qemu)
{
	char path[512], key[512];
	int fd;

	probe_cache_path(path, sizeof(path));
	probe_key(qemu, key, sizeof(key));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* no cache: the next run probes again */
	dprintf(fd, "%s\t%s\t%s\n", key, probe_accel, probe_why);
	close(fd);
}

void vmc_accel_commit(const char *qemu)
{
	if (probe_pending_write)
		probe_write_cache(qemu);
	probe_pending_write = false;
}

static bool match_open(const struct vmc_qmp_event *ev, void *ctx)
{
	json_object *open;

	return json_object_object_get_ex(ev->data, "open", &open) && json_object_get_boolean(open);
}

static bool console_reached_userspace(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[65536];
	ssize_t n;

	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "Run /init as init process") != NULL;
}

/*
 * Boot the guest under KVM until its agent port opens. Returns 1 with the
 * VM kept (KVM works), 0 when TCG it is (probe_why says why).
 */
static int probe_kvm(const struct vmc_accel_boot *b, struct vmc_qemu_proc **out_p,
		     struct vmc_qmp **out_q)
{
	struct vmc_error e = VMC_ERROR_INIT;
	struct vmc_qmp_event ev;
	struct vmc_qemu_proc *p;
	struct vmc_qmp *q;
	uint64_t t0 = vmc_mono_ns();
	int r;

	r = b->start(b->ctx, "kvm", &p, &q, &e);
	if (r < 0) {
		snprintf(probe_why, sizeof(probe_why), "%.*s", (int)strcspn(e.msg, "\n"), e.msg);
		vmc_error_clear(&e);
		return 0;
	}
	r = vmc_qmp_wait_event(q, "VSERPORT_CHANGE", match_open, NULL,
			       t0 + VMC_QEMU_KVM_PROBE_MS * 1000000ull, &ev, &e);
	vmc_error_clear(&e);
	if (r == 0) {
		vmc_qmp_event_free(&ev);
		snprintf(probe_why, sizeof(probe_why),
			 "the guest's agent came up under KVM in %.1f s",
			 (double)(vmc_mono_ns() - t0) / 1e9);
	} else if (console_reached_userspace(vmc_qemu_proc_console(p))) {
		snprintf(probe_why, sizeof(probe_why),
			 "the guest reached userspace under KVM (its agent port did not open)");
	} else {
		snprintf(probe_why, sizeof(probe_why),
			 "under KVM the guest did not bring its agent up within %d s",
			 VMC_QEMU_KVM_PROBE_MS / 1000);
		/* Keep the workdir for the TCG run; drop this run's files. */
		vmc_qemu_proc_set_cleanup(p, false, false);
		vmc_qemu_proc_stop(p, q);
		vmc_qmp_close(q);
		return 0;
	}
	*out_p = p;
	*out_q = q;
	return 1;
}

const char *vmc_accel_foreign(const struct vmc_arch *arch, const char **why)
{
	struct utsname u;

	if (!arch)
		arch = &vmc_arch_x86_64;
	if (uname(&u) < 0)
		snprintf(u.machine, sizeof(u.machine), "unknown");
	if (!strcmp(u.machine, arch->name))
		return NULL;
	snprintf(foreign_why, sizeof(foreign_why),
		 "an %s guest on this %.64s host: KVM runs only the host's own architecture",
		 arch->name, u.machine);
	if (why)
		*why = foreign_why;
	return "tcg";
}

const char *vmc_accel_choose(const struct vmc_accel_boot *b, struct vmc_qemu_proc **p,
			     struct vmc_qmp **q, const char **why)
{
	static bool said, said_foreign;
	const char *foreign_reason;

	if (vmc_accel_foreign(b->arch, &foreign_reason)) {
		if (!said_foreign)
			fprintf(stderr, "vmcheck: accelerator tcg: %s\n", foreign_reason);
		said_foreign = true;
		if (why)
			*why = foreign_reason;
		return "tcg";
	}

	if (!*probe_accel && !probe_read_cache(b->qemu)) {
		if (access("/dev/kvm", R_OK | W_OK)) {
			snprintf(probe_why, sizeof(probe_why), "/dev/kvm: %s", strerror(errno));
			snprintf(probe_accel, sizeof(probe_accel), "tcg");
		} else {
			snprintf(probe_accel, sizeof(probe_accel), "%s",
				 probe_kvm(b, p, q) ? "kvm" : "tcg");
			probe_pending_write = true;
		}
	}
	if (!said)
		fprintf(stderr, "vmcheck: accelerator %s: %s\n", probe_accel, probe_why);
	said = true;
	if (why)
		*why = probe_why;
	return probe_accel;
}

const char *vmc_accel_decided(const char **why)
{
	*why = probe_why;
	return *probe_accel ? probe_accel : NULL;
}

const char *vmc_accel_fallback(const char *reason, const char **why)
{
	if (!*probe_accel) {
		snprintf(probe_why, sizeof(probe_why), "no KVM probe possible: %s", reason);
		snprintf(probe_accel, sizeof(probe_accel), "tcg");
	}
	*why = probe_why;
	return probe_accel;
}
