/* SPDX-License-Identifier: MIT */
/*
 * The QMP client against exchanges recorded from QEMU 7.2, replayed by a
 * fake server thread (qmp-replay.h): replies, errors, events arriving
 * before a reply, replies split across writes or cut short, a late reply
 * after a timeout, malformed JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "hv-qmp-client.h"
#include "qmp-replay.h"

static struct replay rp;
static struct vmc_error err;

/* The error message, "" when none was set (a failing test must not crash). */
static const char *msg(void)
{
	return err.msg ? err.msg : "";
}

/* Replay @name and negotiate; the client is returned connected. */
static struct vmc_qmp *start(const char *name)
{
	struct vmc_qmp *q = NULL;
	int fd;

	vmc_error_clear(&err);
	replay_start(&rp, name, &fd);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), 0);
	return q;
}

static void finish(struct vmc_qmp *q)
{
	vmc_qmp_close(q);
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	vmc_error_clear(&err);
}

static bool is_open(const struct vmc_qmp_event *ev, void *ctx)
{
	json_object *v;

	return json_object_object_get_ex(ev->data, "open", &v) &&
	       json_object_get_boolean(v) == *(bool *)ctx;
}

static unsigned hook_calls;

static void count_events(const struct vmc_qmp_event *ev, void *ctx)
{
	hook_calls++;
	CU_ASSERT_PTR_EQUAL(ctx, &hook_calls);
}

static void events_before_reply_are_queued(void)
{
	struct vmc_qmp *q = start("events-before-reply");
	struct vmc_qmp_event ev;
	bool want_open = false;
	char *text = NULL;
	size_t len;
	FILE *f;

	hook_calls = 0;
	vmc_qmp_on_event(q, count_events, &hook_calls);
	/* STOP (and an earlier VSERPORT_CHANGE) come before stop's reply. */
	CU_ASSERT_EQUAL(vmc_qmp_command(q, "stop", NULL, 2000, NULL, &err), 0);
	CU_ASSERT_TRUE(vmc_qmp_has_event(q, "STOP", NULL, NULL));
	CU_ASSERT_TRUE(vmc_qmp_has_event(q, "VSERPORT_CHANGE", NULL, NULL));
	CU_ASSERT_FALSE(vmc_qmp_has_event(q, "RESUME", NULL, NULL));
	CU_ASSERT_EQUAL(vmc_qmp_command(q, "cont", NULL, 2000, NULL, &err), 0);
	CU_ASSERT_EQUAL(vmc_qmp_command(q, "system_reset", NULL, 2000, NULL, &err), 0);
	CU_ASSERT_STRING_EQUAL(vmc_qmp_last_command(q), "system_reset");

	/* Taken in order; the ones before stay queued. */
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_wait_event(q, "RESET", NULL, NULL,
						 vmc_mono_ns() + 2000000000ull, &ev, &err),
			      0);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(ev.data, "reason")),
			       "host-qmp-system-reset");
	CU_ASSERT_EQUAL(ev.qemu_us, 1795303623004193ll);
	vmc_qmp_event_free(&ev);
	/* The guest's own RESET and the port closing arrive after the reply. */
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_wait_event(q, "VSERPORT_CHANGE", is_open, &want_open,
						 vmc_mono_ns() + 2000000000ull, &ev, &err),
			      0);
	vmc_qmp_event_free(&ev);
	/* The first open (queued before stop's reply), then the new boot's. */
	want_open = true;
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_wait_event(q, "VSERPORT_CHANGE", is_open, &want_open,
						 vmc_mono_ns() + 2000000000ull, &ev, &err),
			      0);
	CU_ASSERT_EQUAL(ev.qemu_us, 1795303622980968ll);
	vmc_qmp_event_free(&ev);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_wait_event(q, "VSERPORT_CHANGE", is_open, &want_open,
						 vmc_mono_ns() + 2000000000ull, &ev, &err),
			      0);
	CU_ASSERT_EQUAL(ev.qemu_us, 1795303632337309ll);
	vmc_qmp_event_free(&ev);
	CU_ASSERT_TRUE(vmc_qmp_has_event(q, "STOP", NULL, NULL));
	CU_ASSERT_TRUE(vmc_qmp_has_event(q, "RESET", NULL, NULL));
	CU_ASSERT_EQUAL(hook_calls, 7);

	f = open_memstream(&text, &len);
	vmc_qmp_transcript_since(q, 0, f);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " -> {\"execute\":\"stop\",\"id\":\"vmc-2\"}\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " <- {\"timestamp\": {\"seconds\": 1795303622, "
					    "\"microseconds\": 996331}, \"event\": \"STOP\"}\n"));
	free(text);

	vmc_qmp_flush_events(q);
	CU_ASSERT_FALSE(vmc_qmp_has_event(q, "STOP", NULL, NULL));
	CU_ASSERT_EQUAL(vmc_qmp_wait_event(q, "SHUTDOWN", NULL, NULL, vmc_mono_ns() + 50000000ull,
					   &ev, &err),
			-ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(msg(), "qmp fake: no SHUTDOWN event in time");
	finish(q);
}

