/*
 * api_host.c - hosts joining the pool, leaving it, enabled and disabled
 * (their heartbeats and liveness: heartbeat.c).
 *
 * An operator makes a one-time join token (pool.create_join_token, `xe
 * pool-join-token-create`). The agent fetches the pool CA
 * (pool.get_ca_certificate), checks its fingerprint against the one
 * `poold init` printed, and calls host.join(token, CSR, report) over TLS
 * verified against that CA. In one transaction poold uses the token up,
 * checks the CPU vendor (HOSTS_NOT_HOMOGENEOUS), records the host and its
 * metrics, re-levels the pool's CPU features and signs the CSR with the
 * host's uuid as CN: either all of it happens or none. From then on the
 * agent's certificate is its credential: host.heartbeat accepts only a
 * verified pool certificate and takes the host from its CN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "cpuid.h"
#include "log.h"
#include "poold.h"
#include "tls.h"
#include "version.h"
#include "xerr.h"
#include "util.h"

#define BEAT_FULL_SECONDS 30

void join_token_hash(const char *text, char *out)
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* ------------------------------------------------------------- tokens */

struct token_ctx {
	char hash[65];
	int64_t expires;
};

static json_t *token_txn(struct db *db, void *ctx)
{
	struct token_ctx *t = ctx;
	return db_token_add(db, t->hash, t->expires);
}

json_t *pool_create_join_token(struct api_call *c)
{
	json_int_t ttl = conf_duration_ms(c->ac_pd->pd_conf, "join-token-lifetime") / 1000;
	if (json_array_size(c->ac_args) >= 1) {
		json_t *e = api_arg_int(c, 0, "expiry_seconds", &ttl);
		if (e)
			return e;
		if (ttl < 1 || ttl > 30 * 86400) {
			char v[32];
			snprintf(v, sizeof v, "%lld", (long long)ttl);
			return xerr_new(XE_INVALID_VALUE, "expiry_seconds", v, NULL);
		}
	}
	unsigned char raw[24];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return xerr_newf(XE_INTERNAL_ERROR, "no randomness for a token");
	char token[64];
	EVP_EncodeBlock((unsigned char *)token, raw, sizeof raw);
	for (char *p = token; *p; p++) /* URL- and shell-safe */
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	struct token_ctx t;
	join_token_hash(token, t.hash);
	t.expires = (int64_t)time(NULL) + ttl;
	json_t *e = db_txn(c->ac_pd->pd_db, token_txn, &t);
	if (e)
		return e;
	c->ac_result = json_string(token);
	return NULL;
}

json_t *pool_get_ca_certificate(struct api_call *c)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/ca.pem", c->ac_pd->pd_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return xerr_newf(XE_INTERNAL_ERROR, "cannot read the pool CA certificate");
	char buf[16384];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	c->ac_result = json_string(buf);
	return NULL;
}

/* --------------------------------------------------------------- join */

/* The pool's CPU level: the AND of every host's feature set, stored in
 * pool.cpu_info as XAPI does. -1 and HOSTS_NOT_HOMOGENEOUS in *err when
 * the vendors differ. */
static json_t *pool_relevel(struct db *db, const char *pool)
{
	json_t *hosts = db_find(db, "host", NULL, NULL);
	struct cpuid_host ch[256];
	size_t n = 0;
	const char *ref;
	json_t *h;
	json_object_foreach(hosts, ref, h) {
		json_t *cpu = json_object_get(h, "cpu_info");
		if (n < 256 && *jstr(cpu, "vendor"))
			ch[n++] = (struct cpuid_host){jstr(cpu, "vendor"), jstr(cpu, "features"), jstr(h, "name_label")};
	}
	struct cpuid_set level;
	char reason[512], text[9 * CPUID_MAX_WORDS + 1];
	json_t *e = NULL;
	if (n == 0) {
		json_decref(hosts);
		return NULL;
	}
	if (cpuid_pool_level(ch, n, &level, reason, sizeof reason) < 0) {
		e = xerr_new(XE_HOSTS_NOT_HOMOGENEOUS, reason, NULL);
	} else {
		cpuid_format(&level, text, sizeof text);
		e = db_obj_set(db, pool, "cpu_info",
			       json_pack("{s:s, s:s, s:s}", "vendor", ch[0].ch_vendor, "features", text,
					 "features_hvm", text));
	}
	json_decref(hosts);
	return e;
}

