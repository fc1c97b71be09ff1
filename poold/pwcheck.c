/*
 * pwcheck.c - password checks on a few threads, fairly (see poold.h).
 *
 * A check costs ~0.1 s of CPU (PBKDF2), so it must not run on the loop,
 * and a thread per attempt let a burst of guesses start hundreds of them
 * and make everyone wait. Here a fixed number of workers take jobs from a
 * queue of bounded length. The loop decides which job runs next: the
 * oldest whose client key (address) has none running, so one address uses
 * one worker at most and a correct login from elsewhere never queues
 * behind its flood. Just before a job starts its owner is asked whether
 * it still should (a throttle may have come into force meanwhile).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "log.h"
#include "poold.h"
#include "pwhash.h"
#include "util.h"

struct pwcheck_job {
	struct pwcheck *pj_pool;
	char pj_key[64];
	char *pj_password, *pj_stored; /* stored NULL: no such user */
	pwcheck_start_fn pj_start;
	pwcheck_done_fn pj_done;       /* NULL once cancelled */
	void *pj_arg;
	bool pj_ok;
	bool pj_queued;                /* still in pc_queue (not handed out) */
	struct pwcheck_job *pj_next;
};

struct pwcheck {
	struct event_base *pc_base;
	pthread_mutex_t pc_mu;
	pthread_cond_t pc_cv;
	pthread_t *pc_threads;
	int pc_nthreads, pc_idle;     /* idle: workers waiting (loop's count) */
	int pc_queue_max, pc_per_key_max;
	int pc_queued;
	struct pwcheck_job *pc_queue;  /* waiting, oldest first (loop only) */
	struct pwcheck_job *pc_ready;  /* handed to the workers (under pc_mu) */
	struct pwcheck_job *pc_done;   /* checked, for the loop (under pc_mu) */
	json_t *pc_running;            /* key -> jobs handed out (loop only) */
	struct event *pc_wake;         /* a worker finished one */
	char *pc_dummy;                /* a hash to check unknown users against */
	bool pc_stop;
};

static void job_free(struct pwcheck_job *j)
{
	if (j->pj_password) {
		OPENSSL_cleanse(j->pj_password, strlen(j->pj_password));
		free(j->pj_password);
	}
	free(j->pj_stored);
	free(j);
}

static void *worker(void *arg)
{
	struct pwcheck *p = arg;
	pthread_mutex_lock(&p->pc_mu);
	for (;;) {
		while (!p->pc_ready && !p->pc_stop)
			pthread_cond_wait(&p->pc_cv, &p->pc_mu);
		if (p->pc_stop)
			break;
		struct pwcheck_job *j = p->pc_ready;
		p->pc_ready = j->pj_next;
		pthread_mutex_unlock(&p->pc_mu);
		/* the same work whether or not the user exists: no user enumeration by timing */
		bool ok = pwhash_verify(j->pj_password, j->pj_stored ? j->pj_stored : p->pc_dummy);
		j->pj_ok = ok && j->pj_stored;
		pthread_mutex_lock(&p->pc_mu);
		j->pj_next = p->pc_done;
		p->pc_done = j;
		event_active(p->pc_wake, EV_TIMEOUT, 1);
	}
	pthread_mutex_unlock(&p->pc_mu);
	return NULL;
}

static int running_of(struct pwcheck *p, const char *key, int delta)
{
	int n = (int)json_integer_value(json_object_get(p->pc_running, key)) + delta;
	if (n > 0)
		json_object_set_new(p->pc_running, key, json_integer(n));
	else
		json_object_del(p->pc_running, key);
	return n;
}

