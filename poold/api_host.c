/*
 * api_host.c - hosts joining the pool, their heartbeats, their liveness.
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

#define BEAT_FULL_SECONDS 30

static int64_t mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec;
}

static void sha256_hex(const char *text, char *out)
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
	sha256_hex(token, t.hash);
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

/* What an agent reports about its host (join and every heartbeat). */
struct host_report {
	const char *name, *hostname, *address, *migration_address, *backend, *version, *vendor, *features;
	json_int_t port, memory_total, memory_free, cpus;
};

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static json_t *report_parse(json_t *r, struct host_report *out)
{
	if (!json_is_object(r))
		return xerr_new(XE_FIELD_TYPE_ERROR, "report", NULL);
	json_t *cpu = json_object_get(r, "cpu_info");
	*out = (struct host_report){str(r, "name_label"), str(r, "hostname"), str(r, "address"),
				    str(r, "migration_address"), str(r, "backend"), str(r, "product_version"),
				    str(cpu, "vendor"), str(cpu, "features"),
				    json_integer_value(json_object_get(r, "port")),
				    json_integer_value(json_object_get(r, "memory_total")),
				    json_integer_value(json_object_get(r, "memory_free")),
				    json_integer_value(json_object_get(cpu, "cpu_count"))};
	struct cpuid_set set;
	if (!*out->name || !*out->address || out->port <= 0 || out->port > 65535 || out->memory_total <= 0 ||
	    !*out->vendor || cpuid_parse(out->features, &set) < 0 || !*out->version)
		return xerr_new(XE_INVALID_VALUE, "report",
				"needs name_label, address, port, memory_total, product_version and cpu_info "
				"{vendor, features (XAPI feature-set form)}",
				NULL);
	return NULL;
}

static json_t *host_fields(const struct host_report *r)
{
	char cpus[16];
	snprintf(cpus, sizeof cpus, "%lld", (long long)r->cpus);
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}",
			 "name_label", r->name, "hostname", *r->hostname ? r->hostname : r->name, "address",
			 r->address, "software_version", "product_brand", POOLD_PRODUCT, "product_version",
			 r->version, "platform_name", POOLD_PRODUCT, "xapi", r->version, "backend", r->backend,
			 "cpu_info", "vendor", r->vendor, "features", r->features, "cpu_count", cpus,
			 "other_config", "agent_address", r->address, "agent_port", "", "migration_address",
			 r->migration_address);
}

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
		if (n < 256 && *str(cpu, "vendor"))
			ch[n++] = (struct cpuid_host){str(cpu, "vendor"), str(cpu, "features"), str(h, "name_label")};
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
	return *rec && !*str(json_object_get(*rec, "other_config"), "agent_address");
}

/* The pool-wide network of a device (XAPI names them after the NIC):
 * found by name, created on first use. */
static json_t *device_network(struct db *db, const char *device, int index, char *ref)
{
	char name[96];
	snprintf(name, sizeof name, "Pool-wide network associated with %s", device);
	json_t *refs = db_refs_by_name(db, "network", name);
	const char *r = json_string_value(json_array_get(refs, 0));
	json_t *e = NULL;
	if (r)
		snprintf(ref, 64, "%s", r);
	else {
		char bridge[24];
		snprintf(bridge, sizeof bridge, "xenbr%d", index);
		e = db_obj_create_new(db, "network", json_pack("{s:s, s:s, s:I}", "name_label", name, "bridge", bridge, "MTU", 1500),
				      ref);
	}
	json_decref(refs);
	return e;
}

/* A host's addresses as PIFs: eth0 the management address, eth1 the
 * migration address when the agent has one. VM.pool_migrate's `network`
 * option finds the destination's address on that network here. */
