/* SPDX-License-Identifier: MIT */
/*
 * The QEMU launcher and the QMP backend against a real QEMU and the
 * embedded guest; driven by tests/integration/test-launcher. Prints one
 * "ok ..." / "FAIL ..." line per check and exits 1 if any failed.
 *
 *   hv-smoke --kernel K --initrd I [--accel A] [--transcript FILE] [--qemu-arg ARG]...
 *                                              lifecycle + hotplug
 *   hv-smoke --kernel K --initrd I --kill9     QEMU killed mid-way: alive() says so
 *   hv-smoke --kernel K --initrd I --powerdown the guest powers off, QEMU exits
 *   hv-smoke --kernel K --initrd I --hold      launch, print "workdir DIR pid N", wait
 *                                              for a signal (the handler cleans up)
 *   hv-smoke --attach QMP [--transcript FILE]  print what attach mode discovers
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "clock.h"
#include "hv-qmp.h"
#include "qemu.h"

#define BOOT_MS 30000
#define EVENT_MS 10000

static unsigned failed;

/* One line per check: a multi-line message (QEMU's stderr) is joined with " | ". */
static bool _printf_(2, 3) check(bool ok, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s ", ok ? "ok" : "FAIL");
	for (const char *c = line; *c; c++)
		if (*c == '\n')
			fputs(" | ", stdout);
		else
			putchar(*c);
	printf("\n");
	fflush(stdout);
	failed += !ok;
	return ok;
}

static void write_transcript(struct vmc_hv *hv, const char *path)
{
	FILE *f = path ? fopen(path, "we") : NULL;

	if (f) {
		hv->ops->transcript(hv, 0, f);
		fclose(f);
	}
}

static const char *msg(const struct vmc_error *e)
{
	return e->msg ? e->msg : "";
}

static uint64_t in_ms(unsigned ms)
{
	return vmc_mono_ns() + ms * 1000000ull;
}

