/* test_ha.c - ha/'s effects: signed words (slots and beats), the arming
 * config, the statefile, the sim watchdog (a real process killing real
 * processes), and three monitors in this process forming a liveset over
 * loopback UDP and a statefile in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ha.h"
#include "util.h"
#include "xerr.h"

static const unsigned char KEY[HA_KEY_LEN] = "0123456789abcdef0123456789abcde";
static char exe[4096];

static struct ha_word word(void)
{
	struct ha_word w = {.hw_seq = 7, .hw_hears = 0x5, .hw_statefile = true, .hw_fenced = false};
	strcpy(w.hw_generation, "gen-1");
	strcpy(w.hw_host, "uuid-b");
	strcpy(w.hw_boot, "boot-1");
	return w;
}

static void test_word(void **state)
{
	(void)state;
	char buf[HA_SLOT_SIZE];
	struct ha_word w = word(), r;
	int n = ha_word_encode(&w, KEY, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ha_word_decode(buf, sizeof buf, KEY, &r), 0);
	assert_string_equal(r.hw_host, "uuid-b");
	assert_int_equal(r.hw_seq, 7);
	assert_int_equal(r.hw_hears, 0x5);
	assert_true(r.hw_statefile);
	assert_false(r.hw_fenced);
	/* another key, a changed byte, a cut, an empty slot: not a word */
	unsigned char other[HA_KEY_LEN];
	memcpy(other, KEY, sizeof other);
	other[0] ^= 1;
	assert_int_equal(ha_word_decode(buf, sizeof buf, other, &r), -1);
	char *f = strstr(buf, "\"f\":false");
	assert_non_null(f);
	memcpy(f, "\"f\":true ", 9);
	assert_int_equal(ha_word_decode(buf, sizeof buf, KEY, &r), -1);
	ha_word_encode(&w, KEY, buf, sizeof buf);
	assert_int_equal(ha_word_decode(buf, (size_t)n - 10, KEY, &r), -1);
	memset(buf, 0, sizeof buf);
	assert_int_equal(ha_word_decode(buf, sizeof buf, KEY, &r), -1);
	/* too small a buffer */
	assert_int_equal(ha_word_encode(&w, KEY, buf, 40), -1);
}

static json_t *config_json(const char *statefile)
{
	char key[2 * HA_KEY_LEN + 1];
	ha_hex_encode(KEY, HA_KEY_LEN, key);
	return json_pack("{s:s, s:s, s:s, s:i, s:[{s:s,s:s,s:i},{s:s,s:s,s:i},{s:s,s:s,s:i}], s:[s,s,s]}",
			 "generation", "gen-1", "statefile", statefile, "key", key, "timeout", 3, "members", "uuid", "uuid-c",
			 "address", "127.0.0.1", "port", 47903, "uuid", "uuid-a", "address", "127.0.0.1", "port", 47901,
			 "uuid", "uuid-b", "address", "127.0.0.1", "port", 47902, "expect", "uuid-a", "uuid-b", "uuid-c");
}

static void test_config(void **state)
{
	(void)state;
	struct ha_config c;
	json_t *j = config_json("/tmp/sf"), *e = ha_config_parse(j, "uuid-b", &c);
	assert_null(e);
	assert_int_equal(c.hc_n, 3);
	assert_string_equal(c.hc_members[0].hm_uuid, "uuid-a"); /* sorted */
	assert_int_equal(c.hc_self, 1);
	assert_int_equal(c.hc_expect, 0x7);
	assert_int_equal(c.hc_timeout_ms, 3000);
	assert_memory_equal(c.hc_key, KEY, HA_KEY_LEN);
	/* refusals, each INVALID_VALUE naming the field */
	e = ha_config_parse(j, "uuid-x", &c);
	assert_true(xerr_is(e, XE_INVALID_VALUE));
	json_decref(e);
	const char *fields[] = {"timeout", "key", "statefile", "generation"};
	json_t *vals[] = {json_integer(1), json_string("zz"), json_string("relative"), json_string("")};
	for (size_t i = 0; i < 4; i++) {
		json_t *k = json_deep_copy(j);
		json_object_set_new(k, fields[i], vals[i]);
		e = ha_config_parse(k, "uuid-b", &c);
		assert_true(xerr_is(e, XE_INVALID_VALUE));
		assert_string_equal(json_string_value(json_array_get(e, 1)), fields[i]);
		json_decref(e);
		json_decref(k);
	}
	json_array_append(json_object_get(j, "members"), json_array_get(json_object_get(j, "members"), 0));
	e = ha_config_parse(j, "uuid-b", &c); /* a member twice */
	assert_true(xerr_is(e, XE_INVALID_VALUE));
	json_decref(e);
	json_decref(j);
}

