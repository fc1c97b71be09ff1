/*
 * pool.c - creating a pool directory (`poold init`) and loading it.
 *
 * A pool directory holds pool.db (SQLite), the pool CA (ca.pem, ca.key),
 * poold's server certificate (server.pem, server.key) and, while poold
 * runs, poold.pid and poold.port. The database starts with the pool, the
 * master's host object and its metrics, the built-in templates and the
 * admin user "root".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include "log.h"
#include "poold.h"
#include "pwhash.h"
#include "tls.h"
#include "version.h"
#include "xerr.h"

#define MIB (1024LL * 1024)

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

struct init_ctx {
	const char *hostname, *address, *pwhash;
};

static json_t *init_host(struct db *db, const struct init_ctx *ic, char *host_ref)
{
	struct sysinfo si;
	sysinfo(&si);
	char mref[64];
	char now[32];
	model_now(now);
	json_t *m = json_pack("{s:I, s:I, s:b, s:s}", "memory_total", (json_int_t)si.totalram * si.mem_unit,
			      "memory_free", (json_int_t)si.freeram * si.mem_unit, "live", 1, "last_updated", now);
	json_t *e = db_obj_create(db, "host_metrics", m, mref);
	json_decref(m);
	if (e)
		return e;
	char cpus[16];
	snprintf(cpus, sizeof cpus, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s}, s:s, s:I, s:I}",
			      "name_label", ic->hostname, "hostname", ic->hostname, "address", ic->address,
			      "metrics", mref, "software_version", "product_brand", POOLD_PRODUCT,
			      "product_version", POOLD_VERSION, "product_version_text", POOLD_VERSION, "platform_name",
			      POOLD_PRODUCT, "platform_version", POOLD_PLATFORM_VERSION, "build_number",
			      POOLD_BUILD_NUMBER, "xapi", POOLD_VERSION, "cpu_info", "cpu_count", cpus, "API_version_vendor", "XenSource",
			      "API_version_major", (json_int_t)POOLD_API_MAJOR, "API_version_minor",
			      (json_int_t)POOLD_API_MINOR);
	e = db_obj_create(db, "host", h, host_ref);
	json_decref(h);
	return e;
}

static json_t *init_templates(struct db *db)
{
	json_t *t = json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s,"
			      " s:{s:s, s:s, s:s, s:s}, s:{s:s}}",
			      "name_label", "Generic VM", "name_description",
			      "A template for any guest: 1 GiB of memory, 1 vCPU, no disks",
			      "is_a_template", 1, "is_default_template", 1, "memory_static_max",
			      (json_int_t)(1024 * MIB), "memory_dynamic_max", (json_int_t)(1024 * MIB),
			      "memory_dynamic_min", (json_int_t)(1024 * MIB), "memory_static_min",
			      (json_int_t)(128 * MIB), "VCPUs_max", (json_int_t)1, "VCPUs_at_startup",
			      (json_int_t)1, "HVM_boot_policy", "BIOS order", "domain_type", "hvm", "platform",
			      "acpi", "1", "apic", "true", "pae", "true", "nx", "true", "other_config",
			      "default_template", "true");
	char ref[64], mref[64];
	json_t *m = json_object();
	json_t *e = db_obj_create(db, "VM_metrics", m, mref);
	json_decref(m);
	if (!e) {
		json_object_set_new(t, "metrics", json_string(mref));
		e = db_obj_create(db, "VM", t, ref);
	}
	json_decref(t);
	return e;
}

static json_t *init_txn(struct db *db, void *ctx)
{
	struct init_ctx *ic = ctx;
	char host[64], pool[64];
	json_t *e = init_host(db, ic, host);
	if (e)
		return e;
	json_t *p = json_pack("{s:s, s:s, s:{}}", "name_label", "pool", "master", host, "other_config");
	e = db_obj_create(db, "pool", p, pool);
	json_decref(p);
	if (!e)
		e = db_meta_set(db, "pool_ref", pool);
	if (!e)
		e = db_meta_set(db, "master_ref", host);
	if (!e)
		e = init_templates(db);
	if (!e)
		e = db_user_set(db, "root", ic->pwhash);
	return e;
}

/* The master's certificate names: localhost, 127.0.0.1, ::1, the host
 * name, then the operator's (poold init --name/--address), each once. */