/* The QEMU whose command line names @workdir: the launcher does not say. */
static pid_t find_qemu(const char *workdir)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	while (d && !found && (de = readdir(d))) {
		char path[300], buf[8192];
		FILE *f;
		size_t n;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[n] = '\0';
		if (strstr(buf, "qemu-system") && strstr(buf, workdir))
			found = atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static bool gone(pid_t pid, const char *workdir)
{
	struct stat st;

	return kill(pid, 0) < 0 && errno == ESRCH && stat(workdir, &st) < 0 && errno == ENOENT;
}

static int hello(struct vmc_agent_conn *c, struct vmc_error *err)
{
	Vmcheck__V1__Response *resp;
	int r = vmc_agent_hello(c, BOOT_MS, &resp, err);

	if (r == 0)
		vmc_agent_response_free(c, resp);
	return r;
}

static bool wait_ev(struct vmc_hv *hv, const char *name, const char *dev, unsigned ms,
		    struct vmc_error *err)
{
	struct vmc_hv_event ev;
	bool ok = hv->ops->wait_event(hv, name, dev, in_ms(ms), &ev, err) == 0;

	if (ok) {
		ok = dev ? ev.device && !strcmp(ev.device, dev) : true;
		vmc_hv_event_free(&ev);
	}
	return ok;
}

#define OST_DEVICE_BUSY 0x82
#define OST_EJECT_IN_PROGRESS 0x84

/*
 * The failure status of the guest's _OST answers about @dev that QEMU
 * relayed (ACPI_DEVICE_OST {"info": {..., "status": N}}); 0 if none failed.
 */
static int ost_failure(struct vmc_hv *hv, const char *dev)
{
	struct vmc_hv_event ev;
	int refused = 0;

	while (hv->ops->wait_event(hv, VMC_EV_ACPI_DEVICE_OST, dev, vmc_mono_ns(), &ev, NULL) ==
	       0) {
		const char *p = ev.detail ? strstr(ev.detail, "\"status\":") : NULL;
		int st = p ? atoi(p + 9) : 0;

		if (st && st != OST_EJECT_IN_PROGRESS)
			refused = st;
		vmc_hv_event_free(&ev);
	}
	return refused;
}

/* The guest opened the agent port again (a new boot's agent). */
static bool wait_agent_port(struct vmc_hv *hv, struct vmc_error *err)
{
	uint64_t deadline = in_ms(BOOT_MS);
	struct vmc_hv_event ev;

	while (hv->ops->wait_event(hv, "VSERPORT_CHANGE", "agent-port", deadline, &ev, err) == 0) {
		bool open = strstr(ev.detail, "\"open\":true") != NULL;

		vmc_hv_event_free(&ev);
		if (open)
			return true;
	}
	return false;
}

static void lifecycle(struct vmc_hv *hv, struct vmc_agent_conn *agent)
{
	const struct vmc_hv_ops *o = hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;
	char says[160] = "";
	bool ok;

	ok = o->stop(hv, &err) == 0 && wait_ev(hv, VMC_EV_STOP, NULL, EVENT_MS, &err);
	check(ok, "stop: STOP event %s", ok ? "" : msg(&err));
	ok = o->cont(hv, &err) == 0 && wait_ev(hv, VMC_EV_RESUME, NULL, EVENT_MS, &err);
	check(ok, "cont: RESUME event %s", ok ? "" : msg(&err));
	/* q35 with disable_s3=0: QEMU offers suspend to RAM. */
	ok = o->suspend_support(hv, says, sizeof(says), &err) == 1;
	check(ok && strstr(says, "wakeup-suspend-support true"), "suspend_support: %s %s", says,
	      ok ? "" : msg(&err));

	o->flush_events(hv);
	ok = o->reset(hv, &err) == 0 && wait_ev(hv, VMC_EV_RESET, NULL, EVENT_MS, &err);
	check(ok, "reset: RESET event %s", ok ? "" : msg(&err));
	ok = wait_agent_port(hv, &err) && hello(agent, &err) == 0;
	check(ok, "agent answers Hello after the reset %s", ok ? "" : msg(&err));

	o->flush_events(hv);
	ok = o->reboot(hv, &err) == 0 && wait_ev(hv, VMC_EV_RESET, NULL, BOOT_MS, &err);
	check(ok, "reboot (ctrl-alt-delete): the guest reset itself %s", ok ? "" : msg(&err));
	ok = wait_agent_port(hv, &err) && hello(agent, &err) == 0;
	check(ok, "agent answers Hello after the reboot %s", ok ? "" : msg(&err));
	vmc_error_clear(&err);
}

static void nics(struct vmc_hv *hv, const struct vmc_hv_slot *slots)
{
	const struct vmc_hv_ops *o = hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_nic nic = { "nic1", "52:54:00:00:00:01", slots[0].id };
	struct vmc_hv_nic taken = { "nic2", "52:54:00:00:00:02", slots[0].id };
	struct vmc_hv_nic root = { "nic9", "52:54:00:00:00:09", "pcie.0" };
	char *where = NULL;
	bool ok;
	int r;

	/* Twice: the second nic_add reuses the netdev id the first one freed. */
	for (int round = 1; round <= 2; round++) {
		ok = o->nic_add(hv, &nic, &err) == 0;
		check(ok, "nic_add nic1 round %d %s", round, ok ? "" : msg(&err));
		r = o->device_present(hv, "nic1", &where, &err);
		check(r == 1 && where &&
			      !strcmp(where, "virtio-net-pci at 0000:01:00.0 behind pciroot1"),
		      "device_present nic1: %d %s", r, where ? where : msg(&err));
		free(where);
		where = NULL;
		if (round == 1) {
			r = o->nic_add(hv, &taken, &err);
			check(r == VMC_QMP_ECOMMAND &&
				      strstr(msg(&err), "device_add nic2 on pciroot1: PCI: slot 0 "
							"function 0 not available"),
			      "nic_add on a taken slot refused: %s", msg(&err));
		}
		ok = o->nic_del(hv, "nic1", &err) == 0 &&
		     wait_ev(hv, VMC_EV_DEVICE_DELETED, "nic1", EVENT_MS, &err);
		check(ok, "nic_del nic1 round %d: DEVICE_DELETED %s", round, ok ? "" : msg(&err));
		r = o->device_present(hv, "nic1", NULL, &err);
		check(r == 0, "nic1 gone from QOM: %d", r);
	}
	r = o->nic_add(hv, &root, &err);
	check(r == VMC_QMP_ECOMMAND &&
		      strstr(msg(&err),
			     "device_add nic9 on pcie.0: Bus 'pcie.0' does not support hotplugging"),
	      "nic_add on pcie.0 refused: %s", msg(&err));
	vmc_error_clear(&err);
}

static void disk(struct vmc_hv *hv, const struct vmc_hv_slot *slot, const char *workdir)
{
	const struct vmc_hv_ops *o = hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;
	char img[600], cmd[700];
	bool ok;

	snprintf(img, sizeof(img), "%s/disk1.qcow2", workdir);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 '%s' 64M", img);
	if (!check(system(cmd) == 0, "qemu-img create %s", img))
		return;
	struct vmc_hv_disk d = { "disk1", img, "qcow2", "vmc-disk1", slot->id };

	ok = o->disk_add(hv, &d, &err) == 0;
	check(ok, "disk_add disk1 on %s %s", slot->id, ok ? "" : msg(&err));
	ok = o->disk_del(hv, "disk1", &err) == 0 &&
	     wait_ev(hv, VMC_EV_DEVICE_DELETED, "disk1", EVENT_MS, &err);
	check(ok, "disk_del disk1: DEVICE_DELETED %s", ok ? "" : msg(&err));
	ok = o->disk_release(hv, "disk1", &err) == 0;
	check(ok, "disk_release disk1 %s", ok ? "" : msg(&err));
	unlink(img);
	vmc_error_clear(&err);
}

static void memory(struct vmc_hv *hv)
{
	const struct vmc_hv_ops *o = hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_dimm dimm = { "dimm1", 128ull << 20 };
	struct vmc_hv_mem m = { 0 };
	bool ok;
	int r;

	r = o->mem_info(hv, &m, &err);
	check(r == 0 && m.base_bytes == 512ull << 20 && m.plugged_bytes == 0 &&
		      m.max_bytes == 4096ull << 20 && m.slots == 4 && m.used_slots == 0,
	      "mem_info: base %llu max %llu slots %u/%u %s", (unsigned long long)m.base_bytes,
	      (unsigned long long)m.max_bytes, m.used_slots, m.slots, r ? msg(&err) : "");
	r = o->mem_add(hv, &dimm, &err);
	if (r == 0)
		r = o->mem_info(hv, &m, &err);
	check(r == 0 && m.plugged_bytes == 128ull << 20 && m.used_slots == 1,
	      "mem_add dimm1: plugged %llu, slots used %u %s", (unsigned long long)m.plugged_bytes,
	      m.used_slots, r ? msg(&err) : "");
	ok = o->mem_del(hv, "dimm1", &err) == 0 &&
	     wait_ev(hv, VMC_EV_DEVICE_DELETED, "dimm1", EVENT_MS, &err);
	/*
	 * The guest may answer the eject with _OST "device busy" (0x82): it
	 * could not offline the memory then, and ACPI lets the host ask
	 * again. Only that status, seen in QEMU's ACPI_DEVICE_OST, earns a
	 * second request, and the note says so; any other refusal fails.
	 */
	if (!ok) {
		int st = ost_failure(hv, "dimm1");

		vmc_error_clear(&err);
		if (st == OST_DEVICE_BUSY) {
			printf("note: mem_del dimm1: the guest answered _OST status 0x%x (device "
			       "busy); asking again\n",
			       st);
			ok = o->mem_del(hv, "dimm1", &err) == 0 &&
			     wait_ev(hv, VMC_EV_DEVICE_DELETED, "dimm1", EVENT_MS, &err);
		} else if (st > 0) {
			vmc_error_set(&err, -EBUSY, "the guest refused the eject: _OST status 0x%x",
				      st);
		}
	}
	check(ok, "mem_del dimm1: DEVICE_DELETED %s", ok ? "" : msg(&err));
	r = o->mem_release(hv, "dimm1", &err);
	if (r == 0)
		r = o->mem_info(hv, &m, &err);
	check(r == 0 && m.plugged_bytes == 0 && m.used_slots == 0,
	      "mem_release dimm1: plugged %llu %s", (unsigned long long)m.plugged_bytes,
	      r ? msg(&err) : "");
	vmc_error_clear(&err);
}

/*
 * vCPU unplug is last: QEMU 7.2 corrupts its heap on it (doc/facts.md,
 * "Defect 1: a vCPU unplug corrupts QEMU's heap").
 */
static void vcpu(struct vmc_hv *hv)
{
	const struct vmc_hv_ops *o = hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_cpu *cpus = NULL, *after = NULL;
	size_t n = 0, nafter = 0;
	bool ok;
	int r;

	r = o->cpus(hv, &cpus, &n, &err);
	check(r == 0 && n == 4 && cpus[0].qom_path && cpus[0].cpu_index == 0 && !cpus[1].qom_path &&
		      cpus[1].socket_id == 0 && cpus[1].core_id == 1 && cpus[1].thread_id == 0 &&
		      cpus[1].die_id == -1 && !strcmp(cpus[1].type, "qemu64-x86_64-cpu"),
	      "cpus: %zu positions, the first free at core %d %s", n, n > 1 ? cpus[1].core_id : -1,
	      r ? msg(&err) : "");
	if (n < 2)
		return;
	struct vmc_hv_vcpu c = { "cpu1", &cpus[1] };

	r = o->cpu_add(hv, &c, &err);
	if (r == 0)
		r = o->cpus(hv, &after, &nafter, &err);
	check(r == 0 && nafter == 4 && after[1].qom_path &&
		      !strcmp(after[1].qom_path, "/machine/peripheral/cpu1") &&
		      after[1].cpu_index == 1,
	      "cpu_add cpu1: %s, cpu index %d %s", nafter ? after[1].qom_path : "-",
	      nafter ? after[1].cpu_index : -1, r ? msg(&err) : "");
	/*
	 * An eject requested before the guest has handled the insertion (its
	 * _OST for the slot) is lost: no DEVICE_DELETED ever comes.
	 */
	ok = wait_ev(hv, VMC_EV_ACPI_DEVICE_OST, "cpu1", EVENT_MS, &err);
	check(ok, "cpu_add cpu1: the guest acknowledged it (ACPI_DEVICE_OST) %s",
	      ok ? "" : msg(&err));
	ok = o->cpu_del(hv, "cpu1", &err) == 0 &&
	     wait_ev(hv, VMC_EV_DEVICE_DELETED, "cpu1", EVENT_MS, &err);
	check(ok, "cpu_del cpu1: DEVICE_DELETED (path .../cpu1/lapic) %s", ok ? "" : msg(&err));

	/*
	 * After a vCPU unplug QEMU 7.2 dies on the next reset (SIGABRT from
	 * glibc's heap checks, or SIGSEGV: doc/facts.md, "Defect 1: a vCPU
	 * unplug corrupts QEMU's heap"). If it does, alive() must say how, and
	 * after which command.
	 */
	r = o->reset(hv, &err);
	if (r == 0 && wait_ev(hv, VMC_EV_RESET, NULL, EVENT_MS, &err) && o->alive(hv, &err) == 0) {
		check(true, "reset after a vCPU unplug: QEMU survived (defect 1 not hit)");
	} else {
		r = o->alive(hv, &err);
		check(r == -ESRCH && strstr(msg(&err), "QEMU exited on signal ") &&
			      strstr(msg(&err), "last QMP command: system_reset"),
		      "reset after a vCPU unplug: alive() reports the abort: %s", msg(&err));
	}
	vmc_hv_cpus_free(after, nafter);
	vmc_hv_cpus_free(cpus, n);
	vmc_error_clear(&err);
}

static void hotplug(struct vmc_hv *hv, const char *workdir)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_slot *slots = NULL;
	size_t n = 0;
	int r;

	r = hv->ops->free_slots(hv, &slots, &n, &err);
	check(r == 0 && n == 8 && !strcmp(slots[0].id, "pciroot1") &&
		      !strcmp(slots[7].id, "pciroot8") && !strcmp(slots[0].address, "0000:00:01.0"),
	      "free_slots: %zu, first %s at %s %s", n, n ? slots[0].id : "-",
	      n ? slots[0].address : "-", r ? msg(&err) : "");
	if (n >= 2) {
		nics(hv, slots);
		disk(hv, &slots[1], workdir);
	}
	memory(hv);
	vcpu(hv);
	vmc_hv_slots_free(slots, n);
	vmc_error_clear(&err);
}

