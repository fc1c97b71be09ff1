/*
 * test_pwcheck.c - poold/pwcheck.c: password checks on a bounded pool of
 * threads. Results, the one-job-per-key rule (a flood from one address
 * never takes every worker), the queue bounds, the start hook that lets a
 * throttle skip a check, and cancelling.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "poold.h"
#include "pwhash.h"

/* What the loop saw, in order: "+a1" started, "-a1" done (ok/wrong/not run). */
struct log {
	char text[1024];
	int done, want;
	struct event_base *base;
	bool refuse_start; /* the start hook says no */
};

struct job {
	struct log *log;
	char name[8];
	enum pwcheck_result r;
	bool finished;
};

static bool on_start(void *arg)
{
	struct job *j = arg;
	if (j->log->refuse_start)
		return false;
	strcat(j->log->text, "+");
	strcat(j->log->text, j->name);
	return true;
}

static void on_done(void *arg, enum pwcheck_result r)
{
	struct job *j = arg;
	j->r = r;
	j->finished = true;
	strcat(j->log->text, "-");
	strcat(j->log->text, j->name);
	if (++j->log->done == j->log->want)
		event_base_loopbreak(j->log->base);
}

static void run(struct log *l)
{
	struct timeval limit = {30, 0};
	event_base_loopexit(l->base, &limit);
	event_base_dispatch(l->base);
}

static char *fast_hash(const char *pw)
{
	char *h = pwhash_make(pw, 1000);
	assert_non_null(h);
	return h;
}

static void test_results(void **state)
{
	(void)state;
	struct log l = {.base = event_base_new(), .want = 3};
	struct pwcheck *p = pwcheck_new(l.base, 2, 10, 4);
	assert_non_null(p);
	char *h = fast_hash("secret");
	struct job ok = {&l, "ok"}, wrong = {&l, "wr"}, nouser = {&l, "nu"};
	assert_non_null(pwcheck_submit(p, "a:1", "secret", h, on_start, on_done, &ok));
	assert_non_null(pwcheck_submit(p, "a:2", "guess", h, on_start, on_done, &wrong));
	assert_non_null(pwcheck_submit(p, "a:3", "secret", NULL, NULL, on_done, &nouser));
	run(&l);
	assert_int_equal(ok.r, PWCHECK_OK);
	assert_int_equal(wrong.r, PWCHECK_WRONG);
	assert_int_equal(nouser.r, PWCHECK_WRONG); /* an unknown user never logs in */
	free(h);
	pwcheck_free(p);
	event_base_free(l.base);
}

/* Between "+aN" and "-aN" no other "+a": one job per key at a time. */
static void assert_one_at_a_time(const char *text, char key)
{
	bool running = false;
	for (const char *s = text; *s; s++) {
		if ((*s == '+' || *s == '-') && s[1] == key) {
			if (*s == '+')
				assert_false(running);
			running = *s == '+';
		}
	}
}

static void test_one_job_per_key(void **state)
{
	(void)state;
	struct log l = {.base = event_base_new(), .want = 5};
	struct pwcheck *p = pwcheck_new(l.base, 2, 10, 4);
	char *slow = pwhash_make("x", 20000), *fast = fast_hash("y");
	struct job a[4] = {{&l, "a1"}, {&l, "a2"}, {&l, "a3"}, {&l, "a4"}}, b = {&l, "b1"};
	for (int i = 0; i < 4; i++)
		assert_non_null(pwcheck_submit(p, "flood", "x", slow, on_start, on_done, &a[i]));
	assert_non_null(pwcheck_submit(p, "other", "y", fast, on_start, on_done, &b));
	run(&l);
	assert_int_equal(l.done, 5);
	assert_one_at_a_time(l.text, 'a');
	/* the other address got the second worker at once: done before the flood's second job */
	const char *b_done = strstr(l.text, "-b1"), *a2_done = strstr(l.text, "-a2");
	assert_non_null(b_done);
	assert_non_null(a2_done);
	assert_true(b_done < a2_done);
	assert_int_equal(b.r, PWCHECK_OK);
	/* in the order they came */
	assert_true(strstr(l.text, "+a1") < strstr(l.text, "+a2"));
	assert_true(strstr(l.text, "+a3") < strstr(l.text, "+a4"));
	free(slow);
	free(fast);
	pwcheck_free(p);
	event_base_free(l.base);
}