static void errors_carry_qemu_words(void)
{
	struct vmc_qmp *q = start("device-add-errors");
	int r;

	CU_ASSERT_EQUAL(vmc_qmp_commandf(q, NULL, &err, 2000, "netdev_add",
					 "{\"type\":\"user\",\"id\":\"%s-net\"}", "nic2"),
			0);
	r = vmc_qmp_commandf(q, NULL, &err, 2000, "device_add",
			     "{\"driver\":\"virtio-net-pci\",\"id\":\"nic2\",\"netdev\":\"nic2-net\","
			     "\"mac\":\"52:54:00:00:00:02\",\"bus\":\"pciroot1\",\"addr\":\"0\"}");
	CU_ASSERT_EQUAL(r, VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(msg(),
			       "device_add: GenericError: PCI: slot 0 function 0 not "
			       "available for virtio-net-pci, in use by virtio-net-pci,id=nic1");
	CU_ASSERT_STRING_EQUAL(vmc_qmp_error_class(q), "GenericError");
	CU_ASSERT_EQUAL(vmc_qmp_commandf(q, NULL, &err, 2000, "netdev_del",
					 "{\"id\":\"nic2-net\"}"),
			0);
	r = vmc_qmp_commandf(q, NULL, &err, 2000, "device_add",
			     "{\"driver\":\"virtio-net-pci\",\"id\":\"nic9\",\"netdev\":\"nic9-net\","
			     "\"mac\":\"52:54:00:00:00:09\",\"bus\":\"pcie.0\",\"addr\":\"0\"}");
	CU_ASSERT_EQUAL(r, VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(vmc_qmp_error_desc(q), "Bus 'pcie.0' does not support hotplugging");
	r = vmc_qmp_commandf(q, NULL, &err, 2000, "device_add",
			     "{\"driver\":\"virtio-net-pci\",\"id\":\"nic1\",\"netdev\":\"nic1-net\","
			     "\"mac\":\"52:54:00:12:34:01\",\"bus\":\"pciroot2\"}");
	CU_ASSERT_EQUAL(r, VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(vmc_qmp_error_desc(q), "Duplicate device ID 'nic1'");
	r = vmc_qmp_commandf(q, NULL, &err, 2000, "device_add",
			     "{\"driver\":\"virtio-net-pci\",\"id\":\"nic3\",\"netdev\":\"n0\","
			     "\"bus\":\"pciroot3\",\"addr\":\"0\"}");
	CU_ASSERT_STRING_EQUAL(msg(), "device_add: GenericError: Bus 'pciroot3' does not support "
				      "hotplugging");
	r = vmc_qmp_commandf(q, NULL, &err, 2000, "qom-get",
			     "{\"path\":\"/machine/peripheral/%s\",\"property\":\"type\"}", "nic1");
	CU_ASSERT_EQUAL(r, VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(vmc_qmp_error_class(q), "DeviceNotFound");
	finish(q);
}

static void bad_command_arguments_are_refused_locally(void)
{
	struct vmc_qmp *q = start("gone");

	CU_ASSERT_EQUAL(vmc_qmp_commandf(q, NULL, &err, 2000, "device_del", "{\"id\":%s}", "x"),
			-EINVAL);
	CU_ASSERT_STRING_EQUAL(msg(), "device_del: bad arguments (not JSON): {\"id\":x}");
	finish(q);
}

static void split_reply_is_reassembled(void)
{
	struct vmc_qmp *q = start("split-reply");
	json_object *ret = NULL, *devs;

	CU_ASSERT_EQUAL_FATAL(vmc_qmp_command(q, "query-pci", NULL, 5000, &ret, &err), 0);
	CU_ASSERT_EQUAL_FATAL(json_object_array_length(ret), 1);
	devs = json_object_object_get(json_object_array_get_idx(ret, 0), "devices");
	CU_ASSERT_EQUAL(json_object_array_length(devs), 14);
	json_object_put(ret);
	finish(q);
}

static void closed_mid_reply_is_epipe(void)
{
	struct vmc_qmp *q = start("closed-mid-reply");
	json_object *ret = NULL;

	CU_ASSERT_EQUAL(vmc_qmp_command(q, "query-pci", NULL, 5000, &ret, &err), -EPIPE);
	CU_ASSERT_PTR_NULL(ret);
	CU_ASSERT_STRING_EQUAL(msg(), "waiting for the reply to query-pci: qmp fake: QEMU closed "
				      "the monitor (exited?)");
	/* Gone stays gone. */
	CU_ASSERT_EQUAL(vmc_qmp_pump(q, &err), -EPIPE);
	finish(q);
}

static void command_after_close_is_epipe(void)
{
	struct vmc_qmp *q = start("gone");

	/* Once the fake has closed, sending or reading fails; either is EPIPE. */
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	CU_ASSERT_EQUAL(vmc_qmp_command(q, "query-status", NULL, 2000, NULL, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg(), "QEMU closed the monitor"));
	vmc_qmp_close(q);
	vmc_error_clear(&err);
}

static void late_reply_after_timeout_is_dropped(void)
{
	struct vmc_qmp *q = start("timeout");
	json_object *ret = NULL;

	CU_ASSERT_EQUAL(vmc_qmp_command(q, "query-memory-size-summary", NULL, 100, &ret, &err),
			-ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(msg(), "qmp fake: no reply to query-memory-size-summary in time");
	/* The late reply to the first (plugged 0) must not answer the second. */
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_command(q, "query-memory-size-summary", NULL, 2000, &ret,
					      &err),
			      0);
	CU_ASSERT_EQUAL(json_object_get_int64(json_object_object_get(ret, "plugged-memory")),
			134217728);
	json_object_put(ret);
	finish(q);
}

static void malformed_json_is_eproto(void)
{
	struct vmc_qmp *q = start("malformed");

	CU_ASSERT_EQUAL(vmc_qmp_command(q, "query-memory-size-summary", NULL, 2000, NULL, &err),
			-EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg(), "qmp fake: malformed JSON from QEMU: "));
	finish(q);
}

static void not_qmp_is_eproto(void)
{
	struct vmc_qmp *q = NULL;
	int fd;

	replay_start(&rp, "not-qmp", &fd);
	CU_ASSERT_EQUAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), -EPROTO);
	CU_ASSERT_PTR_NULL(q);
	CU_ASSERT_STRING_EQUAL(msg(), "qmp fake: no QMP greeting (is this a QMP socket?)");
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	vmc_error_clear(&err);
}

VMC_SUITE(qmp, NULL, NULL, VMC_TEST(events_before_reply_are_queued),
	  VMC_TEST(errors_carry_qemu_words), VMC_TEST(bad_command_arguments_are_refused_locally),
	  VMC_TEST(split_reply_is_reassembled), VMC_TEST(closed_mid_reply_is_epipe),
	  VMC_TEST(command_after_close_is_epipe), VMC_TEST(late_reply_after_timeout_is_dropped),
	  VMC_TEST(malformed_json_is_eproto), VMC_TEST(not_qmp_is_eproto))
