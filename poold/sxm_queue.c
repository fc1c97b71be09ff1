/*
 * sxm_queue.c - R-13's queue and the restart of storage migrations.
 *
 * At most storage-migration-max-per-host storage migrations from one host
 * decide their VM's fate at once (those in the journal in phase copy or
 * memory); the others wait here, oldest first, their tasks saying so, and
 * start when a slot is free (looked at every second). After a restart the
 * journal's migrations go on once the hosts have reported: back when the
 * disks were still being copied, settled when the memory was moving,
 * forward after the commit, and what is left to remove is removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define QUEUE_TICK_MS 1000

static struct sxm_job *oldest_queued(struct poold *pd, const char *host)
{
	struct sxm_job *found = NULL;
	for (struct sxm_job *j = pd->pd_sxm; j; j = j->sj_next) /* new jobs go to the head */
		if (j->sj_queued && strcmp(jstr(j->sj_j, "src"), host) == 0)
			found = j;
	return found;
}

/* Every queued job's host: start its oldest while it has a free slot. */
static void queue_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	int limit = (int)conf_int(pd->pd_conf, "storage-migration-max-per-host");
	bool again = true;
	while (again) {
		again = false;
		for (struct sxm_job *q = pd->pd_sxm; q && !again; q = q->sj_next) {
			if (!q->sj_queued)
				continue;
			char host[64];
			snprintf(host, sizeof host, "%s", jstr(q->sj_j, "src"));
			struct sxm_job *j = oldest_queued(pd, host);
			if (sxm_admit(sxm_journal_running_from(pd->pd_db, host), limit, true) == SXM_START) {
				sxm_start(pd, j); /* the list may change: look again */
				again = true;
			}
		}
	}
}

static void resume_one(struct poold *pd, const char *id, json_t *entry)
{
	struct sxm_job *job = sxm_job_new(pd, id, entry, NULL, jstr(entry, "task"));
	int phase = sxm_phase_from_name(jstr(entry, "phase"));
	bool decided = json_is_true(json_object_get(entry, "decided"));
	log_info("storage migration %s (VM %s): resumed after a restart, phase %s%s", id, jstr(entry, "vm"),
		 jstr(entry, "phase"), decided ? " (decided, removing what is left)" : "");
	job->sj_task_ended = decided || !job->sj_task[0];
	if (decided)
		sxm_cleanup(job);
	else if (phase == SXM_PH_COPY || phase == SXM_PH_ROLLBACK)
		sxm_roll_back(job, xerr_new(XE_VM_MIGRATE_FAILED, jstr(entry, "vm"), jstr(entry, "src"), jstr(entry, "dst"),
					    "poold stopped while the disks were copied: rolled back, the VM runs on "
					    "its source with its disks",
					    NULL));
	else if (phase == SXM_PH_COMMITTED)
		sxm_roll_forward(job, NULL);
	else
		sxm_start(pd, job); /* memory: the hosts say where the VM runs */
}

static void resume_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	json_t *all = sxm_journal_all(pd->pd_db);
	const char *id;
	json_t *entry;
	json_object_foreach(all, id, entry) resume_one(pd, id, entry);
	json_decref(all);
}

void sxm_resume(struct poold *pd)
{
	struct timeval tick = {QUEUE_TICK_MS / 1000, (QUEUE_TICK_MS % 1000) * 1000};
	pd->pd_sxm_queue = event_new(pd->pd_base, -1, EV_PERSIST, queue_tick, pd);
	event_add(pd->pd_sxm_queue, &tick);
	json_t *all = sxm_journal_all(pd->pd_db);
	size_t n = json_object_size(all);
	json_decref(all);
	if (!n)
		return;
	log_info("%zu storage migration(s) in the journal: resumed in %lld ms", n,
		 (long long)host_reports_settle_ms(pd));
	host_after_reports(pd, resume_tick, pd);
}

void sxm_stop(struct poold *pd)
{
	if (pd->pd_sxm_queue)
		event_free(pd->pd_sxm_queue);
	pd->pd_sxm_queue = NULL;
	while (pd->pd_sxm) /* the journal keeps them: the next start goes on */
		sxm_job_free(pd->pd_sxm);
}
