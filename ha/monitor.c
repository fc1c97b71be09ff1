/*
 * monitor.c - HA on this host, as two threads of the agent:
 *
 *   the statefile thread writes our slot every statefile interval and
 *   reads every slot every tick (blocking I/O lives here, so a slow SR
 *   never delays a network beat);
 *   the monitor thread sends our beat every beat interval, takes the
 *   peers' beats, decides every tick (liveness.c), kicks the watchdog
 *   with the deadline the verdict allows, and fences when it must.
 *
 * What they learn is kept under one mutex as liveness.c's input; what
 * the agent reports to poold is rebuilt after each verdict and the agent
 * is woken (notify fd) when it changes. Neither thread touches the
 * agent's event loop or its backend.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "ha.h"
#include "log.h"
#include "util.h"

struct ha_monitor {
	struct ha_config m_cfg;
	struct ha_timing m_t;
	char m_boot[48];
	struct ha_fence *m_fence;
	int m_notify, m_sock;
	pthread_t m_sf_thread, m_mon_thread;
	bool m_sf_started, m_mon_started;
	pthread_mutex_t m_mu;       /* everything below */
	pthread_mutex_t m_write_mu; /* our slot: one writer at a time, last word wins */
	bool m_stop, m_fenced, m_excluded, m_joining, m_failed;
	struct ha_input m_in;
	char m_boots[HA_MAX_HOSTS][48]; /* each peer's run, from its latest word */
	uint64_t m_seqs[HA_MAX_HOSTS];  /* its latest beat's sequence number */
	uint64_t m_slot_seq[HA_MAX_HOSTS];
	uint64_t m_counter, m_beat_seq;
	int64_t m_ticked;               /* the monitor's last verdict: a stuck monitor stops our slot */
	struct ha_verdict m_v;
	json_t *m_state;
};