static char tmpdir[256];

static int make_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ha.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_tmp(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_statefile(void **state)
{
	(void)state;
	char path[512], err[256], slot[HA_SLOT_SIZE], all[3 * HA_SLOT_SIZE];
	snprintf(path, sizeof path, "%s/sf.img", tmpdir);
	assert_int_equal(ha_statefile_read(path, 3, all, err, sizeof err), -1); /* not there */
	assert_int_equal(ha_statefile_prepare(path, err, sizeof err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, HA_STATEFILE_SIZE);
	struct ha_word w = word(), r;
	ha_word_encode(&w, KEY, slot, sizeof slot);
	assert_int_equal(ha_statefile_write(path, 1, slot, err, sizeof err), 0);
	assert_int_equal(ha_statefile_read(path, 3, all, err, sizeof err), 0);
	assert_int_equal(ha_word_decode(all, HA_SLOT_SIZE, KEY, &r), -1); /* slot 0: empty */
	assert_int_equal(ha_word_decode(all + HA_SLOT_SIZE, HA_SLOT_SIZE, KEY, &r), 0);
	assert_string_equal(r.hw_boot, "boot-1");
	assert_int_equal(ha_statefile_write(path, HA_MAX_HOSTS, slot, err, sizeof err), -1);
	unlink(path); /* the SR went away: the next operation fails */
	assert_int_equal(ha_statefile_write(path, 1, slot, err, sizeof err), -1);
	assert_non_null(strstr(err, "sf.img"));
}

/* A stand-in domain: a process named pool-simdom with --state-dir DIR. */
static pid_t fake_domain(const char *dir)
{
	char name[600];
	snprintf(name, sizeof name, "%s/pool-simdom", tmpdir);
	symlink("/bin/sh", name);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", name, "-c", "while :; do sleep 0.05; done", "--state-dir", dir,
		      (char *)NULL);
		_exit(127);
	}
	static int domid;
	char rec[700];
	snprintf(rec, sizeof rec, "%s/dom-%d.json", dir, ++domid);
	FILE *f = fopen(rec, "w");
	fprintf(f, "{\"domid\": %d, \"pid\": %d}\n", domid, (int)pid);
	fclose(f);
	usleep(50000);
	return pid;
}