int pool_master_names(const char *hostname, const char *const *extra, const char **out, size_t max, char *err,
			size_t errlen)
{
	const char *base[] = {"localhost", "127.0.0.1", "::1", hostname};
	size_t n = 0;
	for (size_t i = 0; i < 4; i++)
		if (tls_name_kind(base[i], NULL, NULL) != TLS_NAME_INVALID && !tls_names_contain(out, base[i]))
			out[n++] = base[i], out[n] = NULL;
	for (size_t i = 0; extra && extra[i]; i++) {
		if (tls_name_kind(extra[i], NULL, NULL) == TLS_NAME_INVALID) {
			snprintf(err, errlen, "'%s' is neither an IP address nor a DNS name", extra[i]);
			return -1;
		}
		if (n + 1 >= max) {
			snprintf(err, errlen, "too many names for the master's certificate (at most %zu)", max - 5);
			return -1;
		}
		if (!tls_names_contain(out, extra[i]))
			out[n++] = extra[i], out[n] = NULL;
	}
	return 0;
}

/* pool.db and its WAL files are readable by poold only: sessions and
 * password hashes live there. SQLite gives -wal and -shm the mode of the
 * database file, so an existing pool is fixed by its first start. */
int pool_db_private(const char *dir, bool create, char *err, size_t errlen)
{
	static const char *const files[] = {"pool.db", "pool.db-wal", "pool.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		char p[4200];
		path_in(p, sizeof p, dir, files[i]);
		int fd = open(p, O_RDONLY | O_CLOEXEC | (create && i == 0 ? O_CREAT : 0), 0600);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0 || fchmod(fd, 0600) < 0) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

int pool_init_dir(const char *dir, const char *password, const char *const *names, char *err, size_t errlen)
{
	char dbp[4200], ca[4200], cakey[4200], cert[4200], key[4200];
	path_in(dbp, sizeof dbp, dir, "pool.db");
	path_in(ca, sizeof ca, dir, "ca.pem");
	path_in(cakey, sizeof cakey, dir, "ca.key");
	path_in(cert, sizeof cert, dir, "server.pem");
	path_in(key, sizeof key, dir, "server.key");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (access(dbp, F_OK) == 0 || access(ca, F_OK) == 0) {
		snprintf(err, errlen, "%s already holds a pool: refusing to initialise over it", dir);
		return -1;
	}
	if (strlen(password) < 1) {
		snprintf(err, errlen, "the admin password is empty");
		return -1;
	}
	char hostname[256] = "localhost";
	gethostname(hostname, sizeof hostname - 1);
	const char *sans[POOL_MAX_NAMES + 5] = {NULL};
	if (pool_master_names(hostname, names, sans, POOL_MAX_NAMES + 5, err, errlen) < 0)
		return -1;
	char uuid[48], cn[96];
	model_new_uuid(uuid);
	snprintf(cn, sizeof cn, "poold pool CA %.8s", uuid);
	if (!tls_ca_create(ca, cakey, cn, err, errlen))
		return -1;
	if (!tls_cert_issue(ca, cakey, TLS_MASTER_CN, sans, 3650, cert, key, err, errlen))
		return -1;
	if (pool_db_private(dir, true, err, errlen) < 0)
		return -1;
	char *hash = pwhash_make(password, PWHASH_DEFAULT_ITERATIONS);
	if (!hash) {
		snprintf(err, errlen, "cannot hash the password");
		return -1;
	}
	struct db *db = db_open(dbp, true, err, errlen);
	if (!db) {
		free(hash);
		return -1;
	}
	struct init_ctx ic = {hostname, "127.0.0.1", hash};
	json_t *e = db_txn(db, init_txn, &ic);
	db_close(db);
	free(hash);
	if (e) {
		char *s = xerr_to_text(e);
		snprintf(err, errlen, "cannot create the pool database: %s", s ? s : "?");
		free(s);
		json_decref(e);
		unlink(dbp);
		return -1;
	}
	return 0;
}

/* A pool made before the master had an identity of its own has poold's
 * certificate with the host name as CN. Agents now check for
 * TLS_MASTER_CN: re-issue it with the same names before serving. */
int pool_master_identity(const char *dir, char *err, size_t errlen)
{
	char ca[4200], cakey[4200], cert[4200], key[4200], tcert[4200], tkey[4200], cn[256];
	path_in(ca, sizeof ca, dir, "ca.pem");
	path_in(cakey, sizeof cakey, dir, "ca.key");
	path_in(cert, sizeof cert, dir, "server.pem");
	path_in(key, sizeof key, dir, "server.key");
	path_in(tcert, sizeof tcert, dir, "server.pem.new");
	path_in(tkey, sizeof tkey, dir, "server.key.new");
	if (tls_cert_cn(cert, cn, sizeof cn, NULL, 0) && strcmp(cn, TLS_MASTER_CN) == 0)
		return 0;
	char **names = tls_cert_names(cert, err, errlen);
	if (!names)
		return -1;
	size_t k = 0;
	for (size_t i = 0; names[i]; i++) /* keep only names a certificate may carry */
		if (tls_name_kind(names[i], NULL, NULL) != TLS_NAME_INVALID)
			names[k++] = names[i];
		else
			free(names[i]);
	names[k] = NULL;
	unlink(tcert);
	unlink(tkey);
	int ok = tls_cert_issue(ca, cakey, TLS_MASTER_CN, (const char *const *)names, 3650, tcert, tkey, err, errlen);
	tls_names_free(names);
	if (ok && (rename(tkey, key) < 0 || rename(tcert, cert) < 0)) {
		snprintf(err, errlen, "cannot replace %s: %s", cert, strerror(errno));
		ok = 0;
	}
	if (!ok)
		return -1;
	log_warn("%s was issued before the master had its own identity: re-issued with CN=%s and the same names",
		 cert, TLS_MASTER_CN);
	return 0;
}

static json_t *metrics_txn(struct db *db, void *ctx)
{
	struct poold *pd = ctx;
	json_t *h = db_obj_get(db, pd->pd_host_ref);
	const char *m = json_string_value(json_object_get(h, "metrics"));
	json_t *e = NULL;
	if (m) {
		struct sysinfo si;
		sysinfo(&si);
		char now[32];
		model_now(now);
		json_t *f = json_pack("{s:I, s:I, s:b, s:s}", "memory_total", (json_int_t)si.totalram * si.mem_unit,
				      "memory_free", (json_int_t)si.freeram * si.mem_unit, "live", 1,
				      "last_updated", now);
		e = db_obj_update(db, m, f);
		json_decref(f);
	}
	json_decref(h);
	return e;
}

/* No operation outlives poold: reservations and current operations of a
 * poold that stopped (a start or a migration in flight) are dropped, and
 * the hosts' next reports say where each VM really runs. A host's
 * evacuation is the exception: it resumes (api_evacuate.c). Every record
 * with operations is derived again, so allowed_operations are true even
 * in a database an older poold wrote. */
static json_t *drop_reservations_txn(struct db *db, void *ctx)
{
	int *n = ctx;
	static const char *const classes[] = {"VM", "VDI", "SR", "host"};
	json_t *e = NULL;
	for (size_t i = 0; i < sizeof classes / sizeof classes[0] && !e; i++) {
		json_t *all = db_find(db, classes[i], NULL, NULL);
		const char *k;
		json_t *v;
		json_object_foreach(all, k, v) {
			if (e)
				break;
			json_t *f = json_object();
			const char *s = json_string_value(json_object_get(v, "scheduled_to_be_resident_on"));
			if (s && strcmp(s, MODEL_NULL_REF))
				json_object_set_new(f, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
			if (strcmp(classes[i], "host") && json_object_size(json_object_get(v, "current_operations")))
				json_object_set_new(f, "current_operations", json_object());
			*n += json_object_size(f) > 0;
			e = db_obj_update_new(db, k, f);
		}
		json_decref(all);
	}
	return e;
}

/* Tasks that were pending when poold stopped end as failures saying so,
 * except a host evacuation's, which goes on (api_evacuate.c). */
struct orphan_ctx {
	json_t *keep; /* task refs that resume */
	int n;
	char why[400];
};

static json_t *orphan_tasks_txn(struct db *db, void *ctx)
{
	struct orphan_ctx *o = ctx;
	json_t *tasks = db_find(db, "task", "status", "pending"), *e = NULL;
	const char *k;
	json_t *t;
	char now[32];
	model_now(now);
	json_object_foreach(tasks, k, t) {
		if (e || json_object_get(o->keep, k))
			continue;
		e = db_obj_update_new(db, k,
				      json_pack("{s:s, s:s, s:[s,s], s:[]}", "status", "failure", "finished", now,
						"error_info", "INTERNAL_ERROR", o->why, "allowed_operations"));
		o->n++;
	}
	json_decref(tasks);
	return e;
}

static void orphan_tasks(struct poold *pd)
{
	struct orphan_ctx o = {json_object(), 0, ""};
	if (pd->pd_took_over[0])
		snprintf(o.why, sizeof o.why, "the pool master changed while this task ran (%s): what it did is in the "
			 "records, what it had not done did not happen", pd->pd_took_over);
	else
		snprintf(o.why, sizeof o.why, "poold stopped while this task ran: what it did is in the records, what it "
			 "had not done did not happen");
	char *text = db_meta_get(pd->pd_db, "evacuations");
	json_t *evs = text ? json_loads(text, 0, NULL) : NULL;
	const char *k;
	json_t *v;
	json_object_foreach(evs, k, v) {
		const char *task = json_string_value(json_object_get(v, "task"));
		if (task)
			json_object_set_new(o.keep, task, json_true());
	}
	/* a storage migration not yet decided ends its task itself (sxm_queue.c) */
	json_t *sxm = sxm_journal_all(pd->pd_db);
	json_object_foreach(sxm, k, v) {
		const char *task = json_string_value(json_object_get(v, "task"));
		if (task && *task && !json_is_true(json_object_get(v, "decided")))
			json_object_set_new(o.keep, task, json_true());
	}
	json_decref(sxm);
	char rpu[64]; /* a rolling upgrade's task goes on too (rpu.c) */
	if (*rpu_task_of(pd->pd_db, rpu))
		json_object_set_new(o.keep, rpu, json_true());
	json_t *e = db_txn(pd->pd_db, orphan_tasks_txn, &o);
	if (!e && o.n)
		log_warn("%d tasks were running when the last master stopped: they end as failures", o.n);
	json_decref(e);
	json_decref(evs);
	json_decref(o.keep);
	free(text);
}

int pool_load(struct poold *pd, char *err, size_t errlen)
{
	char *pool = db_meta_get(pd->pd_db, "pool_ref");
	char *host = db_meta_get(pd->pd_db, "master_ref");
	if (!pool || !host) {
		snprintf(err, errlen, "%s/pool.db holds no pool (run `poold init --dir %s` first)", pd->pd_dir, pd->pd_dir);
		free(pool);
		free(host);
		return -1;
	}
	snprintf(pd->pd_pool_ref, sizeof pd->pd_pool_ref, "%s", pool);
	snprintf(pd->pd_host_ref, sizeof pd->pd_host_ref, "%s", host);
	free(pool);
	free(host);
	json_t *e = db_txn(pd->pd_db, metrics_txn, pd);
	json_decref(e);
	int dropped = 0;
	json_decref(db_txn(pd->pd_db, drop_reservations_txn, &dropped));
	if (dropped)
		log_warn("%d VM operations were in flight when poold stopped: the hosts' reports will say where "
			 "those VMs run", dropped);
	orphan_tasks(pd);
	return 0;
}
