/* SPDX-License-Identifier: MIT */
/*
 * Disk hotplug: qcow2 images made here with qemu-img (or, through libvirt,
 * volumes of a storage pool on the libvirt host), plugged as virtio-blk-pci with a serial on free root ports, each found in the guest
 * by serial, exact size and the PCI function behind its port. A usage probe
 * has the agent write and read back a random pattern on the raw device;
 * after the unplug the host finds that pattern in the image itself, so the
 * bytes really went through the whole stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-util.h"
#include "clock.h"
#include "escape.h"
#include "sha256.h"

#define CHECK "disk"
#define PATTERN_LEN 4096
#define N_OFFSETS 3
#define TOOL_TIMEOUT_MS 60000

struct disk {
	char id[16];
	char serial[21]; /* virtio-blk serials hold at most 20 bytes */
	char path[PATH_MAX];
	const struct vmc_hv_slot *slot;
	struct vmc_chk_disk want;
	uint8_t pattern[PATTERN_LEN];
	uint64_t offsets[N_OFFSETS];
	bool created, added, probed;
	bool pooled; /* the hypervisor's image (image_create), not a file of ours */
};

/*
 * run_tool - run @argv (found in PATH) to completion, stdout discarded
 * Returns 0 if it exited 0; otherwise a negative code with @err naming the
 * command, how it ended and the end of its stderr.
 */
static int run_tool(char *const argv[], struct vmc_error *err)
{
	char cmd[512] = "", out[1024];
	posix_spawn_file_actions_t fa;
	uint64_t deadline = vmc_mono_ns() + TOOL_TIMEOUT_MS * 1000000ull;
	size_t len = 0, cl = 0;
	bool timed_out = false;
	int pfd[2], status, r;
	pid_t pid;

	for (size_t i = 0; argv[i] && cl < sizeof(cmd); i++)
		cl += (size_t)snprintf(cmd + cl, sizeof(cmd) - cl, "%s%s", i ? " " : "", argv[i]);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return vmc_error_set(err, -errno, "%s: pipe: %m", cmd);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r) {
		close(pfd[0]);
		return vmc_error_set(err, -r, "%s: %s", cmd, strerror(r));
	}
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		uint64_t now = vmc_mono_ns();
		char buf[512];
		ssize_t n;

		if (now >= deadline ||
		    TEMP_FAILURE_RETRY(poll(&p, 1, (int)((deadline - now) / 1000000 + 1))) == 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		n = TEMP_FAILURE_RETRY(read(pfd[0], buf, sizeof(buf)));
		if (n <= 0)
			break;
		/* qemu-img says what went wrong in a line or two: the start is enough. */
		if (len + 1 < sizeof(out)) {
			size_t k = (size_t)n < sizeof(out) - 1 - len ? (size_t)n
								     : sizeof(out) - 1 - len;

			memcpy(out + len, buf, k);
			len += k;
		}
	}
	close(pfd[0]);
	if (TEMP_FAILURE_RETRY(waitpid(pid, &status, 0)) < 0)
		return vmc_error_set(err, -errno, "%s: waitpid: %m", cmd);
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r'))
		len--;
	out[len] = '\0';
	if (timed_out)
		return vmc_error_set(err, -ETIMEDOUT, "%s: still running after %u s, killed", cmd,
				     TOOL_TIMEOUT_MS / 1000);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return vmc_error_set(err, -EIO, "%s: exit status %d: %s", cmd, WEXITSTATUS(status),
				     len ? out : "(no message)");
	return vmc_error_set(err, -EIO, "%s: killed by signal %d: %s", cmd, WTERMSIG(status),
			     len ? out : "(no message)");
}

/* The virtual size in a qcow2 header (big-endian at byte 24): exactly what the guest sees. */
static int qcow2_size(const char *path, uint64_t *size, struct vmc_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t h[32];
	uint64_t v = 0;

	if (fd < 0)
		return vmc_error_set(err, -errno, "open %s: %m", path);
	if (TEMP_FAILURE_RETRY(pread(fd, h, sizeof(h), 0)) != (ssize_t)sizeof(h) ||
	    memcmp(h, "QFI\xfb", 4))
		return vmc_error_set(err, -EINVAL, "%s: not a qcow2 image", path);
	for (int i = 24; i < 32; i++)
		v = v << 8 | h[i];
	*size = v;
	return 0;
}