static void test_bounds(void **state)
{
	(void)state;
	struct log l = {.base = event_base_new(), .want = 4};
	/* one worker; 3 waiting at most, 2 of one key */
	struct pwcheck *p = pwcheck_new(l.base, 1, 3, 2);
	char *h = fast_hash("z");
	struct job j[6] = {{&l, "a1"}, {&l, "a2"}, {&l, "a3"}, {&l, "a4"}, {&l, "b1"}, {&l, "c1"}};
	assert_non_null(pwcheck_submit(p, "a", "z", h, on_start, on_done, &j[0])); /* runs at once */
	assert_non_null(pwcheck_submit(p, "a", "z", h, on_start, on_done, &j[1]));
	assert_non_null(pwcheck_submit(p, "a", "z", h, on_start, on_done, &j[2]));
	assert_null(pwcheck_submit(p, "a", "z", h, on_start, on_done, &j[3]));     /* the key's share is full */
	assert_non_null(pwcheck_submit(p, "b", "z", h, on_start, on_done, &j[4])); /* the queue is full now */
	assert_null(pwcheck_submit(p, "c", "z", h, on_start, on_done, &j[5]));
	run(&l);
	assert_int_equal(l.done, 4);
	assert_false(j[3].finished);
	assert_false(j[5].finished);
	free(h);
	pwcheck_free(p);
	event_base_free(l.base);
}

static void test_start_hook_and_cancel(void **state)
{
	(void)state;
	struct log l = {.base = event_base_new(), .want = 2};
	struct pwcheck *p = pwcheck_new(l.base, 1, 10, 4);
	char *slow = pwhash_make("x", 20000);
	struct job first = {&l, "f1"}, skipped = {&l, "s1"}, cancelled = {&l, "c1"}, gone = {&l, "g1"};
	struct pwcheck_job *running = pwcheck_submit(p, "k", "x", slow, on_start, on_done, &gone);
	pwcheck_cancel(running); /* handed out already: it runs, nobody hears of it */
	assert_non_null(pwcheck_submit(p, "k", "x", slow, on_start, on_done, &first));
	struct pwcheck_job *queued = pwcheck_submit(p, "k", "x", slow, on_start, on_done, &cancelled);
	pwcheck_cancel(queued); /* still queued: gone at once */
	l.refuse_start = false;
	assert_non_null(pwcheck_submit(p, "k", "x", slow, on_start, on_done, &skipped));
	/* once "first" has started, the hook refuses the next one */
	while (!strstr(l.text, "+f1"))
		event_base_loop(l.base, EVLOOP_ONCE);
	l.refuse_start = true;
	run(&l);
	assert_int_equal(first.r, PWCHECK_OK);
	assert_true(skipped.finished);
	assert_int_equal(skipped.r, PWCHECK_NOT_RUN);
	assert_false(cancelled.finished);
	assert_false(gone.finished);
	assert_null(strstr(l.text, "+s1")); /* never handed to a worker */
	free(slow);
	pwcheck_free(p);
	event_base_free(l.base);
}

static void test_free_with_work_pending(void **state)
{
	(void)state;
	struct log l = {.base = event_base_new(), .want = 99};
	struct pwcheck *p = pwcheck_new(l.base, 2, 10, 4);
	char *slow = pwhash_make("x", 20000);
	struct job j[6];
	for (int i = 0; i < 6; i++) {
		j[i] = (struct job){&l, "j"};
		assert_non_null(pwcheck_submit(p, i % 2 ? "a" : "b", "x", slow, NULL, on_done, &j[i]));
	}
	pwcheck_free(p); /* threads stopped and joined, every job freed, no callback */
	for (int i = 0; i < 6; i++)
		assert_false(j[i].finished);
	free(slow);
	event_base_free(l.base);
}

int main(void)
{
	evthread_use_pthreads();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_one_job_per_key),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_start_hook_and_cancel),
		cmocka_unit_test(test_free_with_work_pending),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