static bool gone(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

static void test_watchdog(void **state)
{
	(void)state;
	char dir[512], err[256];
	snprintf(dir, sizeof dir, "%s/domains", tmpdir);
	mkdir(dir, 0700);
	pid_t a = fake_domain(dir), b = fake_domain(dir);
	struct ha_fence *f = ha_fence_sim_new(exe, dir, tmpdir, err, sizeof err);
	assert_non_null(f);
	/* unarmed, then kicked ahead: nothing happens */
	assert_int_equal(ha_fence_kick(f, -1), 0);
	assert_int_equal(ha_fence_kick(f, (int64_t)now_ms() + 2000), 0);
	assert_false(gone(a, 300));
	/* not kicked by its deadline: the domains die */
	assert_int_equal(ha_fence_kick(f, (int64_t)now_ms() + 200), 0);
	assert_true(gone(a, 3000));
	assert_true(gone(b, 3000));
	/* fired: kicking fails (fail closed), and the host stays down: a
	 * domain started after the fence dies too, until the watchdog is freed */
	usleep(100000);
	assert_int_equal(ha_fence_kick(f, (int64_t)now_ms() + 2000), -1);
	pid_t late = fake_domain(dir);
	assert_true(gone(late, 1000));
	uint64_t t0 = now_ms();
	ha_fence_free(f);
	assert_true(now_ms() - t0 < 1000);
	/* fire: at once; free: leaves the domains alone */
	pid_t c = fake_domain(dir);
	f = ha_fence_sim_new(exe, dir, tmpdir, err, sizeof err);
	ha_fence_kick(f, (int64_t)now_ms() + 60000);
	assert_int_equal(ha_fence_fire(f), 0);
	assert_true(gone(c, 1000));
	ha_fence_free(f);
	pid_t d = fake_domain(dir);
	f = ha_fence_sim_new(exe, dir, tmpdir, err, sizeof err);
	ha_fence_kick(f, (int64_t)now_ms() + 300);
	ha_fence_free(f); /* disarmed before the deadline */
	assert_false(gone(d, 600));
	/* a run that was armed and never disarmed: fenced at the next start */
	assert_int_equal(ha_armed_mark(tmpdir, true), 0);
	assert_int_equal(ha_fence_leftover(tmpdir, dir), 1);
	assert_true(gone(d, 1000));
	assert_int_equal(ha_fence_leftover(tmpdir, dir), 0);
}

/* Without a hypervisor the xen watchdog says so in one line (no Xen here). */
static void test_xen_watchdog_absent(void **state)
{
	(void)state;
	char err[256] = "";
	if (access("/dev/xen/privcmd", F_OK) == 0)
		skip();
	assert_null(ha_fence_xen_new(err, sizeof err));
	assert_true(strstr(err, "hypervisor") || strstr(err, "Xen support"));
}

/* Three monitors, one statefile, loopback UDP: they form the liveset;
 * one leaves cleanly and the others exclude it (nobody declares it). */
static void test_monitors(void **state)
{
	(void)state;
	char path[512], err[256], dir[512];
	snprintf(path, sizeof path, "%s/monitors.img", tmpdir);
	snprintf(dir, sizeof dir, "%s/mdomains", tmpdir);
	mkdir(dir, 0700);
	json_t *j = config_json(path);
	const char *self[3] = {"uuid-a", "uuid-b", "uuid-c"};
	struct ha_monitor *m[3];
	for (int i = 0; i < 3; i++) {
		struct ha_config c;
		assert_null(ha_config_parse(j, self[i], &c));
		struct ha_fence *f = ha_fence_sim_new(exe, dir, tmpdir, err, sizeof err);
		m[i] = ha_monitor_start(&c, "boot", f, -1, err, sizeof err);
		assert_non_null(m[i]);
	}
	json_t *s = NULL;
	for (int k = 0; k < 100; k++) {
		usleep(100000);
		int armed = 0;
		for (int i = 0; i < 3; i++) {
			json_decref(s);
			s = ha_monitor_state(m[i]);
			armed += strcmp(json_string_value(json_object_get(s, "state")), "armed") == 0 &&
				 json_array_size(json_object_get(s, "liveset")) == 3;
		}
		if (armed == 3)
			break;
	}
	assert_string_equal(json_string_value(json_object_get(s, "state")), "armed");
	assert_int_equal(json_array_size(json_object_get(s, "liveset")), 3);
	assert_true(json_is_true(json_object_get(s, "statefile")));
	ha_monitor_stop(m[2]);
	for (int k = 0; k < 50; k++) {
		usleep(100000);
		json_decref(s);
		s = ha_monitor_state(m[0]);
		if (json_array_size(json_object_get(s, "excluded")) == 1)
			break;
	}
	assert_int_equal(json_array_size(json_object_get(s, "excluded")), 1);
	assert_int_equal(json_array_size(json_object_get(s, "liveset")), 2);
	assert_int_equal(json_array_size(json_object_get(s, "fenced")), 0);
	json_decref(s);
	ha_monitor_stop(m[0]);
	ha_monitor_stop(m[1]);
	json_decref(j);
}

int main(int argc, char **argv)
{
	util_json_init();
	if (argc > 1 && strcmp(argv[1], "--ha-watchdog") == 0)
		return ha_watchdog_main(argc, argv);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_word),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_xen_watchdog_absent),
		cmocka_unit_test_setup_teardown(test_statefile, make_tmp, rm_tmp),
		cmocka_unit_test_setup_teardown(test_watchdog, make_tmp, rm_tmp),
		cmocka_unit_test_setup_teardown(test_monitors, make_tmp, rm_tmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
