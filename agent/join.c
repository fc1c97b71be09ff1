/*
 * join.c - an agent joins the pool, once.
 *
 * 1. Ask the master for the pool CA (pool.get_ca_certificate) without
 *    trusting anything yet, and compare its SHA-256 fingerprint with the
 *    one the operator copied from `poold init`: a wrong master, or someone
 *    in between, stops here and the token is never sent.
 * 2. Make a key (state-dir/agent.key, 0600) and a certificate request.
 * 3. host.join(token, CSR, report) over TLS verified against that CA; the
 *    answer holds the certificate the pool CA signed for this host.
 * Files are written under temporary names and renamed at the end: a failed
 * join leaves the state directory as it was, and poold records the host
 * only when the whole join succeeded.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>
#include "evrpc.h"
#include "agent.h"
#include "log.h"
#include "tls.h"
#include "xerr.h"

/* One call before the loop runs. verify_ca NULL = do not verify the server
 * (only for fetching the CA, whose fingerprint is then checked); else the
 * server must show the pool master's certificate from that CA: another
 * pool member in the master's place never sees the join token. */
static json_t *call(const struct agent *ag, const char *verify_ca, const char *method, json_t *params, char *err,
		    size_t errlen)
{
	SSL_CTX *ctx = tls_client_ctx(verify_ca, NULL, NULL, err, errlen);
	if (!ctx) {
		json_decref(params);
		return NULL;
	}
	struct evrpc_target t = {ag->ag_master_host, ag->ag_master_port, ctx, verify_ca ? TLS_MASTER_CN : NULL};
	json_t *result = NULL, *xerr = NULL;
	if (evrpc_call_sync(&t, method, params, 30, &result, &xerr) < 0) {
		char *s = xerr_to_text(xerr);
		snprintf(err, errlen, "%s", s ? s : "the master did not answer");
		free(s);
	}
	json_decref(xerr);
	SSL_CTX_free(ctx);
	return result;
}

/* The local address that routes to the master: what poold will reach us
 * on unless configured otherwise (a UDP connect sends nothing). */
void agent_local_address(const char *host, int port, char *out, size_t outlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_socktype = SOCK_DGRAM;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0)
		return;
	int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
}

static int write_file(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fchmod(fileno(f), mode) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	if (fclose(f) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void path(char *out, const struct agent *ag, const char *name)
{
	snprintf(out, 4200, "%s/%s", ag->ag_state, name);
}

static int load_joined(struct agent *ag)
{
	char p[4200];
	path(p, ag, "host.json");
	json_t *h = json_load_file(p, 0, NULL);
	const char *uuid = json_string_value(json_object_get(h, "host_uuid"));
	int rc = -1;
	if (uuid) {
		snprintf(ag->ag_host_uuid, sizeof ag->ag_host_uuid, "%s", uuid);
		rc = 0;
	}
	json_decref(h);
	return rc;
}

int agent_join_if_needed(struct agent *ag, char *err, size_t errlen)
{
	char cert[4200], key[4200], ca[4200], hostjson[4200], tmp_key[4200], tmp_ca[4200];
	path(cert, ag, "agent.pem");
	path(key, ag, "agent.key");
	path(ca, ag, "ca.pem");
	path(hostjson, ag, "host.json");
	path(tmp_key, ag, "agent.key.joining");
	path(tmp_ca, ag, "ca.pem.joining");
	if (access(cert, F_OK) == 0 && load_joined(ag) == 0)
		return 0;
	const char *token = conf_str(ag->ag_conf, "join-token");
	const char *want_fp = conf_str(ag->ag_conf, "ca-fingerprint");
	if (!*token || !*want_fp) {
		snprintf(err, errlen, "not a pool member yet: set join-token (xe pool-join-token-create) and "
				      "ca-fingerprint (printed by poold init) to join the pool at %s:%d",
			 ag->ag_master_host, ag->ag_master_port);
		return -1;
	}
	char local_ip[64] = "";
	agent_local_address(ag->ag_master_host, ag->ag_master_port, local_ip, sizeof local_ip);
	json_t *pem = call(ag, NULL, "pool.get_ca_certificate", json_array(), err, errlen);
	if (!pem)
		return -1;
	char fp[128];
	int rc = -1;
	char *csr = NULL;
	json_t *ans = NULL;
	if (!json_is_string(pem) || !tls_pem_fingerprint(json_string_value(pem), fp, sizeof fp, err, errlen))
		goto out;
	if (!tls_fingerprint_same(fp, want_fp)) {
		snprintf(err, errlen, "the master at %s:%d shows a pool CA with fingerprint %s, not %s: "
				      "wrong master or wrong fingerprint, not joining",
			 ag->ag_master_host, ag->ag_master_port, fp, want_fp);
		goto out;
	}
	unlink(tmp_key);
	if (write_file(tmp_ca, json_string_value(pem), 0644, err, errlen) < 0)
		goto out;
	csr = tls_csr_create(tmp_key, conf_str(ag->ag_conf, "name"), err, errlen);
	if (!csr)
		goto out;
	if (!ag->ag_address[0])
		snprintf(ag->ag_address, sizeof ag->ag_address, "%s", local_ip);
	ans = call(ag, tmp_ca, "host.join", json_pack("[s,s,o]", token, csr, agent_beat_report(ag)), err, errlen);
	const char *uuid = json_string_value(json_object_get(ans, "host_uuid"));
	const char *certificate = json_string_value(json_object_get(ans, "certificate"));
	if (!ans)
		goto out;
	if (!uuid || !certificate) {
		snprintf(err, errlen, "host.join answered without a certificate");
		goto out;
	}
	json_t *hj = json_pack("{s:s, s:s}", "host_uuid", uuid, "master", conf_str(ag->ag_conf, "master"));
	char *hjs = json_dumps(hj, JSON_INDENT(2));
	json_decref(hj);
	rc = write_file(cert, certificate, 0644, err, errlen) == 0 && write_file(hostjson, hjs, 0644, err, errlen) == 0 &&
			     rename(tmp_key, key) == 0 && rename(tmp_ca, ca) == 0
		     ? 0
		     : -1;
	free(hjs);
	if (rc == 0) {
		size_t wi;
		json_t *w;
		json_array_foreach(json_object_get(ans, "warnings"), wi, w)
			log_warn("joining lowers the pool's CPU level: %s", json_string_value(w));
		snprintf(ag->ag_host_uuid, sizeof ag->ag_host_uuid, "%s", uuid);
		log_info("joined the pool at %s:%d as host %s", ag->ag_master_host, ag->ag_master_port, uuid);
	} else {
		if (!*err)
			snprintf(err, errlen, "cannot store the certificate in %s: %s", ag->ag_state, strerror(errno));
		unlink(cert);
		unlink(hostjson);
	}
out:
	if (rc < 0) {
		unlink(tmp_key);
		unlink(tmp_ca);
	}
	json_decref(ans);
	json_decref(pem);
	free(csr);
	return rc;
}