/* Hand out the oldest jobs whose key has none running, while workers idle. */
static void dispatch(struct pwcheck *p)
{
	struct pwcheck_job **pp = &p->pc_queue;
	while (p->pc_idle > 0 && *pp) {
		struct pwcheck_job *j = *pp;
		if (running_of(p, j->pj_key, 0) > 0) {
			pp = &j->pj_next;
			continue;
		}
		*pp = j->pj_next;
		p->pc_queued--;
		j->pj_queued = false;
		if (j->pj_start && !j->pj_start(j->pj_arg)) {
			j->pj_done(j->pj_arg, PWCHECK_NOT_RUN);
			job_free(j);
			pp = &p->pc_queue; /* the callback may have changed the queue */
			continue;
		}
		running_of(p, j->pj_key, 1);
		p->pc_idle--;
		pthread_mutex_lock(&p->pc_mu);
		j->pj_next = p->pc_ready;
		p->pc_ready = j;
		pthread_cond_signal(&p->pc_cv);
		pthread_mutex_unlock(&p->pc_mu);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pwcheck *p = arg;
	pthread_mutex_lock(&p->pc_mu);
	struct pwcheck_job *done = p->pc_done;
	p->pc_done = NULL;
	pthread_mutex_unlock(&p->pc_mu);
	while (done) {
		struct pwcheck_job *j = done;
		done = j->pj_next;
		p->pc_idle++;
		running_of(p, j->pj_key, -1);
		if (j->pj_done)
			j->pj_done(j->pj_arg, j->pj_ok ? PWCHECK_OK : PWCHECK_WRONG);
		job_free(j);
	}
	dispatch(p);
}

struct pwcheck *pwcheck_new(struct event_base *base, int threads, int queue_max, int per_key_max)
{
	struct pwcheck *p = xcalloc(1, sizeof *p);
	p->pc_base = base;
	p->pc_queue_max = queue_max;
	p->pc_per_key_max = per_key_max;
	pthread_mutex_init(&p->pc_mu, NULL);
	pthread_cond_init(&p->pc_cv, NULL);
	p->pc_running = json_object();
	p->pc_wake = event_new(base, -1, 0, on_wake, p);
	p->pc_dummy = pwhash_make("", PWHASH_DEFAULT_ITERATIONS);
	p->pc_threads = xcalloc((size_t)threads, sizeof *p->pc_threads);
	if (!p->pc_wake || !p->pc_dummy) {
		pwcheck_free(p);
		return NULL;
	}
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&p->pc_threads[i], NULL, worker, p) != 0)
			break;
		p->pc_nthreads++;
	}
	p->pc_idle = p->pc_nthreads;
	if (p->pc_nthreads == 0) {
		pwcheck_free(p);
		return NULL;
	}
	return p;
}

struct pwcheck_job *pwcheck_submit(struct pwcheck *p, const char *key, const char *password, const char *stored,
				   pwcheck_start_fn start, pwcheck_done_fn done, void *arg)
{
	int same = 0;
	for (struct pwcheck_job *q = p->pc_queue; q; q = q->pj_next)
		same += strcmp(q->pj_key, key) == 0;
	if (p->pc_queued >= p->pc_queue_max || same >= p->pc_per_key_max)
		return NULL;
	struct pwcheck_job *j = xcalloc(1, sizeof *j);
	*j = (struct pwcheck_job){p, "", xstrdup(password), stored ? xstrdup(stored) : NULL, start, done, arg, false, true, NULL};
	snprintf(j->pj_key, sizeof j->pj_key, "%s", key);
	struct pwcheck_job **pp = &p->pc_queue;
	while (*pp)
		pp = &(*pp)->pj_next;
	*pp = j;
	p->pc_queued++;
	dispatch(p);
	return j;
}

void pwcheck_cancel(struct pwcheck_job *j)
{
	struct pwcheck *p = j->pj_pool;
	if (!j->pj_queued) {
		j->pj_done = NULL; /* a worker has it: its end is ignored */
		return;
	}
	for (struct pwcheck_job **pp = &p->pc_queue; *pp; pp = &(*pp)->pj_next)
		if (*pp == j) {
			*pp = j->pj_next;
			break;
		}
	p->pc_queued--;
	job_free(j);
}

void pwcheck_free(struct pwcheck *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->pc_mu);
	p->pc_stop = true;
	pthread_cond_broadcast(&p->pc_cv);
	pthread_mutex_unlock(&p->pc_mu);
	for (int i = 0; i < p->pc_nthreads; i++)
		pthread_join(p->pc_threads[i], NULL);
	struct pwcheck_job *lists[3] = {p->pc_queue, p->pc_ready, p->pc_done};
	for (int i = 0; i < 3; i++)
		while (lists[i]) {
			struct pwcheck_job *j = lists[i];
			lists[i] = j->pj_next;
			job_free(j);
		}
	if (p->pc_wake)
		event_free(p->pc_wake);
	json_decref(p->pc_running);
	free(p->pc_dummy);
	free(p->pc_threads);
	pthread_mutex_destroy(&p->pc_mu);
	pthread_cond_destroy(&p->pc_cv);
	free(p);
}