static int create_image(struct vmc_ctx *c, struct disk *d, struct vmc_error *err)
{
	const struct vmc_run_opts *o = c->opts;
	const struct vmc_hv_ops *ops = c->hv->ops;
	char size[24];
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", d->path, size, NULL };
	int r;

	if (ops->image_create) {
		char name[32], *path = NULL;

		snprintf(name, sizeof(name), "%s.qcow2", d->serial);
		r = ops->image_create(c->hv, name, o->disk_bytes, &path, &d->want.size, err);
		if (r < 0)
			return r;
		d->created = d->pooled = true;
		if (strlen(path) >= sizeof(d->path))
			r = vmc_error_set(err, -ENAMETOOLONG, "volume path %s too long", path);
		else
			strcpy(d->path, path);
		free(path);
	} else {
		snprintf(size, sizeof(size), "%" PRIu64, o->disk_bytes);
		r = run_tool(argv, err);
		if (r < 0)
			return r;
		d->created = true;
		r = qcow2_size(d->path, &d->want.size, err);
	}
	if (r == 0 && d->want.size < PATTERN_LEN)
		r = vmc_error_set(err, -EINVAL, "%s: %" PRIu64 " bytes, the probe needs %u",
				  d->path, d->want.size, PATTERN_LEN);
	return r;
}

static void ladder(struct vmc_step *s, const struct disk *d, bool gone)
{
	const char *pci = *d->want.pci ? d->want.pci : d->want.port;
	char kobj[48];

	snprintf(kobj, sizeof(kobj), "block serial=%s", d->serial);
	/* Before the function shows, the ladder starts from the port it should sit behind. */
	if (gone)
		vmc_step_ladder_gone(s, d->id, pci, kobj);
	else
		vmc_step_ladder(s, d->id, pci, kobj);
}

static int plug(struct vmc_ctx *c, struct disk *d)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_disk spec = { .id = d->id,
				    .path = d->path,
				    .format = "qcow2",
				    .serial = d->serial,
				    .slot = d->slot->id };
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "plug %s (serial %s) on %s", d->id, d->serial, d->slot->id);
	r = vmc_chk_slot_address(d->slot, &err);
	if (r == 0)
		r = hv->ops->disk_add(hv, &spec, &err);
	r = vmc_step_acted(s, r, &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	d->added = true;
	r = vmc_step_expect(s, vmc_chk_disk_up, &d->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, d, false);
	else if (r == 0)
		vmc_step_note(s, "%s at %s behind %s", VMC_Q(d->want.name), VMC_Q(d->want.pci),
			      d->slot->address);
	vmc_step_note(s, "image %s%s", d->path,
		      d->pooled ? " (a volume in the hypervisor's storage pool)" : "");
	return vmc_step_end(s, r, NULL);
}