static int64_t now(void)
{
	return (int64_t)now_ms();
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Our word as it stands (under m_mu). */
static void our_word(struct ha_monitor *m, uint64_t seq, struct ha_word *w)
{
	memset(w, 0, sizeof *w);
	snprintf(w->hw_generation, sizeof w->hw_generation, "%s", m->m_cfg.hc_generation);
	snprintf(w->hw_host, sizeof w->hw_host, "%s", m->m_cfg.hc_members[m->m_cfg.hc_self].hm_uuid);
	snprintf(w->hw_boot, sizeof w->hw_boot, "%s", m->m_boot);
	w->hw_seq = seq;
	w->hw_hears = m->m_v.hv_hears | HA_BIT(m->m_cfg.hc_self);
	w->hw_statefile = m->m_v.hv_statefile;
	w->hw_fenced = m->m_fenced;
	w->hw_excluded = m->m_excluded;
}

/* A peer's word, if it is one of this generation from the member it
 * claims to be: its index, else -1. */
static int word_member(struct ha_monitor *m, const struct ha_word *w)
{
	if (strcmp(w->hw_generation, m->m_cfg.hc_generation))
		return -1;
	int j = ha_member_index(&m->m_cfg, w->hw_host);
	return j == m->m_cfg.hc_self ? -1 : j;
}

/* ------------------------------------------------------ the statefile */

static int write_slot(struct ha_monitor *m)
{
	char buf[HA_SLOT_SIZE], err[256];
	struct ha_word w;
	pthread_mutex_lock(&m->m_write_mu);
	pthread_mutex_lock(&m->m_mu);
	our_word(m, ++m->m_counter, &w);
	pthread_mutex_unlock(&m->m_mu);
	int rc = ha_word_encode(&w, m->m_cfg.hc_key, buf, sizeof buf) < 0 ? -1 : 0;
	if (!rc)
		rc = ha_statefile_write(m->m_cfg.hc_statefile, m->m_cfg.hc_self, buf, err, sizeof err);
	pthread_mutex_unlock(&m->m_write_mu);
	if (rc)
		log_warn("HA: %s", err);
	return rc;
}

/* Take in the slots just read (seen: when the read ended). */
static void take_slots(struct ha_monitor *m, const char *buf, int64_t seen)
{
	for (int i = 0; i < m->m_cfg.hc_n; i++) {
		struct ha_word w;
		if (ha_word_decode(buf + (size_t)i * HA_SLOT_SIZE, HA_SLOT_SIZE, m->m_cfg.hc_key, &w) < 0 ||
		    word_member(m, &w) != i)
			continue;
		struct ha_peer *p = &m->m_in.hi_peers[i];
		bool changed = w.hw_seq != m->m_slot_seq[i] || strcmp(w.hw_boot, m->m_boots[i]);
		if (!changed)
			continue;
		m->m_slot_seq[i] = w.hw_seq;
		p->hp_slot_ms = seen;
		p->hp_slot_hears = w.hw_hears;
		p->hp_slot_fenced = w.hw_fenced;
		p->hp_slot_excluded = w.hw_excluded;
		snprintf(m->m_boots[i], sizeof m->m_boots[i], "%s", w.hw_boot);
	}
}

static void *sf_main(void *arg)
{
	struct ha_monitor *m = arg;
	char *buf = xmalloc((size_t)HA_SLOT_SIZE * (size_t)m->m_cfg.hc_n);
	int64_t next_write = 0;
	for (;;) {
		pthread_mutex_lock(&m->m_mu);
		bool stop = m->m_stop || m->m_fenced;
		/* our slot says we are alive: not while the monitor that would
		 * fence us is stuck (its watchdog fires, the peers must see it) */
		bool alive = now() - m->m_ticked < m->m_t.ht_timeout_ms / 2;
		pthread_mutex_unlock(&m->m_mu);
		if (stop)
			break;
		int64_t start = now();
		if (start >= next_write && alive) {
			next_write = start + m->m_t.ht_statefile_ms;
			if (write_slot(m) == 0) {
				pthread_mutex_lock(&m->m_mu);
				m->m_in.hi_sf_write_ms = start;
				pthread_mutex_unlock(&m->m_mu);
			}
		}
		char err[256];
		int64_t rstart = now();
		if (ha_statefile_read(m->m_cfg.hc_statefile, m->m_cfg.hc_n, buf, err, sizeof err) == 0) {
			pthread_mutex_lock(&m->m_mu);
			m->m_in.hi_sf_read_ms = rstart;
			take_slots(m, buf, now());
			pthread_mutex_unlock(&m->m_mu);
		}
		int64_t spent = now() - start;
		if (spent < m->m_t.ht_tick_ms)
			sleep_ms(m->m_t.ht_tick_ms - spent);
	}
	free(buf);
	return NULL;
}

/* --------------------------------------------------------- the beats */

static void send_beats(struct ha_monitor *m)
{
	char buf[1024];
	struct ha_word w;
	struct ha_member to[HA_MAX_HOSTS]; /* addresses may change (ha_monitor_update) */
	pthread_mutex_lock(&m->m_mu);
	our_word(m, ++m->m_beat_seq, &w);
	memcpy(to, m->m_cfg.hc_members, (size_t)m->m_cfg.hc_n * sizeof *to);
	pthread_mutex_unlock(&m->m_mu);
	int len = ha_word_encode(&w, m->m_cfg.hc_key, buf, sizeof buf);
	for (int i = 0; len > 0 && i < m->m_cfg.hc_n; i++)
		if (i != m->m_cfg.hc_self)
			ha_net_send(m->m_sock, &to[i], buf, (size_t)len);
}

static void take_beat(struct ha_monitor *m, const char *buf, size_t len)
{
	struct ha_word w;
	if (ha_word_decode(buf, len, m->m_cfg.hc_key, &w) < 0)
		return;
	int j = word_member(m, &w);
	if (j < 0)
		return;
	pthread_mutex_lock(&m->m_mu);
	/* a replayed or reordered beat of the same run is older: ignored */
	if (strcmp(w.hw_boot, m->m_boots[j]) == 0 && w.hw_seq <= m->m_seqs[j] && m->m_in.hi_peers[j].hp_net_ms >= 0) {
		pthread_mutex_unlock(&m->m_mu);
		return;
	}
	struct ha_peer *p = &m->m_in.hi_peers[j];
	m->m_seqs[j] = w.hw_seq;
	snprintf(m->m_boots[j], sizeof m->m_boots[j], "%s", w.hw_boot);
	p->hp_net_ms = now();
	p->hp_net_hears = w.hw_hears;
	p->hp_net_statefile = w.hw_statefile;
	p->hp_net_fenced = w.hw_fenced;
	p->hp_net_excluded = w.hw_excluded;
	pthread_mutex_unlock(&m->m_mu);
}

static void recv_beats(struct ha_monitor *m, int timeout_ms)
{
	struct pollfd p = {.fd = m->m_sock, .events = POLLIN};
	if (poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
		return;
	char buf[2048];
	for (int k = 0; k < 256; k++) {
		ssize_t n = recv(m->m_sock, buf, sizeof buf, MSG_DONTWAIT);
		if (n <= 0)
			return;
		take_beat(m, buf, (size_t)n);
	}
}

/* ------------------------------------------------------ the decision */

static const char *state_name(const struct ha_monitor *m)
{
	return m->m_failed ? "failed" : m->m_joining ? "joining" : "armed";
}

/* What the agent reports (under m_mu). */
static json_t *state_json(struct ha_monitor *m)
{
	const struct ha_verdict *v = &m->m_v;
	json_t *fenced = json_array();
	for (int i = 0; i < m->m_cfg.hc_n; i++)
		if (v->hv_fenced & HA_BIT(i))
			json_array_append_new(fenced, json_pack("{s:s, s:s}", "host", m->m_cfg.hc_members[i].hm_uuid,
								"boot", m->m_boots[i]));
	return json_pack("{s:s, s:s, s:i, s:b, s:o, s:o, s:o, s:o}", "generation", m->m_cfg.hc_generation, "state",
			 state_name(m), "rule", (int)v->hv_rule, "statefile", v->hv_statefile, "liveset",
			 ha_set_uuids(&m->m_cfg, v->hv_liveset), "hears", ha_set_uuids(&m->m_cfg, v->hv_hears),
			 "fenced", fenced, "excluded", ha_set_uuids(&m->m_cfg, v->hv_excluded));
}

static void notify(struct ha_monitor *m)
{
	uint64_t one = 1;
	if (m->m_notify >= 0 && write(m->m_notify, &one, sizeof one) < 0)
		log_debug("HA: notify: %s", strerror(errno));
}

static void fence(struct ha_monitor *m, const char *why);

/* One verdict: published, the watchdog kicked; true when we must fence. */
static bool decide(struct ha_monitor *m, const char **why)
{
	pthread_mutex_lock(&m->m_mu);
	m->m_in.hi_now_ms = m->m_ticked = now();
	m->m_in.hi_joining = m->m_joining;
	ha_decide(&m->m_in, &m->m_v);
	/* how long we have been outside the best partition */
	if (!m->m_v.hv_losing)
		m->m_in.hi_losing_ms = -1;
	else if (m->m_in.hi_losing_ms < 0)
		m->m_in.hi_losing_ms = m->m_in.hi_now_ms;
	if (m->m_joining && m->m_v.hv_formed) {
		m->m_joining = false;
		log_info("HA: joined the liveset (%d host(s))", ha_count(m->m_v.hv_liveset));
		m->m_in.hi_joining = false;
		ha_decide(&m->m_in, &m->m_v); /* the first armed verdict */
	} else if (m->m_joining && !m->m_failed && now() - m->m_in.hi_armed_ms > m->m_t.ht_join_ms) {
		m->m_failed = true;
		log_error("HA: the liveset did not form within %lld ms", (long long)m->m_t.ht_join_ms);
	}
	json_t *st = state_json(m);
	bool changed = !json_equal(st, m->m_state);
	json_decref(m->m_state);
	m->m_state = st;
	bool joining = m->m_joining;
	struct ha_verdict v = m->m_v;
	pthread_mutex_unlock(&m->m_mu);
	if (changed)
		notify(m);
	*why = v.hv_why;
	if (joining) {
		*why = "the HA watchdog is gone";
		return ha_fence_kick(m->m_fence, -1) < 0;
	}
	if (v.hv_rule == HA_FENCE)
		return true;
	if (ha_fence_kick(m->m_fence, v.hv_deadline_ms) < 0) {
		*why = "the watchdog could not be kicked (gone, or under a second of evidence left)";
		return true;
	}
	return false;
}

static void *mon_main(void *arg)
{
	struct ha_monitor *m = arg;
	int64_t next_beat = 0, next_tick = 0;
	for (;;) {
		pthread_mutex_lock(&m->m_mu);
		bool stop = m->m_stop;
		pthread_mutex_unlock(&m->m_mu);
		if (stop)
			break;
		int64_t t = now();
		if (t >= next_beat) {
			send_beats(m);
			next_beat = t + m->m_t.ht_beat_ms;
		}
		if (t >= next_tick) {
			const char *why = "";
			next_tick = t + m->m_t.ht_tick_ms;
			if (decide(m, &why))
				fence(m, why); /* does not return */
		}
		int64_t wait = (next_beat < next_tick ? next_beat : next_tick) - now();
		recv_beats(m, (int)wait);
	}
	return NULL;
}

/* ------------------------------------------------------------ fencing */

/* Our last word, in the slot (unless its writer is stuck) and in beats. */
static void last_word(struct ha_monitor *m)
{
	char buf[HA_SLOT_SIZE], err[256];
	struct ha_word w;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	if (pthread_mutex_timedlock(&m->m_write_mu, &ts) == 0) {
		pthread_mutex_lock(&m->m_mu);
		our_word(m, ++m->m_counter, &w);
		pthread_mutex_unlock(&m->m_mu);
		if (ha_word_encode(&w, m->m_cfg.hc_key, buf, sizeof buf) >= 0 &&
		    ha_statefile_write(m->m_cfg.hc_statefile, m->m_cfg.hc_self, buf, err, sizeof err) < 0)
			log_warn("HA: last word: %s", err);
		pthread_mutex_unlock(&m->m_write_mu);
	}
	for (int k = 0; k < 3; k++)
		send_beats(m);
}

static void fence(struct ha_monitor *m, const char *why)
{
	log_error("HA: fencing this host: %s", why);
	ha_fence_fire(m->m_fence); /* every domain gone before we say so */
	pthread_mutex_lock(&m->m_mu);
	m->m_fenced = true;
	pthread_mutex_unlock(&m->m_mu);
	last_word(m);
	log_error("HA: fenced; the agent exits (restart it to rejoin the pool)");
	_exit(3);
}

/* ------------------------------------------------------------- start */

struct ha_monitor *ha_monitor_start(const struct ha_config *cfg, const char *boot, struct ha_fence *f,
				    int notify_fd, char *err, size_t errlen)
{
	struct ha_monitor *m = xcalloc(1, sizeof *m);
	m->m_cfg = *cfg;
	ha_timing_for(cfg->hc_timeout_ms, &m->m_t);
	snprintf(m->m_boot, sizeof m->m_boot, "%s", boot);
	m->m_fence = f;
	m->m_notify = notify_fd;
	m->m_joining = true;
	pthread_mutex_init(&m->m_mu, NULL);
	pthread_mutex_init(&m->m_write_mu, NULL);
	m->m_in = (struct ha_input){.hi_n = cfg->hc_n, .hi_self = cfg->hc_self, .hi_timing = m->m_t,
				    .hi_sf_write_ms = -1, .hi_sf_read_ms = -1, .hi_armed_ms = now(),
				    .hi_joining = true, .hi_expect = cfg->hc_expect, .hi_losing_ms = -1};
	m->m_ticked = now();
	for (int i = 0; i < HA_MAX_HOSTS; i++)
		m->m_in.hi_peers[i].hp_net_ms = m->m_in.hi_peers[i].hp_slot_ms = -1;
	const struct ha_member *me = &cfg->hc_members[cfg->hc_self];
	m->m_sock = ha_net_open(me->hm_address, me->hm_port, err, errlen);
	if (m->m_sock < 0 || ha_statefile_prepare(cfg->hc_statefile, err, errlen) < 0) {
		ha_monitor_stop(m);
		return NULL;
	}
	m->m_state = json_object();
	m->m_sf_started = pthread_create(&m->m_sf_thread, NULL, sf_main, m) == 0;
	m->m_mon_started = m->m_sf_started && pthread_create(&m->m_mon_thread, NULL, mon_main, m) == 0;
	if (!m->m_mon_started) {
		errf(err, errlen, "HA: cannot start its threads");
		ha_monitor_stop(m);
		return NULL;
	}
	log_info("HA armed: generation %s, %d host(s), timeout %llds, beats every %lld ms, statefile every %lld ms",
		 cfg->hc_generation, cfg->hc_n, (long long)(cfg->hc_timeout_ms / 1000), (long long)m->m_t.ht_beat_ms,
		 (long long)m->m_t.ht_statefile_ms);
	return m;
}

int ha_monitor_update(struct ha_monitor *m, const struct ha_config *cfg)
{
	pthread_mutex_lock(&m->m_mu);
	bool same = strcmp(cfg->hc_generation, m->m_cfg.hc_generation) == 0 && cfg->hc_n == m->m_cfg.hc_n &&
		    cfg->hc_self == m->m_cfg.hc_self && !m->m_failed;
	for (int i = 0; same && i < cfg->hc_n; i++)
		same = strcmp(cfg->hc_members[i].hm_uuid, m->m_cfg.hc_members[i].hm_uuid) == 0;
	bool moved = false;
	for (int i = 0; same && i < cfg->hc_n; i++) {
		struct ha_member *a = &m->m_cfg.hc_members[i];
		const struct ha_member *b = &cfg->hc_members[i];
		if (i != cfg->hc_self && (strcmp(a->hm_address, b->hm_address) || a->hm_port != b->hm_port)) {
			*a = *b;
			moved = true;
		}
	}
	pthread_mutex_unlock(&m->m_mu);
	if (moved)
		log_info("HA: a peer's address changed: beats go to its new one");
	return same ? 0 : -1;
}

json_t *ha_monitor_state(struct ha_monitor *m)
{
	pthread_mutex_lock(&m->m_mu);
	json_t *s = json_deep_copy(m->m_state);
	pthread_mutex_unlock(&m->m_mu);
	return s;
}

void ha_monitor_stop(struct ha_monitor *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->m_mu);
	m->m_stop = true;
	m->m_excluded = true;
	pthread_mutex_unlock(&m->m_mu);
	if (m->m_mon_started)
		pthread_join(m->m_mon_thread, NULL);
	if (m->m_sf_started)
		pthread_join(m->m_sf_thread, NULL);
	if (m->m_sf_started && m->m_sock >= 0)
		last_word(m); /* excluded: the peers stop counting on us */
	ha_fence_free(m->m_fence);
	if (m->m_sock >= 0)
		close(m->m_sock);
	json_decref(m->m_state);
	pthread_mutex_destroy(&m->m_mu);
	pthread_mutex_destroy(&m->m_write_mu);
	free(m);
	log_info("HA disarmed on this host");
}