static json_t *host_pifs_sync(struct db *db, const char *host, const struct host_report *r)
{
	const char *addr[2] = {r->address, r->migration_address};
	json_t *pifs = db_find(db, "PIF", "host", host), *e = NULL;
	for (int i = 0; i < 2 && !e; i++) {
		char device[16], net[64] = "", have[64] = "";
		snprintf(device, sizeof device, "eth%d", i);
		const char *k;
		json_t *p;
		json_object_foreach(pifs, k, p) if (strcmp(str(p, "device"), device) == 0) snprintf(have, sizeof have, "%s", k);
		if (!addr[i] || !*addr[i]) {
			if (*have)
				e = db_obj_destroy(db, have);
			continue;
		}
		json_t *cur = *have ? json_object_get(pifs, have) : NULL;
		if (cur && strcmp(str(cur, "IP"), addr[i]) == 0)
			continue;
		if (cur) {
			e = db_obj_set(db, have, "IP", json_string(addr[i]));
			continue;
		}
		if ((e = device_network(db, device, i, net)))
			break;
		char pref[64];
		e = db_obj_create_new(db, "PIF",
				      json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:I}", "device", device, "host", host,
						"network", net, "IP", addr[i], "management", i == 0, "currently_attached", 1,
						"ip_configuration_mode", "Static", "MTU", 1500),
				      pref);
	}
	json_decref(pifs);
	return e;
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
	sha256_hex(j->token, hash);
	free(j->cert);
	j->cert = NULL;
	json_t *e = db_token_use(db, hash, (int64_t)time(NULL));
	if (e)
		return e;
	json_t *fields = host_fields(&j->rep);
	char port[16];
	snprintf(port, sizeof port, "%lld", (long long)j->rep.port);
	json_object_set_new(json_object_get(fields, "other_config"), "agent_port", json_string(port));
	json_t *master;
	char now[32];
	model_now(now);
	if (master_unclaimed(db, pd->pd_host_ref, &master)) {
		snprintf(j->host_ref, sizeof j->host_ref, "%s", pd->pd_host_ref);
		snprintf(j->host_uuid, sizeof j->host_uuid, "%s", str(master, "uuid"));
		e = db_obj_update(db, j->host_ref, fields);
		const char *mref = str(master, "metrics");
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
		snprintf(j->host_uuid, sizeof j->host_uuid, "%s", str(h, "uuid"));
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
		const char *ps = str(v, "power_state");
		json_t *flags = json_object_get(v, "last_boot_CPU_flags");
		if ((strcmp(ps, "Running") && strcmp(ps, "Paused")) || !*str(flags, "features"))
			continue;
		cv[k++] = (struct cpuid_vm){str(v, "name_label"), str(flags, "vendor"), str(flags, "features")};
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
	    (e = report_parse(report, &j.rep)))
		return e;
	/* these go into the host's certificate and records: names, not text */
	if (tls_name_kind(j.rep.address, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "address", j.rep.address, NULL);
	if (*j.rep.migration_address && tls_name_kind(j.rep.migration_address, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "migration_address", j.rep.migration_address, NULL);
	/* the same name twice is an operator's mistake, not a new host */
	json_t *same = db_refs_by_name(c->ac_pd->pd_db, "host", j.rep.name);
	json_t *m = db_obj_get(c->ac_pd->pd_db, c->ac_pd->pd_host_ref);
	bool dup = json_array_size(same) > 0 &&
		   !(json_array_size(same) == 1 &&
		     strcmp(json_string_value(json_array_get(same, 0)), c->ac_pd->pd_host_ref) == 0 &&
		     !*str(json_object_get(m, "other_config"), "agent_address"));
	json_decref(same);
	json_decref(m);
	if (dup)
		return xerr_new(XE_INVALID_VALUE, "name_label", j.rep.name, NULL);
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
	json_object_set_new(c->ac_pd->pd_host_seen, j.host_ref, json_integer(mono_s()));
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

static json_t *host_destroy_txn(struct db *db, void *ctx)
{
	struct destroy_ctx *d = ctx;
	json_t *h, *e = db_obj_get_checked(db, "host", d->host, &h);
	if (e)
		return e;
	json_t *m = db_obj_get(db, str(h, "metrics"));
	json_t *vms = db_find(db, "VM", "resident_on", d->host);
	if (strcmp(d->host, d->pd->pd_pool_ref) == 0 || strcmp(d->host, d->pd->pd_host_ref) == 0)
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "host %s is the pool master's own host", d->host);
	else if (json_is_true(json_object_get(m, "live")))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "host %s is live: stop its agent first", d->host);
	else if (json_object_size(vms))
		e = xerr_new(XE_HOST_HAS_RESIDENT_VMS, d->host, NULL);
	json_decref(vms);
	json_t *pbds = e ? json_object() : db_find(db, "PBD", "host", d->host);
	const char *k;
	json_t *v;
	json_object_foreach(pbds, k, v) if (!e) e = db_obj_destroy(db, k);
	json_decref(pbds);
	if (!e && m)
		e = db_obj_destroy(db, str(h, "metrics"));
	if (!e)
		e = db_obj_destroy(db, d->host);
	/* the pool's CPU level may rise now that this host is gone */
	if (!e)
		e = pool_relevel(db, d->pd->pd_pool_ref);
	json_decref(m);
	json_decref(h);
	return e;
}