/* Random bytes that also say which step wrote them, for whoever finds them on a disk. */
static int fill_pattern(struct disk *d)
{
	size_t got = 0;

	while (got < sizeof(d->pattern)) {
		ssize_t n = getrandom(d->pattern + got, sizeof(d->pattern) - got, 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		got += n > 0 ? (size_t)n : 0;
	}
	snprintf((char *)d->pattern, 64, "vmcheck disk probe %s serial %s ", d->id, d->serial);
	return 0;
}

/*
 * Every region written and read back with the pattern's digest, at the
 * offsets asked. Returns 0, or a negative code with @msg saying what differs.
 */
static int judge_probe(const struct disk *d, const Vmcheck__V1__ProbeResult *p, char *msg,
		       size_t size)
{
	char want[VMC_SHA256_HEX];

	vmc_sha256_hex(d->pattern, sizeof(d->pattern), want);
	if (p->n_regions != N_OFFSETS) {
		snprintf(msg, size, "probe on %s: %zu regions reported, want %d",
			 VMC_Q(d->want.name), p->n_regions, N_OFFSETS);
		return -EPROTO;
	}
	for (size_t i = 0; i < N_OFFSETS; i++) {
		const Vmcheck__V1__ProbeResult__Region *g = p->regions[i];

		if (g->offset != d->offsets[i] || g->length != PATTERN_LEN) {
			snprintf(msg, size,
				 "probe on %s: region %zu is %u bytes at %" PRIu64
				 ", want %u at %" PRIu64,
				 VMC_Q(d->want.name), i, g->length, g->offset, PATTERN_LEN,
				 d->offsets[i]);
			return -EPROTO;
		}
		if (strcmp(g->written_sha256, want) || strcmp(g->read_sha256, want)) {
			snprintf(msg, size,
				 "probe on %s at offset %" PRIu64
				 ": sha256 written %s, read back %s, want %s",
				 VMC_Q(d->want.name), g->offset, VMC_Q(g->written_sha256),
				 VMC_Q(g->read_sha256), want);
			return -EIO;
		}
	}
	return 0;
}

static int probe(struct vmc_ctx *c, struct disk *d)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe pr = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__DiskProbe dp = VMCHECK__V1__DISK_PROBE__INIT;
	Vmcheck__V1__Response *resp = NULL;
	struct vmc_step *s;
	char msg[1024] = "";
	int r;

	s = vmc_step_begin(c, CHECK, "use %s (%s)", d->id, VMC_Q(d->want.name));
	r = fill_pattern(d);
	if (r < 0)
		return vmc_step_end(s, r, "getrandom: %s", strerror(-r));
	d->offsets[0] = 0;
	d->offsets[1] = d->want.size / 2 / PATTERN_LEN * PATTERN_LEN;
	d->offsets[2] = d->want.size - PATTERN_LEN;
	dp.device = d->want.name;
	dp.pattern.data = d->pattern;
	dp.pattern.len = sizeof(d->pattern);
	dp.offsets = d->offsets;
	dp.n_offsets = N_OFFSETS;
	pr.kind_case = VMCHECK__V1__PROBE__KIND_DISK;
	pr.disk = &dp;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &pr;
	r = vmc_step_agent(s, &req, c->opts->deadline_ms, &resp);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	r = judge_probe(d, resp->probe, msg, sizeof(msg));
	vmc_agent_response_free(vmc_step_conn(s), resp);
	d->probed = r == 0;
	if (r < 0)
		vmc_step_usable(s, false, "%s", msg);
	return vmc_step_end(s, r, "%s", msg);
}

/*
 * The guest drops the disk before QEMU reports DEVICE_DELETED (~0.4 s on q35): wait in
 * that order, within the architecture's unplug deadline.
 */
static int unplug(struct vmc_ctx *c, struct disk *d)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned deadline = vmc_chk_unplug_ms(c);
	struct vmc_step *s;
	bool pending = false, shown;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (serial %s)", d->id, d->serial);
	shown = vmc_chk_shown(c, vmc_chk_disk_gone, &d->want);
	r = vmc_chk_del(s, hv->ops->disk_del(hv, d->id, &err), &err, &pending);
	if (r == 0)
		r = vmc_step_expect(s, vmc_chk_disk_gone, &d->want, deadline);
	if (r == -ETIMEDOUT)
		ladder(s, d, true);
	else if (r == 0)
		r = vmc_chk_removed(c, s, d->id, pending, deadline);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	d->added = false;
	r = hv->ops->disk_release(hv, d->id, &err);
	if (r < 0)
		r = vmc_step_end(s, r, "%s", err.msg ? err.msg : "disk_release failed");
	else
		r = vmc_step_end(s, vmc_chk_seen_go(s, 0, shown, d->id), NULL);
	vmc_error_clear(&err);
	return r;
}

/* The first byte where @got differs from @want (they do differ). */
static size_t first_diff(const uint8_t *got, const uint8_t *want, size_t n)
{
	size_t i = 0;

	while (i < n && got[i] == want[i])
		i++;
	return i;
}

/*
 * With the device gone QEMU has closed the image: convert it to raw and
 * read the pattern back at each offset the guest wrote to. A pooled image
 * is first downloaded from the hypervisor (it may be on another host).
 */