static int run_full(const struct vmc_qemu_config *cfg, const char *transcript)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *agent = NULL;
	struct vmc_hv *hv;
	char workdir[512];
	pid_t pid;
	int r;

	r = vmc_qemu_launch(cfg, &hv, &err);
	if (!check(r == 0, "launch %s", msg(&err)))
		return 1;
	snprintf(workdir, sizeof(workdir), "%s", vmc_qemu_workdir(hv));
	pid = find_qemu(workdir);
	check(pid > 0 && hv->ops->alive(hv, &err) == 0, "QEMU %d running in %s", pid, workdir);
	check(!strncmp(hv->ops->agent_spec(hv), "vserial:", 8), "agent spec %s",
	      hv->ops->agent_spec(hv));
	r = vmc_agent_connect(hv->ops->agent_spec(hv), &agent, &err);
	check(r == 0 && hello(agent, &err) == 0, "agent answers Hello over %s %s",
	      hv->ops->agent_spec(hv), msg(&err));
	if (agent) {
		lifecycle(hv, agent);
		hotplug(hv, workdir);
	}
	write_transcript(hv, transcript);
	vmc_agent_close(agent);
	hv->ops->free(hv);
	check(gone(pid, workdir), "free: QEMU %d reaped, %s removed", pid, workdir);
	vmc_error_clear(&err);
	return failed ? 1 : 0;
}