struct join_ctx {
	struct poold *pd;
	const char *token, *csr;
	struct host_report rep;
	char host_ref[64], host_uuid[48];
	char *cert;
};

/* The host object poold init made for the master's machine, while no
 * agent has claimed it: the first agent to join becomes it. */
static bool master_unclaimed(struct db *db, const char *master, json_t **rec)
{
	*rec = db_obj_get(db, master);
	return *rec && !*jstr(json_object_get(*rec, "other_config"), "agent_address");
}

/* The name a host's certificate carries: its address (validated by
 * host_join), unless the master's certificate names it too. An agent on
 * the master's machine is a host like any other, and no host may present
 * itself under a name clients reach the master by. NULL: no name (the
 * host's identity is its CN, its uuid, either way). */
static const char *join_cert_name(struct poold *pd, const char *address)
{
	char cert[4200];
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	char err[300] = "";
	char **master = tls_cert_names(cert, err, sizeof err);
	bool taken = master && tls_names_contain((const char *const *)master, address);
	tls_names_free(master);
	if (!master)
		log_warn("%s: the host's certificate gets no name", err);
	else if (taken)
		log_warn("host address %s is also a name of the master's certificate: not put in the host's", address);
	return master && !taken ? address : NULL;
}

static json_t *join_txn(struct db *db, void *ctx)
{
	struct join_ctx *j = ctx;
	struct poold *pd = j->pd;
	char hash[65];
	join_token_hash(j->token, hash);
	free(j->cert);
	j->cert = NULL;
	json_t *e = db_token_use(db, hash, (int64_t)time(NULL));
	if (e)
		return e;
	json_t *fields = host_report_fields(&j->rep);
	char port[16];
	snprintf(port, sizeof port, "%lld", (long long)j->rep.port);
	json_object_set_new(json_object_get(fields, "other_config"), "agent_port", json_string(port));
	json_t *master;
	char now[32];
	model_now(now);
	if (master_unclaimed(db, pd->pd_host_ref, &master)) {
		snprintf(j->host_ref, sizeof j->host_ref, "%s", pd->pd_host_ref);
		snprintf(j->host_uuid, sizeof j->host_uuid, "%s", jstr(master, "uuid"));
		e = db_obj_update(db, j->host_ref, fields);
		const char *mref = jstr(master, "metrics");
		if (!e)
			e = db_obj_update_new(db, mref, json_pack("{s:I, s:I, s:b, s:s}", "memory_total",
							      j->rep.memory_total, "memory_free", j->rep.memory_free,
							      "live", 1, "last_updated", now));
	} else {
		char mref[64];
		e = db_obj_create_new(db, "host_metrics",
				  json_pack("{s:I, s:I, s:b, s:s}", "memory_total", j->rep.memory_total, "memory_free",
					    j->rep.memory_free, "live", 1, "last_updated", now),
				  mref);
		json_object_set_new(fields, "metrics", json_string(mref));
		json_object_set_new(fields, "enabled", json_true());
		if (!e)
			e = db_obj_create(db, "host", fields, j->host_ref);
		json_t *h = e ? NULL : db_obj_get(db, j->host_ref);
		snprintf(j->host_uuid, sizeof j->host_uuid, "%s", jstr(h, "uuid"));
		json_decref(h);
	}
	json_decref(master);
	json_decref(fields);
	if (!e)
		e = host_pifs_sync(db, j->host_ref, &j->rep);
	if (!e)
		e = pool_relevel(db, pd->pd_pool_ref);
	if (e)
		return e;
	char ca[4200], cakey[4200], err[512] = "";
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	snprintf(cakey, sizeof cakey, "%s/ca.key", pd->pd_dir);
	const char *names[2] = {join_cert_name(pd, j->rep.address), NULL};
	j->cert = tls_csr_sign(ca, cakey, j->csr, j->host_uuid, names, 3650, err, sizeof err);
	if (!j->cert)
		return xerr_new(XE_INVALID_VALUE, "csr", err, NULL);
	return NULL;
}

/* The running VMs that could not move to the joining host: they booted
 * with CPU features it lacks (see cpuid.h for why this is the test). */
