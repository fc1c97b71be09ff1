/*
 * lease.c - the pool master's lease in the statefile header (bytes
 * HA_LEASE_OFFSET..HA_SLOT_SIZE): who is master, under which epoch, and
 * the pure rule every poold applies to it (see ha.h).
 *
 * Only the holder writes the lease, renewing it every renew interval; it
 * may accept writes until hold after the start of its last renewal that
 * counted, and only while its own host's agent says the host is in the
 * liveset. A renewal counts when it started while the lease was still
 * valid and reached the statefile within half a renew interval. Any other
 * poold counts the lease expired take after it last saw it change (or at
 * once when the holder released it), deciding on a read younger than half
 * a renew interval. Why that is safe: an observer sees every renewal that
 * completed before its read began; at most one more can have started in
 * the half interval before that read and counted (renewals are a renew
 * interval apart), and it started while the last one it saw was valid, so
 * the holder is valid at most 2 * hold after a renewal the observer saw:
 * hold <= take / 2 makes the holder stop before anyone starts. Among the
 * standbys the
 * lowest uuid of the liveset goes first, the next a step later, and so
 * on, so a standby that cannot take over never blocks the others. The
 * database's own lock (one writer at a time) settles two standbys that
 * decide at the same instant: the rule only says when one may try.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ha.h"


void ha_lease_timing_for(int64_t timeout_ms, struct ha_lease_timing *lt)
{
	struct ha_timing t;
	ha_timing_for(timeout_ms, &t);
	int64_t renew = t.ht_statefile_ms < timeout_ms / 10 ? t.ht_statefile_ms : timeout_ms / 10;
	int64_t take = timeout_ms + t.ht_margin_ms;     /* the peers' wait for a silent host */
	int64_t hold = t.ht_sf_lost_ms;                 /* T - settle: when the statefile counts as lost */
	if (hold > take / 2 - t.ht_tick_ms)
		hold = take / 2 - t.ht_tick_ms;
	*lt = (struct ha_lease_timing){
		.lt_renew_ms = renew,
		.lt_hold_ms = hold,
		.lt_take_ms = take,
		.lt_step_ms = 2 * renew + t.ht_tick_ms,         /* the next standby's extra wait */
		.lt_slot_live_ms = t.ht_slot_live_ms,
		.lt_tick_ms = t.ht_tick_ms,
	};
}

/* ------------------------------------------------------------ codec */

int ha_lease_encode(const struct ha_lease *l, const unsigned char *key, char *buf, size_t len)
{
	char capable[20];
	snprintf(capable, sizeof capable, "%016llx", (unsigned long long)l->hl_capable);
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:i, s:I, s:s, s:b, s:b}", "g", l->hl_generation, "e",
			      (json_int_t)l->hl_epoch, "h", l->hl_holder, "r", l->hl_run, "a", l->hl_address, "p",
			      l->hl_port, "n", (json_int_t)l->hl_seq, "c", capable, "rel", l->hl_released, "off",
			      l->hl_off);
	return ha_signed_encode(o, key, buf, len);
}

int ha_lease_decode(const char *buf, size_t len, const unsigned char *key, struct ha_lease *out)
{
	memset(out, 0, sizeof *out);
	json_t *o = ha_signed_decode(buf, len, key);
	const char *cap = json_string_value(json_object_get(o, "c"));
	unsigned long long c;
	int rc = -1;
	if (json_is_object(o) && ha_json_str(o, "g", out->hl_generation, sizeof out->hl_generation) &&
	    ha_json_str(o, "h", out->hl_holder, sizeof out->hl_holder) && ha_json_str(o, "r", out->hl_run, sizeof out->hl_run) &&
	    ha_json_str(o, "a", out->hl_address, sizeof out->hl_address) && json_is_integer(json_object_get(o, "e")) &&
	    json_is_integer(json_object_get(o, "n")) && json_is_integer(json_object_get(o, "p")) && cap &&
	    sscanf(cap, "%16llx", &c) == 1) {
		out->hl_epoch = (uint64_t)json_integer_value(json_object_get(o, "e"));
		out->hl_seq = (uint64_t)json_integer_value(json_object_get(o, "n"));
		out->hl_port = (int)json_integer_value(json_object_get(o, "p"));
		out->hl_capable = (ha_set)c;
		out->hl_released = json_is_true(json_object_get(o, "rel"));
		out->hl_off = json_is_true(json_object_get(o, "off"));
		rc = 0;
	}
	json_decref(o);
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}

/* ------------------------------------------------------------- rule */

bool ha_lease_renewal_counts(const struct ha_lease_timing *t, int64_t start_ms, int64_t end_ms, int64_t valid_until_ms,
			     bool acquiring)
{
	return start_ms >= 0 && end_ms >= start_ms && end_ms - start_ms <= t->lt_renew_ms / 2 &&
	       (acquiring || start_ms < valid_until_ms);
}