static int verify(struct vmc_ctx *c, struct disk *d)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char local[PATH_MAX + 32], raw[sizeof(local) + 8];
	char *argv[] = { "qemu-img", "convert", "-f", "qcow2", "-O", "raw", local, raw, NULL };
	uint8_t got[PATTERN_LEN];
	struct vmc_step *s;
	int fd, r = 0;

	s = vmc_step_begin(c, CHECK, "verify %s image", d->id);
	if (d->pooled) {
		snprintf(local, sizeof(local), "%s/%s.fetched.qcow2", c->opts->workdir, d->serial);
		r = c->hv->ops->image_fetch(c->hv, d->path, local, &err);
	} else {
		snprintf(local, sizeof(local), "%s", d->path);
	}
	snprintf(raw, sizeof(raw), "%s.raw", local);
	if (r == 0)
		r = run_tool(argv, &err);
	if (d->pooled)
		unlink(local);
	if (r < 0) {
		r = vmc_step_end(s, r, "%s", err.msg);
		vmc_error_clear(&err);
		unlink(raw);
		return r;
	}
	fd = open(raw, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = vmc_step_end(s, -errno, "open %s: %m", raw);
		unlink(raw);
		return r;
	}
	for (size_t i = 0; i < N_OFFSETS && r == 0; i++) {
		ssize_t n = TEMP_FAILURE_RETRY(pread(fd, got, sizeof(got), (off_t)d->offsets[i]));

		if (n != (ssize_t)sizeof(got))
			r = vmc_step_end(s, -EIO, "%s: short read at %" PRIu64 " (%zd)", raw,
					 d->offsets[i], n);
		else if (memcmp(got, d->pattern, sizeof(got)))
			r = vmc_step_end(
				s, -EIO,
				"%s at offset %" PRIu64
				": not the pattern the guest wrote (first difference at +%zu)",
				d->path, d->offsets[i], first_diff(got, d->pattern, sizeof(got)));
	}
	close(fd);
	unlink(raw);
	return r < 0 ? r : vmc_step_end(s, 0, NULL);
}

/* A pooled image that cannot be deleted is a failed step: it is left on the host. */
static int remove_image(struct vmc_ctx *c, struct disk *d)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char name[48];
	int r;

	if (!d->pooled) {
		unlink(d->path); /* ours, in the workdir that goes at the end anyway */
		return 0;
	}
	r = c->hv->ops->image_remove(c->hv, d->path, &err);
	if (r < 0) {
		snprintf(name, sizeof(name), "remove %s image", d->id);
		r = vmc_chk_fail(c, CHECK, name, r, &err);
	}
	vmc_error_clear(&err);
	return r;
}

/*
 * One cycle: every disk created, plugged and probed, then every disk
 * unplugged and its image checked; the images are removed at the end
 * whatever happened (unlinking one QEMU still holds is harmless).
 */
static int cycle(struct vmc_ctx *c, unsigned *seq)
{
	const struct vmc_run_opts *o = c->opts;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_slot *slots = NULL;
	struct disk *disks;
	size_t n_slots = 0;
	int r, rc = 0;

	r = vmc_chk_free_slots(c, CHECK, o->disks, "--disks", &slots, &n_slots);
	if (r <= 0)
		return r;
	disks = calloc(o->disks, sizeof(*disks));
	if (!disks) {
		vmc_hv_slots_free(slots, n_slots);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o->disks; i++) {
		struct disk *d = &disks[i];
		char name[48];

		++*seq;
		snprintf(d->id, sizeof(d->id), "disk%u", *seq);
		snprintf(d->serial, sizeof(d->serial), "vmcd%04x%u", vmc_chk_run_tag(), *seq);
		snprintf(d->path, sizeof(d->path), "%s/%s.qcow2", o->workdir, d->serial);
		d->slot = &slots[i];
		d->want.serial = d->serial;
		d->want.port = d->slot->address;
		r = create_image(c, d, &err);
		if (r < 0) {
			snprintf(name, sizeof(name), "create %s image", d->id);
			rc = rc ? rc : vmc_chk_fail(c, CHECK, name, r, &err);
			vmc_error_clear(&err);
			continue;
		}
		r = plug(c, d);
		if (r == 0)
			r = probe(c, d);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	for (unsigned i = 0; i < o->disks; i++) {
		if (!disks[i].added)
			continue;
		r = unplug(c, &disks[i]);
		if (r == 0 && disks[i].probed)
			r = verify(c, &disks[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	for (unsigned i = 0; i < o->disks; i++) {
		r = disks[i].created ? remove_image(c, &disks[i]) : 0;
		rc = rc ? rc : r;
	}
	free(disks);
	vmc_hv_slots_free(slots, n_slots);
	return rc;
}

int vmc_check_disk(struct vmc_ctx *c)
{
	if (!c->opts->disks) {
		vmc_step_skip(c, CHECK, "plug", "--disks 0");
		return 0;
	}
	return vmc_chk_repeat(c, cycle);
}