static int run_kill9(const struct vmc_qemu_config *cfg)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv;
	char workdir[512];
	pid_t pid;
	int r;

	r = vmc_qemu_launch(cfg, &hv, &err);
	if (!check(r == 0, "launch %s", msg(&err)))
		return 1;
	snprintf(workdir, sizeof(workdir), "%s", vmc_qemu_workdir(hv));
	pid = find_qemu(workdir);
	hv->ops->stop(hv, &err);
	check(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 QEMU %d", pid);
	r = hv->ops->reset(hv, &err);
	check(r == -ESRCH && strstr(msg(&err), "system_reset: QEMU exited on signal 9 (Killed); "
					       "last QMP command: system_reset"),
	      "an operation after the kill fails with how QEMU ended: %s", msg(&err));
	r = hv->ops->alive(hv, &err);
	check(r == -ESRCH && strstr(msg(&err), "QEMU exited on signal 9 (Killed)"),
	      "alive(): %d %s", r, msg(&err));
	hv->ops->free(hv);
	check(gone(pid, workdir), "free: QEMU %d reaped, %s removed", pid, workdir);
	vmc_error_clear(&err);
	return failed ? 1 : 0;
}

/* The ACPI power button: the guest shuts down, QEMU exits by itself. */
static int run_powerdown(const struct vmc_qemu_config *cfg)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *agent = NULL;
	struct vmc_hv *hv;
	char workdir[512];
	bool ok;
	int r;

	r = vmc_qemu_launch(cfg, &hv, &err);
	if (!check(r == 0, "launch %s", msg(&err)))
		return 1;
	snprintf(workdir, sizeof(workdir), "%s", vmc_qemu_workdir(hv));
	/* acpid runs before the agent starts: once it answers, the button works. */
	ok = vmc_agent_connect(hv->ops->agent_spec(hv), &agent, &err) == 0 &&
	     hello(agent, &err) == 0;
	check(ok, "agent up %s", ok ? "" : msg(&err));
	ok = hv->ops->powerdown(hv, &err) == 0 &&
	     wait_ev(hv, VMC_EV_POWERDOWN, NULL, EVENT_MS, &err) &&
	     wait_ev(hv, VMC_EV_SHUTDOWN, NULL, BOOT_MS, &err);
	check(ok, "powerdown: POWERDOWN, then the guest's SHUTDOWN %s", ok ? "" : msg(&err));
	r = hv->ops->alive(hv, &err);
	for (uint64_t end = in_ms(EVENT_MS); r == 0 && vmc_mono_ns() < end;
	     r = hv->ops->alive(hv, &err))
		usleep(20000);
	check(r == -ESRCH && strstr(msg(&err), "QEMU exited with status 0"),
	      "alive() after the shutdown: %s", msg(&err));
	vmc_agent_close(agent);
	hv->ops->free(hv);
	check(access(workdir, F_OK) < 0, "free: %s removed", workdir);
	vmc_error_clear(&err);
	return failed ? 1 : 0;
}

