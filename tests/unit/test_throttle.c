/*
 * test_throttle.c - poold/throttle.c: how long a login attempt waits after
 * failures, per address and per user, with time as a parameter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "poold.h"

static const struct throttle_policy pol = {200, 1000}; /* 200 ms, doubling, at most 1 s */

static void test_delay(void **state)
{
	(void)state;
	assert_int_equal(throttle_delay(&pol, 0), 0);
	assert_int_equal(throttle_delay(&pol, 1), 200);
	assert_int_equal(throttle_delay(&pol, 2), 400);
	assert_int_equal(throttle_delay(&pol, 3), 800);
	assert_int_equal(throttle_delay(&pol, 4), 1000);
	assert_int_equal(throttle_delay(&pol, 1000000), 1000);
	/* no base: no throttling */
	const struct throttle_policy off = {0, 30000};
	assert_int_equal(throttle_delay(&off, 5), 0);
}

static void test_fail_and_forget(void **state)
{
	(void)state;
	struct throttle_entry e = {0};
	assert_true(throttle_expired(&e, &pol, 0));
	throttle_fail(&e, &pol, 10000);
	assert_int_equal(e.te_failures, 1);
	assert_int_equal(e.te_until_ms, 10200);
	throttle_fail(&e, &pol, 10300);
	assert_int_equal(e.te_failures, 2);
	assert_int_equal(e.te_until_ms, 10700);
	/* quiet for 20 x max: forgotten, and the next failure counts from one */
	assert_false(throttle_expired(&e, &pol, 10300 + 20000));
	assert_true(throttle_expired(&e, &pol, 10300 + 20001));
	throttle_fail(&e, &pol, 40000);
	assert_int_equal(e.te_failures, 1);
	assert_int_equal(e.te_until_ms, 40200);
}

static void test_wait(void **state)
{
	(void)state;
	struct throttle_entry clean = {0}, addr = {0}, user = {0};
	throttle_fail(&addr, &pol, 1000);           /* until 1200 */
	for (int i = 0; i < 4; i++)
		throttle_fail(&user, &pol, 1000);   /* until 2000 */
	/* an address that has not failed waits for no one, whatever its user's state */
	assert_int_equal(throttle_wait(&clean, &user, &pol, 1000), 0);
	/* one that has failed waits for itself and for its user */
	assert_int_equal(throttle_wait(&addr, &clean, &pol, 1100), 100);
	assert_int_equal(throttle_wait(&addr, &user, &pol, 1100), 900);
	assert_int_equal(throttle_wait(&addr, &user, &pol, 2000), 0);
	assert_int_equal(throttle_wait(&addr, &user, &pol, 5000), 0);
	/* a forgotten user no longer holds anyone */
	assert_int_equal(throttle_wait(&addr, &user, &pol, 1100 + 30000), 0);
}

static void test_table(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&pol, 3);
	assert_non_null(t);
	assert_int_equal(throttle_wait_for(t, "a:1", "u:root", 0), 0);
	throttle_record(t, "a:1", false, 1000);
	throttle_record(t, "u:root", false, 1000);
	throttle_record(t, "u:root", false, 1000);
	assert_int_equal(throttle_get(t, "u:root").te_failures, 2);
	assert_int_equal(throttle_wait_for(t, "a:1", "u:root", 1000), 400);
	assert_int_equal(throttle_wait_for(t, "a:2", "u:root", 1000), 0); /* a clean address */
	/* a success clears its key */
	throttle_record(t, "a:1", true, 1100);
	assert_int_equal(throttle_get(t, "a:1").te_failures, 0);
	assert_int_equal(throttle_wait_for(t, "a:1", "u:root", 1100), 0);
	/* full: forgotten keys go first, then the quietest */
	throttle_record(t, "a:1", false, 2000);
	throttle_record(t, "a:3", false, 3000); /* 3 keys: u:root (1000), a:1, a:3 */
	throttle_record(t, "a:4", false, 4000);
	assert_int_equal(json_object_size(t->th_map), 3);
	assert_int_equal(throttle_get(t, "u:root").te_failures, 0); /* the quietest went */
	assert_int_equal(throttle_get(t, "a:4").te_failures, 1);
	throttle_record(t, "a:5", false, 4000 + 30000); /* everything else forgotten by then */
	assert_int_equal(json_object_size(t->th_map), 1);
	throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_fail_and_forget),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
