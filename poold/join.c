/*
 * join.c - `poold join`: a host's poold becomes a standby master.
 *
 *   poold join --dir DIR --master ADDRESS:PORT --ca-fingerprint FP --token TOKEN
 *              --host-uuid UUID [--name DNS]... [--address IP]...
 *
 * As an agent joins: fetch the pool CA without trusting anything, compare
 * its SHA-256 fingerprint with the one `poold init` printed (a wrong
 * master never sees the token), then, over TLS verified against that CA
 * and the master's certificate, spend the one-time token
 * (pool.standby_join) for the CA's key. With it this poold makes its own
 * master certificate (CN pool-master, the names clients reach this host
 * by: give --address for each), and master.json names its host and the
 * master. Nothing is written unless every step worked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "evrpc.h"
#include "poold.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

struct join_args {
	const char *dir, *master, *fingerprint, *token, *host_uuid;
	const char *names[POOL_MAX_NAMES + 1];
	size_t nnames;
	char host[256];
	int port;
};

static int join_usage(void)
{
	fprintf(stderr, "usage: poold join --dir DIR --master ADDRESS:PORT --ca-fingerprint FP --token TOKEN "
			"--host-uuid UUID [--name DNS]... [--address IP]...\n");
	return 2;
}

static int join_parse(int argc, char **argv, struct join_args *a)
{
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--dir"))
			a->dir = v;
		else if (!strcmp(k, "--master"))
			a->master = v;
		else if (!strcmp(k, "--ca-fingerprint"))
			a->fingerprint = v;
		else if (!strcmp(k, "--token"))
			a->token = v;
		else if (!strcmp(k, "--host-uuid"))
			a->host_uuid = v;
		else if ((!strcmp(k, "--name") || !strcmp(k, "--address")) && a->nnames < POOL_MAX_NAMES &&
			 tls_name_kind(v, NULL, NULL) != TLS_NAME_INVALID)
			a->names[a->nnames++] = v;
		else
			return -1;
	}
	const char *colon = a->master ? strrchr(a->master, ':') : NULL;
	if ((argc % 2) || !a->dir || !a->fingerprint || !a->token || !a->host_uuid || !colon ||
	    (size_t)(colon - a->master) >= sizeof a->host)
		return -1;
	snprintf(a->host, sizeof a->host, "%.*s", (int)(colon - a->master), a->master);
	a->port = atoi(colon + 1);
	return a->port > 0 && a->port < 65536 ? 0 : -1;
}

static json_t *join_call(struct join_args *a, SSL_CTX *ctx, const char *cn, const char *method, json_t *params,
			 char *err, size_t errlen)
{
	struct evrpc_target t = {a->host, a->port, ctx, cn};
	json_t *result = NULL, *xe = NULL;
	if (evrpc_call_sync(&t, method, params, 30, &result, &xe) < 0) {
		char *s = xerr_to_text(xe);
		snprintf(err, errlen, "%s: %s", method, s ? s : "the master did not answer");
		free(s);
	}
	json_decref(xe);
	return result;
}

static int join_write(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "wx");
	if (!f || fchmod(fileno(f), 0600) < 0 || fputs(text, f) < 0 || fclose(f) != 0)
		return errf(err, errlen, "%s: %s", p, strerror(errno));
	return 0;
}

/* The CA, checked against the fingerprint the operator was given. */
static int join_ca(struct join_args *a, char *err, size_t errlen)
{
	SSL_CTX *open_ctx = tls_client_ctx(NULL, NULL, NULL, err, errlen);
	json_t *ca = open_ctx ? join_call(a, open_ctx, NULL, "pool.get_ca_certificate", json_array(), err, errlen) : NULL;
	SSL_CTX_free(open_ctx);
	char fp[128];
	int rc = -1;
	if (ca && !tls_pem_fingerprint(json_string_value(ca), fp, sizeof fp, err, errlen))
		;
	else if (ca && !tls_fingerprint_same(fp, a->fingerprint))
		errf(err, errlen, "the pool CA at %s has fingerprint %s, not %s: not this pool (nothing sent)", a->master, fp,
		     a->fingerprint);
	else if (ca)
		rc = join_write(a->dir, "ca.pem", json_string_value(ca), err, errlen);
	json_decref(ca);
	return rc;
}

static int join_standby(struct join_args *a, char *err, size_t errlen)
{
	char ca[4200], cakey[4200], cert[4200], key[4200], hostname[256] = "localhost";
	snprintf(ca, sizeof ca, "%s/ca.pem", a->dir);
	snprintf(cakey, sizeof cakey, "%s/ca.key", a->dir);
	snprintf(cert, sizeof cert, "%s/server.pem", a->dir);
	snprintf(key, sizeof key, "%s/server.key", a->dir);
	SSL_CTX *ctx = tls_client_ctx(ca, NULL, NULL, err, errlen);
	json_t *r = ctx ? join_call(a, ctx, TLS_MASTER_CN, "pool.standby_join", json_pack("[s,s]", a->token, a->host_uuid),
				    err, errlen)
			: NULL;
	SSL_CTX_free(ctx);
	if (!r || join_write(a->dir, "ca.key", jstr(r, "ca_key"), err, errlen) < 0) {
		json_decref(r);
		return -1;
	}
	gethostname(hostname, sizeof hostname - 1);
	const char *sans[POOL_MAX_NAMES + 5] = {NULL};
	int rc = pool_master_names(hostname, a->names, sans, POOL_MAX_NAMES + 5, err, errlen) < 0 ||
			 !tls_cert_issue(ca, cakey, TLS_MASTER_CN, sans, 3650, cert, key, err, errlen)
		     ? -1
		     : 0;
	struct mstate ms = {0};
	snprintf(ms.ms_host_uuid, sizeof ms.ms_host_uuid, "%s", a->host_uuid);
	snprintf(ms.ms_master_uuid, sizeof ms.ms_master_uuid, "%s", jstr(r, "master_uuid"));
	const char *maddr = *jstr(r, "master_address") ? jstr(r, "master_address") : a->host;
	if (strlen(maddr) < sizeof ms.ms_master_address)
		memcpy(ms.ms_master_address, maddr, strlen(maddr) + 1);
	ms.ms_port = a->port;
	ms.ms_epoch = (uint64_t)json_integer_value(json_object_get(r, "epoch"));
	ms.ms_users = json_object();
	ms.ms_peers = json_array();
	if (!rc)
		rc = mstate_save(a->dir, &ms, err, errlen);
	mstate_clear(&ms);
	json_decref(r);
	return rc;
}

int poold_join(int argc, char **argv)
{
	struct join_args a = {0};
	if (join_parse(argc, argv, &a) < 0)
		return join_usage();
	char err[1024] = "", probe[4200];
	if (mkdir(a.dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "poold join: %s: %s\n", a.dir, strerror(errno));
		return 1;
	}
	snprintf(probe, sizeof probe, "%s/ca.pem", a.dir);
	if (access(probe, F_OK) == 0) {
		fprintf(stderr, "poold join: %s holds a pool already: refusing to join over it\n", a.dir);
		return 1;
	}
	if (join_ca(&a, err, sizeof err) < 0 || join_standby(&a, err, sizeof err) < 0) {
		fprintf(stderr, "poold join: %s\n", err);
		static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key", "master.json"};
		for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
			snprintf(probe, sizeof probe, "%s/%s", a.dir, files[i]);
			unlink(probe);
		}
		return 1;
	}
	printf("standby master for host %s in %s: start it with `poold --dir %s`\n", a.host_uuid, a.dir, a.dir);
	return 0;
}