bool ha_lease_standby_capable(bool told_current, int64_t sync_ms, int64_t beat_ms, int64_t now_ms, int64_t fresh_ms)
{
	return told_current && sync_ms >= 0 && (now_ms - sync_ms < fresh_ms || beat_ms < sync_ms + fresh_ms);
}

static bool lease_fresh(int64_t at, int64_t now, int64_t limit)
{
	return at >= 0 && now - at < limit;
}

/* Does this host's own agent say it stays up (its slot keeps changing,
 * it is in its own liveset, nothing says it is losing or gone)? */
static const char *lease_host_down(const struct ha_lease_view *v)
{
	if (!lease_fresh(v->lv_self_slot_ms, v->lv_now_ms, v->lv_t.lt_slot_live_ms))
		return "this host's agent is silent in the statefile";
	if (v->lv_self_fenced || v->lv_self_excluded)
		return "this host's agent has fenced or left HA";
	if (v->lv_self_losing)
		return "this host's agent is losing the liveset";
	if (!(v->lv_self_liveset & HA_BIT(v->lv_self)))
		return "this host is not in its agent's liveset";
	return NULL;
}

static void lease_holder(const struct ha_lease_view *v, struct ha_lease_verdict *out)
{
	const struct ha_lease *l = &v->lv_lease;
	const char *down = lease_host_down(v);
	out->lv_valid_until_ms = -1;
	if (v->lv_lease_valid && (l->hl_epoch > v->lv_epoch || (l->hl_epoch == v->lv_epoch && v->lv_holder != v->lv_self))) {
		out->lv_act = HA_LEASE_STEP_DOWN;
		out->lv_why = "another master holds the lease";
	} else if (down) {
		out->lv_act = HA_LEASE_STEP_DOWN;
		out->lv_why = down;
	} else if (v->lv_renewed_ms < 0 || v->lv_now_ms - v->lv_renewed_ms >= v->lv_t.lt_hold_ms) {
		out->lv_act = HA_LEASE_STEP_DOWN;
		out->lv_why = "the lease was not renewed in time";
	} else {
		out->lv_act = HA_LEASE_RENEW;
		out->lv_valid_until_ms = v->lv_renewed_ms + v->lv_t.lt_hold_ms;
		out->lv_why = "holding the lease";
	}
}

/* This standby's place among those who may take over: the liveset's
 * master-capable members by uuid, the holder that let its lease go last. */
static int lease_rank(const struct ha_lease_view *v)
{
	ha_set cand = v->lv_self_liveset & v->lv_lease.hl_capable;
	if (!(cand & HA_BIT(v->lv_self)))
		return -1;
	if (v->lv_holder == v->lv_self)
		return ha_count(cand) - 1;
	int rank = 0;
	for (int i = 0; i < v->lv_self; i++)
		if ((cand & HA_BIT(i)) && i != v->lv_holder)
			rank++;
	return rank;
}

static void lease_standby(const struct ha_lease_view *v, struct ha_lease_verdict *out)
{
	const struct ha_lease *l = &v->lv_lease;
	const char *down = lease_host_down(v);
	out->lv_act = HA_LEASE_IDLE;
	if (!v->lv_lease_valid) {
		out->lv_why = "no lease of this HA in the statefile";
		return;
	}
	if (l->hl_off) {
		out->lv_why = "HA is off: the master moves only by hand";
		return;
	}
	if (!lease_fresh(v->lv_read_ms, v->lv_now_ms, v->lv_t.lt_hold_ms)) {
		out->lv_why = "the statefile is not readable from here";
		return;
	}
	bool read_now = lease_fresh(v->lv_read_ms, v->lv_now_ms, v->lv_t.lt_renew_ms / 2);
	if (down) {
		out->lv_why = down;
		return;
	}
	if (v->lv_lease_seen_ms < 0) {
		out->lv_why = "the lease has not been watched yet";
		return;
	}
	out->lv_rank = lease_rank(v);
	if (out->lv_rank < 0) {
		out->lv_why = "this host is not a master candidate in the liveset";
		return;
	}
	int64_t expired = v->lv_lease_seen_ms + (l->hl_released ? 0 : v->lv_t.lt_take_ms);
	out->lv_take_at_ms = expired + out->lv_rank * v->lv_t.lt_step_ms;
	if (v->lv_now_ms >= out->lv_take_at_ms && read_now) {
		out->lv_act = HA_LEASE_TAKE;
		out->lv_why = l->hl_released ? "the master released the lease" : "the master's lease expired";
	} else {
		out->lv_act = HA_LEASE_WAIT;
		out->lv_why = v->lv_now_ms >= out->lv_take_at_ms ? "waiting for a fresh read of the statefile"
			      : l->hl_released				? "the master released the lease: an earlier standby goes first"
										: "the master's lease is current";
	}
}

void ha_lease_decide(const struct ha_lease_view *v, struct ha_lease_verdict *out)
{
	memset(out, 0, sizeof *out);
	out->lv_valid_until_ms = -1;
	out->lv_take_at_ms = -1;
	out->lv_rank = -1;
	if (v->lv_holding)
		lease_holder(v, out);
	else
		lease_standby(v, out);
}