static json_t *join_warnings(struct db *db, const struct host_report *rep)
{
	json_t *vms = db_find(db, "VM", NULL, NULL), *out = json_array();
	size_t n = json_object_size(vms), k = 0;
	struct cpuid_vm *cv = calloc(n ? n : 1, sizeof *cv);
	struct cpuid_stranded *st = calloc(n ? n : 1, sizeof *st);
	const char *ref;
	json_t *v;
	json_object_foreach(vms, ref, v) {
		const char *ps = jstr(v, "power_state");
		json_t *flags = json_object_get(v, "last_boot_CPU_flags");
		if ((strcmp(ps, "Running") && strcmp(ps, "Paused")) || !*jstr(flags, "features"))
			continue;
		cv[k++] = (struct cpuid_vm){jstr(v, "name_label"), jstr(flags, "vendor"), jstr(flags, "features")};
	}
	char reason[256], line[512];
	int ns = cv && st ? cpuid_join_stranded(cv, k, rep->vendor, rep->features, st, k, reason, sizeof reason) : 0;
	for (int i = 0; i < ns && (size_t)i < k; i++) {
		cpuid_stranded_describe(&st[i], cv[st[i].st_vm].cv_vendor, rep->vendor, line, sizeof line);
		json_array_append_new(out, json_string(line));
	}
	free(cv);
	free(st);
	json_decref(vms);
	return out;
}

json_t *host_join(struct api_call *c)
{
	struct join_ctx j = {c->ac_pd, NULL, NULL, {0}, "", "", NULL};
	json_t *report, *e = api_arg_str(c, 0, "token", &j.token);
	if (e || (e = api_arg_str(c, 1, "csr", &j.csr)) || (e = api_arg_obj(c, 2, "report", &report)) ||
	    (e = host_report_parse(report, &j.rep)))
		return e;
	/* the same name twice is an operator's mistake, not a new host */
	json_t *same = db_refs_by_name(c->ac_pd->pd_db, "host", j.rep.name);
	json_t *m = db_obj_get(c->ac_pd->pd_db, c->ac_pd->pd_host_ref);
	bool dup = json_array_size(same) > 0 &&
		   !(json_array_size(same) == 1 &&
		     strcmp(json_string_value(json_array_get(same, 0)), c->ac_pd->pd_host_ref) == 0 &&
		     !*jstr(json_object_get(m, "other_config"), "agent_address"));
	json_decref(same);
	json_decref(m);
	if (dup)
		return xerr_new(XE_INVALID_VALUE, "name_label", j.rep.name, NULL);
	if ((e = rpu_report_check(c->ac_pd, NULL, &j.rep))) /* the master is upgraded first */
		return e;
	json_t *warnings = join_warnings(c->ac_pd->pd_db, &j.rep);
	e = db_txn(c->ac_pd->pd_db, join_txn, &j);
	if (e) {
		free(j.cert);
		char *s = xerr_to_text(e);
		log_warn("host '%s' (%s) refused: %s", j.rep.name, j.rep.address, s ? s : "?");
		free(s);
		json_decref(warnings);
		return e;
	}
	host_seen(c->ac_pd, j.host_ref);
	log_info("host '%s' joined from %s:%lld as %s", j.rep.name, j.rep.address, (long long)j.rep.port,
		 j.host_uuid);
	size_t i;
	json_t *w;
	json_array_foreach(warnings, i, w)
		log_warn("host '%s' lowers the pool's CPU level: %s; it can run there after a reboot", j.rep.name,
			 json_string_value(w));
	c->ac_result = json_pack("{s:s, s:s, s:s, s:o}", "host_ref", j.host_ref, "host_uuid", j.host_uuid,
				 "certificate", j.cert, "warnings", warnings);
	free(j.cert);
	return NULL;
}

/* ---------------------------------------------------------- host.destroy */

struct destroy_ctx {
	struct poold *pd;
	const char *host;
};