static int run_hold(const struct vmc_qemu_config *cfg)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv;

	if (vmc_qemu_launch(cfg, &hv, &err) < 0) {
		check(false, "launch %s", msg(&err));
		return 1;
	}
	printf("workdir %s pid %d\n", vmc_qemu_workdir(hv), find_qemu(vmc_qemu_workdir(hv)));
	fflush(stdout);
	for (;;)
		pause();
}

static int run_attach(const char *qmp, const char *transcript)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_slot *slots = NULL;
	struct vmc_hv_mem m;
	struct vmc_hv *hv;
	size_t n = 0;

	if (!check(vmc_qmp_attach(qmp, NULL, &hv, &err) == 0, "attach %s %s", qmp, msg(&err)))
		return 1;
	if (check(hv->ops->free_slots(hv, &slots, &n, &err) == 0, "free_slots %s", msg(&err))) {
		printf("slots");
		for (size_t i = 0; i < n; i++)
			printf(" %s@%s", slots[i].id, slots[i].address);
		printf("\n");
	}
	if (check(hv->ops->mem_info(hv, &m, &err) == 0, "mem_info %s", msg(&err)))
		printf("mem base %llu max %llu slots %u\n", (unsigned long long)m.base_bytes,
		       (unsigned long long)m.max_bytes, m.slots);
	vmc_hv_slots_free(slots, n);
	write_transcript(hv, transcript);
	hv->ops->free(hv);
	vmc_error_clear(&err);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "accel", required_argument, NULL, 'a' },
		{ "transcript", required_argument, NULL, 't' },
		{ "kill9", no_argument, NULL, '9' },
		{ "hold", no_argument, NULL, 'h' },
		{ "powerdown", no_argument, NULL, 'p' },
		{ "attach", required_argument, NULL, 'A' },
		{ "qemu-arg", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmc_qemu_config cfg = { 0 };
	const char *transcript = NULL, *attach = NULL, *extra[16] = { NULL };
	size_t n_extra = 0;
	int mode = 0, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'a':
			cfg.accel = optarg;
			break;
		case 't':
			transcript = optarg;
			break;
		case 'A':
			attach = optarg;
			break;
		case 'q':
			if (n_extra + 1 < ARRAY_SIZE(extra))
				extra[n_extra++] = optarg;
			break;
		case '9':
		case 'h':
		case 'p':
			mode = c;
			break;
		default:
			return 2;
		}
	}
	cfg.extra_args = extra;
	if (attach)
		return run_attach(attach, transcript);
	if (mode == '9')
		return run_kill9(&cfg);
	if (mode == 'h')
		return run_hold(&cfg);
	if (mode == 'p')
		return run_powerdown(&cfg);
	return run_full(&cfg, transcript);
}