/* host.destroy(host): forget a host that is gone for good (not live, no
 * VMs); the pool's CPU level is recomputed without it. */
json_t *host_destroy(struct api_call *c)
{
	struct destroy_ctx d = {c->ac_pd, NULL};
	json_t *e = api_arg_ref(c, 0, "host", &d.host);
	if (e || (e = db_txn(c->ac_pd->pd_db, host_destroy_txn, &d)))
		return e;
	json_object_del(c->ac_pd->pd_host_seen, d.host);
	json_object_del(c->ac_pd->pd_host_report, d.host);
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
	if (e)
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

/* ----------------------------------------------------------- heartbeat */

struct beat_ctx {
	struct poold *pd;
	const char *host;
	struct host_report rep;
	json_t *domains; /* [{uuid, domid, power_state}] as the agent sees them */
	json_t *srs;     /* [{uuid, physical_size, ...}] of the SRs it has plugged */
	json_t *report;  /* the whole report (its boot and seq) */
	json_t *stale;   /* uuids of paused copies to destroy on this host (after the txn) */
	bool changed;
};

/* Was this report made before the last power operation on vm finished?
 * The agent numbers its reports and stamps each operation's answer with
 * the number of the next report, so an old report (sent on another
 * connection, overtaken by the answer) never undoes the operation. */
static bool report_older(struct beat_ctx *b, const char *vm)
{
	json_t *t = json_object_get(json_object_get(b->pd->pd_vm_changed, vm), b->host);
	if (!t || strcmp(str(t, "boot"), str(b->report, "boot")))
		return false; /* no stamp from this host, or its agent restarted since: no order to keep */
	return json_integer_value(json_object_get(b->report, "seq")) < json_integer_value(json_object_get(t, "seq"));
}

void vm_changed_stamp(struct poold *pd, const char *vm, const char *host, json_t *answer, bool first)
{
	if (!json_is_string(json_object_get(answer, "boot")))
		return;
	json_t *t = json_object_get(pd->pd_vm_changed, vm);
	if (first || !t) {
		t = json_object();
		json_object_set_new(pd->pd_vm_changed, vm, t);
	}
	json_object_set_new(t, host,
			    json_pack("{s:O, s:O}", "boot", json_object_get(answer, "boot"), "seq",
				      json_object_get(answer, "seq")));
}

/* Make the database agree with the domains the host runs (after an agent
 * restart, a crash, a guest that shut itself down). */
static json_t *reconcile_vms(struct db *db, struct beat_ctx *b)
{
	json_t *e = NULL, *seen = json_object();
	size_t i;
	json_t *d;
	json_array_foreach(b->domains, i, d) {
		char vm[64];
		const char *ps = str(d, "power_state");
		if (!db_ref_by_uuid(db, "VM", str(d, "uuid"), vm))
			continue; /* not a VM of this pool: left alone */
		json_object_set_new(seen, vm, json_true());
		json_t *v = db_obj_get(db, vm);
		bool busy = strcmp(str(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF) || report_older(b, vm);
		bool gone = strcmp(ps, "Running") && strcmp(ps, "Paused");
		json_t *want = gone ? json_pack("{s:s, s:s, s:I}", "power_state", "Halted", "resident_on", MODEL_NULL_REF,
					       "domid", (json_int_t)-1)
				    : json_pack("{s:s, s:s, s:I}", "power_state", ps, "resident_on", b->host, "domid",
						json_integer_value(json_object_get(d, "domid")));
		bool same = true;
		const char *k;
		json_t *x;
		json_object_foreach(want, k, x) if (!json_equal(x, json_object_get(v, k))) same = false;
		/* a paused copy on another host than the one the VM runs on (an
		 * incoming migration that never finished) does not move the VM */
		const char *on = str(v, "resident_on");
		bool elsewhere = !gone && strcmp(on, MODEL_NULL_REF) && strcmp(on, b->host) &&
				 strcmp(str(v, "power_state"), "Running") == 0 && strcmp(ps, "Running");
		if (elsewhere && !busy) {
			/* A migration that ended in doubt (the source lost after GO, or
			 * the destination's unpause failed): the VM runs on a live host,
			 * so this paused copy never will: it goes. While that host is
			 * not live nobody can tell: the copy is left alone. */
			json_t *oh = db_obj_get(db, on);
			json_t *om = oh ? db_obj_get(db, str(oh, "metrics")) : NULL;
			bool on_live = json_is_true(json_object_get(om, "live"));
			json_decref(om);
			json_decref(oh);
			log_warn("VM %s: host %s holds a %s copy while it runs on %s: %s", str(v, "name_label"), b->rep.name,
				 ps, on, on_live && strcmp(ps, "Paused") == 0 ? "destroyed" : "left alone");
			if (on_live && strcmp(ps, "Paused") == 0 && b->stale)
				json_array_append_new(b->stale, json_string(str(d, "uuid")));
		}
		if (!busy && !same && !elsewhere) {
			log_info("VM %s: the host reports it %s, recorded as %s", str(v, "name_label"), ps,
				 str(v, "power_state"));
			e = db_obj_update(db, vm, want);
		}
		json_decref(want);
		json_decref(v);
		if (e)
			break;
	}
	json_t *mine = e ? json_object() : db_find(db, "VM", "resident_on", b->host);
	const char *vm;
	json_t *v;
	json_object_foreach(mine, vm, v) {
		if (e || json_object_get(seen, vm) || report_older(b, vm) ||
		    strcmp(str(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF))
			continue;
		log_warn("VM %s: its domain is gone from its host: recorded as halted", str(v, "name_label"));
		e = db_obj_update_new(db, vm, json_pack("{s:s, s:s, s:I}", "power_state", "Halted", "resident_on",
							MODEL_NULL_REF, "domid", (json_int_t)-1));
	}
	json_decref(mine);
	json_decref(seen);
	return e;
}

static json_t *beat_txn(struct db *db, void *ctx)
{
	struct beat_ctx *b = ctx;
	json_t *h, *e = db_obj_get_checked(db, "host", b->host, &h);
	if (e)
		return e;
	const char *mref = str(h, "metrics");
	json_t *m = db_obj_get(db, mref);
	json_int_t free_was = json_integer_value(json_object_get(m, "memory_free"));
	json_int_t diff = free_was - b->rep.memory_free;
	bool live = json_is_true(json_object_get(m, "live"));
	/* write when something a client would notice changed, not every beat */
	char stamp[32];
	model_now(stamp);
	/* a full pass (every BEAT_FULL_SECONDS at least) refreshes last_updated */
	if (!live || diff > b->rep.memory_total / 100 || -diff > b->rep.memory_total / 100 ||
	    json_integer_value(json_object_get(m, "memory_total")) != b->rep.memory_total ||
	    strncmp(str(m, "last_updated"), stamp, 13) != 0) {
		char now[32];
		model_now(now);
		e = db_obj_update_new(db, mref, json_pack("{s:I, s:I, s:b, s:s}", "memory_total", b->rep.memory_total,
						      "memory_free", b->rep.memory_free, "live", 1,
						      "last_updated", now));
		b->changed = !live;
	}
	json_t *fields = host_fields(&b->rep);
	char port[16];
	snprintf(port, sizeof port, "%lld", (long long)b->rep.port);
	json_object_set_new(json_object_get(fields, "other_config"), "agent_port", json_string(port));
	/* keep the operator's other_config keys: only ours are refreshed */
	json_t *oc = json_deep_copy(json_object_get(h, "other_config"));
	json_object_update(oc, json_object_get(fields, "other_config"));
	json_object_set_new(fields, "other_config", oc);
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v) if (!json_equal(v, json_object_get(h, k))) same = false;
	if (!e && !same)
		e = db_obj_update(db, b->host, fields);
	if (!e)
		e = host_pifs_sync(db, b->host, &b->rep);
	if (!e)
		e = reconcile_vms(db, b);
	size_t i;
	json_t *sp;
	json_array_foreach(b->srs, i, sp) if (!e) e = sr_space_update(db, sp);
	json_decref(fields);
	json_decref(m);
	json_decref(h);
	return e;
}

static json_t *ignore_answer(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			     json_t **result)
{
	(void)c, (void)pd, (void)ctx, (void)answer, (void)err, (void)result;
	return NULL;
}

json_t *host_heartbeat(struct api_call *c)
{
	struct beat_ctx b = {c->ac_pd, NULL, {0}, NULL, NULL, NULL, NULL, false};
	char ref[64];
	if (!db_ref_by_uuid(c->ac_pd->pd_db, "host", c->ac_peer, ref))
		return xerr_new(XE_PERMISSION_DENIED, "the certificate names no host of this pool", NULL);
	b.host = ref;
	json_t *report, *e = api_arg_obj(c, 0, "report", &report);
	if (e || (e = report_parse(report, &b.rep)))
		return e;
	b.domains = json_object_get(report, "domains");
	b.srs = json_object_get(report, "srs");
	b.report = report;
	/* Most beats say what the last one said: then there is nothing to
	 * write, and no need to read the records to find that out. A full
	 * pass still runs every BEAT_FULL_SECONDS, in case the records were
	 * changed under us. */
	struct poold *pd = c->ac_pd;
	json_t *last = json_object_get(pd->pd_host_report, ref);
	json_int_t then = json_integer_value(json_object_get(last, "__at"));
	json_int_t free_then = json_integer_value(json_object_get(last, "memory_free"));
	json_t *cmp = json_deep_copy(report);
	json_object_del(cmp, "memory_free");
	json_object_del(cmp, "seq");
	bool same = last && json_equal(json_object_get(last, "report"), cmp) && mono_s() - then < BEAT_FULL_SECONDS &&
		    llabs((long long)(free_then - b.rep.memory_free)) <= b.rep.memory_total / 100 &&
		    json_object_get(pd->pd_host_seen, ref);
	b.stale = json_array();
	if (!same && (e = db_txn(pd->pd_db, beat_txn, &b))) {
		json_decref(b.stale);
		json_decref(cmp);
		return e;
	}
	size_t i;
	json_t *u;
	json_array_foreach(b.stale, i, u)
		agent_call_done(pd, NULL, ref, "agent.vm_shutdown", json_pack("[O,b]", u, 1), ignore_answer, NULL);
	json_decref(b.stale);
	if (!same)
		json_object_set_new(pd->pd_host_report, ref,
				    json_pack("{s:o, s:I, s:I}", "report", cmp, "memory_free", b.rep.memory_free, "__at",
					      (json_int_t)mono_s()));
	else
		json_decref(cmp);
	if (b.changed)
		log_info("host %s is live", b.rep.name);
	json_object_set_new(c->ac_pd->pd_host_seen, ref, json_integer(mono_s()));
	c->ac_result = json_pack("{s:s}", "host", ref);
	return NULL;
}

/* ------------------------------------------------------------ liveness */

static json_t *not_live_txn(struct db *db, void *ctx)
{
	json_t *h = db_obj_get(db, ctx);
	const char *m = str(h, "metrics");
	json_t *e = *m ? db_obj_set(db, m, "live", json_false()) : NULL;
	json_decref(h);
	return e;
}

static void liveness_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct poold *pd = arg;
	int64_t now = mono_s();
	int64_t limit = conf_duration_ms(pd->pd_conf, "host-heartbeat-timeout") / 1000;
	const char *ref;
	json_t *seen, *tmp;
	json_object_foreach_safe(pd->pd_host_seen, tmp, ref, seen) {
		if (now - json_integer_value(seen) <= limit)
			continue;
		json_t *e = db_txn(pd->pd_db, not_live_txn, (void *)ref);
		json_decref(e);
		log_warn("host %s is not live: no heartbeat for %llds", ref, (long long)(now - json_integer_value(seen)));
		json_object_del(pd->pd_host_seen, ref); /* live again with its next heartbeat */
	}
}

void host_liveness_start(struct poold *pd)
{
	pd->pd_host_seen = json_object();
	pd->pd_host_report = json_object();
	/* hosts live when poold stopped get a full timeout to say so again */
	json_t *hosts = db_find(pd->pd_db, "host", NULL, NULL);
	const char *ref;
	json_t *h;
	json_object_foreach(hosts, ref, h) {
		/* the master's own machine, until an agent claims it, is poold's
		 * to report: it is live while poold runs */
		if (!*str(json_object_get(h, "other_config"), "agent_address"))
			continue;
		json_t *m = db_obj_get(pd->pd_db, str(h, "metrics"));
		if (json_is_true(json_object_get(m, "live")))
			json_object_set_new(pd->pd_host_seen, ref, json_integer(mono_s()));
		json_decref(m);
	}
	json_decref(hosts);
	pd->pd_live_timer = event_new(pd->pd_base, -1, EV_PERSIST, liveness_check, pd);
	struct timeval one = {1, 0};
	event_add(pd->pd_live_timer, &one);
}

void host_liveness_stop(struct poold *pd)
{
	if (pd->pd_live_timer)
		event_free(pd->pd_live_timer);
	pd->pd_live_timer = NULL;
	json_decref(pd->pd_host_seen);
	pd->pd_host_seen = NULL;
	json_decref(pd->pd_host_report);
	pd->pd_host_report = NULL;
}