json_t *host_records_remove(struct poold *pd, struct db *db, const char *host)
{
	json_t *h, *e = db_obj_get_checked(db, "host", host, &h);
	if (e)
		return e;
	const char *classes[2] = {"PBD", "PIF"};
	for (int i = 0; i < 2 && !e; i++) {
		json_t *objs = db_find(db, classes[i], "host", host);
		const char *k;
		json_t *v;
		json_object_foreach(objs, k, v) if (!e) e = db_obj_destroy(db, k);
		json_decref(objs);
	}
	/* its control domain and that VM's metrics go with it */
	json_t *cd = NULL;
	const char *dom0 = jstr(h, "control_domain");
	json_t *gone = *dom0 && strcmp(dom0, MODEL_NULL_REF) ? db_obj_get_checked(db, "VM", dom0, &cd) : NULL;
	json_decref(gone); /* no such VM: nothing to remove */
	if (!e && !gone && cd && json_is_true(json_object_get(cd, "is_control_domain"))) {
		const char *cm = jstr(cd, "metrics");
		e = db_obj_destroy(db, dom0);
		if (!e && *cm && strcmp(cm, MODEL_NULL_REF) && db_obj_class(db, cm, (char[32]){0}, 32))
			e = db_obj_destroy(db, cm);
	}
	json_decref(cd);
	const char *m = jstr(h, "metrics");
	if (!e && *m && db_obj_class(db, m, (char[32]){0}, 32))
		e = db_obj_destroy(db, m);
	if (!e)
		e = db_obj_destroy(db, host);
	/* the pool's CPU level may rise now that this host is gone */
	if (!e)
		e = pool_relevel(db, pd->pd_pool_ref);
	json_decref(h);
	return e;
}

static json_t *host_destroy_txn(struct db *db, void *ctx)
{
	struct destroy_ctx *d = ctx;
	json_t *h, *e = db_obj_get_checked(db, "host", d->host, &h);
	if (e)
		return e;
	json_t *m = db_obj_get(db, jstr(h, "metrics"));
	json_t *vms = db_find(db, "VM", "resident_on", d->host);
	/* the control domain goes with its host (host_records_remove) */
	const char *dom0 = jstr(h, "control_domain");
	json_t *cd = json_object_get(vms, dom0);
	if (cd && json_is_true(json_object_get(cd, "is_control_domain")))
		json_object_del(vms, dom0);
	if (strcmp(d->host, d->pd->pd_pool_ref) == 0 || strcmp(d->host, d->pd->pd_host_ref) == 0)
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "host %s is the pool master's own host", d->host);
	else if (json_is_true(json_object_get(m, "live")))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "host %s is live: stop its agent first", d->host);
	else if (json_object_size(vms))
		e = xerr_new(XE_HOST_HAS_RESIDENT_VMS, d->host, NULL);
	json_decref(vms);
	json_decref(m);
	json_decref(h);
	return e ? e : host_records_remove(d->pd, db, d->host);
}

/* host.destroy(host): forget a host that is gone for good (not live, no
 * VMs); the pool's CPU level is recomputed without it. */
json_t *host_destroy(struct api_call *c)
{
	struct destroy_ctx d = {c->ac_pd, NULL};
	json_t *e = api_arg_ref(c, 0, "host", &d.host);
	if (e || (e = db_txn(c->ac_pd->pd_db, host_destroy_txn, &d)))
		return e;
	host_forget_seen(c->ac_pd, d.host);
	agent_link_forget(c->ac_pd, d.host);
	log_info("host %s removed from the pool", d.host);
	return NULL;
}

/* ------------------------------------------------------ enable/disable */

static json_t *enable_txn(struct db *db, void *ctx)
{
	json_t **a = ctx;
	return db_obj_set(db, json_string_value(a[0]), "enabled", json_incref(a[1]));
}

static json_t *host_set_enabled(struct api_call *c, bool on)
{
	const char *host;
	json_t *e = api_arg_ref(c, 0, "host", &host);
	if (e || (!on && (e = ha_check_disable(c->ac_pd->pd_db, host)))) /* HA admission */
		return e;
	json_t *a[2] = {json_string(host), json_boolean(on)};
	e = db_txn(c->ac_pd->pd_db, enable_txn, a);
	json_decref(a[0]);
	json_decref(a[1]);
	return e;
}

/* A disabled host takes no new VMs (VM.start answers HOST_DISABLED). */
json_t *host_disable(struct api_call *c)
{
	return host_set_enabled(c, false);
}

json_t *host_enable(struct api_call *c)
{
	return host_set_enabled(c, true);
}

