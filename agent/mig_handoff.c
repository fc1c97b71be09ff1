/*
 * mig_handoff.c - a second stage of a stream on its own thread (see
 * sim_mig.h): the compressing sender hands each record to a writer thread,
 * which encrypts and sends it while the sender compresses the next.
 */
#include <stdio.h>

#include "sim_mig.h"

static void *ho_main(void *arg)
{
	struct mig_handoff *h = arg;
	pthread_mutex_lock(&h->ho_mu);
	for (;;) {
		while (!h->ho_busy && !h->ho_stop)
			pthread_cond_wait(&h->ho_cv, &h->ho_mu);
		if (!h->ho_busy)
			break;
		pthread_mutex_unlock(&h->ho_mu);
		char e[256] = "";
		int rc = h->ho_fn(h->ho_arg, e, sizeof e);
		pthread_mutex_lock(&h->ho_mu);
		if (rc != 0 && !h->ho_failed) {
			h->ho_failed = true;
			snprintf(h->ho_err, sizeof h->ho_err, "%s", e);
		}
		h->ho_busy = false;
		pthread_cond_broadcast(&h->ho_cv);
	}
	pthread_mutex_unlock(&h->ho_mu);
	return NULL;
}

void mig_handoff_start(struct mig_handoff *h, int (*fn)(void *, char *, size_t), void *arg, const char *name)
{
	h->ho_fn = fn;
	h->ho_arg = arg;
	pthread_mutex_init(&h->ho_mu, NULL);
	pthread_cond_init(&h->ho_cv, NULL);
	h->ho_started = pthread_create(&h->ho_th, NULL, ho_main, h) == 0;
	if (h->ho_started)
		(void)pthread_setname_np(h->ho_th, name); /* for top -H and perf */
	else {
		pthread_mutex_destroy(&h->ho_mu);
		pthread_cond_destroy(&h->ho_cv);
	}
}

int mig_handoff_wait(struct mig_handoff *h, char *err, size_t errlen)
{
	if (!h->ho_started)
		return 0;
	pthread_mutex_lock(&h->ho_mu);
	while (h->ho_busy)
		pthread_cond_wait(&h->ho_cv, &h->ho_mu);
	bool failed = h->ho_failed;
	pthread_mutex_unlock(&h->ho_mu);
	if (failed)
		mig_seterr(err, errlen, "%s", h->ho_err);
	return failed ? -1 : 0;
}

int mig_handoff_post(struct mig_handoff *h, char *err, size_t errlen)
{
	if (!h->ho_started)
		return h->ho_fn(h->ho_arg, err, errlen);
	pthread_mutex_lock(&h->ho_mu);
	h->ho_busy = true;
	pthread_cond_broadcast(&h->ho_cv);
	pthread_mutex_unlock(&h->ho_mu);
	return 0;
}

void mig_handoff_stop(struct mig_handoff *h)
{
	if (!h->ho_started)
		return;
	pthread_mutex_lock(&h->ho_mu);
	h->ho_stop = true;
	pthread_cond_broadcast(&h->ho_cv);
	pthread_mutex_unlock(&h->ho_mu);
	pthread_join(h->ho_th, NULL);
	pthread_mutex_destroy(&h->ho_mu);
	pthread_cond_destroy(&h->ho_cv);
	h->ho_started = false;
}
