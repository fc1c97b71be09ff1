/*
 * bench/api - poold's API under load, next to the transport's own cost.
 *
 * Starts a real poold (temporary pool, loopback, kernel-chosen port), fills
 * it with 10,000 VM records through VM.create, then measures over
 * keep-alive HTTPS from several client threads:
 *   get_record_per_s   VM.get_record calls per second
 *   noop_per_s         system.noop (answered without touching the database)
 *                      in the same run: the transport's own cost
 *   ratio              get_record_per_s / noop_per_s
 *   get_all_records_ms VM.get_all_records, median of 5
 *   event_wake_ms_median  VM.set_name_label sent -> parked event.from answered
 *   rss_mib            poold's resident set after all of it (and its peak)
 *   vm_create_per_s    VM.create calls per second while filling (the write rate)
 * Twice, side by side: the database local (DIR/pool.db, as a pool without
 * standby masters has it), then on "shared storage" (master.json names a
 * file elsewhere: one writer, commits synced in groups before their answers
 * leave, durable.c), which is how a pool that can fail over runs.
 * `--json` prints one JSON object per mode; otherwise a table. Never
 * pass/fail.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NVMS (getenv("BENCH_VMS") ? atoi(getenv("BENCH_VMS")) : 10000)
#define THREADS 8
#define RUN_SECONDS 3.0
#define PASSWORD "bench-password"

struct bench {
	int shared;
	char dir[256];
	char url[128];
	pid_t pid;
	char session[128];
	json_t *refs;
};

struct buf {
	char *b;
	size_t n, cap;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->n + sz * n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + sz * n + 1)
			cap *= 2;
		char *nb = realloc(b->b, cap);
		if (!nb)
			return 0;
		b->b = nb;
		b->cap = cap;
	}
	memcpy(b->b + b->n, p, sz * n);
	b->n += sz * n;
	b->b[b->n] = '\0';
	return sz * n;
}

static CURL *client(const struct bench *B, struct curl_slist **hdr)
{
	CURL *c = curl_easy_init();
	*hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, B->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdr);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	return c;
}

/* One call; returns the answer text (malloc'ed) or NULL. */
static char *post(CURL *c, const char *body)
{
	struct buf b = {0};
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) != CURLE_OK) {
		free(b.b);
		return NULL;
	}
	return b.b;
}

static json_t *call(CURL *c, const char *method, json_t *params)
{
	json_t *req = json_pack("{s:s, s:s, s:o, s:i}", "jsonrpc", "2.0", "method", method, "params", params, "id", 1);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	char *ans = post(c, body);
	free(body);
	json_t *o = ans ? json_loads(ans, 0, NULL) : NULL;
	free(ans);
	json_t *r = json_incref(json_object_get(o, "result"));
	if (!r) {
		char *e = o ? json_dumps(json_object_get(o, "error"), JSON_COMPACT) : NULL;
		fprintf(stderr, "bench: %s failed: %s\n", method, e ? e : "no answer");
		free(e);
	}
	json_decref(o);
	return r;
}

static int start_pool(struct bench *B, const char *bindir)
{
	snprintf(B->dir, sizeof B->dir, "/tmp/poold-bench-XXXXXX");
	if (!mkdtemp(B->dir))
		return -1;
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "echo %s | %s/poold init --dir %s/pool >/dev/null", PASSWORD, bindir, B->dir);
	if (system(cmd) != 0)
		return -1;
	if (B->shared) { /* the database moved out, as HA's enable moves it to the SR */
		snprintf(cmd, sizeof cmd,
			 "mkdir %1$s/sr && mv %1$s/pool/pool.db %1$s/sr/ && "
			 "echo '{\"database\": \"%1$s/sr/pool.db\"}' > %1$s/pool/master.json",
			 B->dir);
		if (system(cmd) != 0)
			return -1;
	}
	B->pid = fork();
	if (B->pid == 0) {
		char dir[300], poold[300];
		snprintf(dir, sizeof dir, "%s/pool", B->dir);
		snprintf(poold, sizeof poold, "%s/poold", bindir);
		execl(poold, "poold", "--dir", dir, "--set", "port=0", "--set", "listen-address=127.0.0.1",
		      "--set", "log-level=warn", (char *)NULL);
		_exit(127);
	}
	char portfile[300];
	snprintf(portfile, sizeof portfile, "%s/pool/poold.port", B->dir);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(portfile, "r");
		int port = 0;
		if (f && fscanf(f, "%d", &port) == 1 && port > 0) {
			fclose(f);
			snprintf(B->url, sizeof B->url, "https://127.0.0.1:%d/jsonrpc", port);
			return 0;
		}
		if (f)
			fclose(f);
		usleep(20000);
	}
	return -1;
}

struct filler {
	const struct bench *B;
	int from, to;
};

static void *fill(void *arg)
{
	struct filler *f = arg;
	struct curl_slist *h;
	CURL *c = client(f->B, &h);
	for (int i = f->from; i < f->to; i++) {
		char name[64];
		snprintf(name, sizeof name, "bench-vm-%05d", i);
		json_t *rec = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:s}, s:{s:s}}", "name_label",
					name, "name_description", "a VM record for the API benchmark",
					"memory_static_max", (json_int_t)1 << 30, "memory_dynamic_max", (json_int_t)1 << 30,
					"memory_dynamic_min", (json_int_t)1 << 29, "memory_static_min", (json_int_t)1 << 28,
					"VCPUs_max", (json_int_t)2, "VCPUs_at_startup", (json_int_t)2, "platform", "acpi",
					"1", "other_config", "bench", "true");
		json_decref(call(c, "VM.create", json_pack("[s,o]", f->B->session, rec)));
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return NULL;
}

struct loader {
	const struct bench *B;
	int noop;
	int id;
	double until;
	long calls;
};

static void *load(void *arg)
{
	struct loader *L = arg;
	struct curl_slist *h;
	CURL *c = client(L->B, &h);
	size_t n = json_array_size(L->B->refs);
	size_t i = (size_t)L->id * 997;
	char body[512];
	while (now_s() < L->until) {
		if (L->noop)
			snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"system.noop\",\"params\":[],\"id\":1}");
		else
			snprintf(body, sizeof body,
				 "{\"jsonrpc\":\"2.0\",\"method\":\"VM.get_record\",\"params\":[\"%s\",\"%s\"],\"id\":1}",
				 L->B->session, json_string_value(json_array_get(L->B->refs, i++ % n)));
		char *a = post(c, body);
		if (a && strstr(a, "\"result\""))
			L->calls++;
		free(a);
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return NULL;
}

static double rate(const struct bench *B, int noop)
{
	pthread_t t[THREADS];
	struct loader L[THREADS];
	double start = now_s();
	for (int i = 0; i < THREADS; i++) {
		L[i] = (struct loader){B, noop, i, start + RUN_SECONDS, 0};
		pthread_create(&t[i], NULL, load, &L[i]);
	}
	long total = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		total += L[i].calls;
	}
	return (double)total / (now_s() - start);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct waiter {
	const struct bench *B;
	char token[64];
	double done;
};

static void *wait_event(void *arg)
{
	struct waiter *w = arg;
	struct curl_slist *h;
	CURL *c = client(w->B, &h);
	json_t *r = call(c, "event.from", json_pack("[s,[s],s,f]", w->B->session, "VM", w->token, 30.0));
	w->done = now_s();
	json_decref(r);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return NULL;
}

static double event_wake_ms(const struct bench *B, CURL *c)
{
	double ms[21];
	const char *vm = json_string_value(json_array_get(B->refs, 0));
	for (int i = 0; i < 21; i++) {
		json_t *tok = call(c, "event.inject", json_pack("[s,s,s]", B->session, "VM", vm));
		struct waiter w = {B, "", 0};
		/* inject's token is just before its own event: skip past it */
		json_t *r = call(c, "event.from", json_pack("[s,[s],s,f]", B->session, "VM", json_string_value(tok), 0.0));
		snprintf(w.token, sizeof w.token, "%s", json_string_value(json_object_get(r, "token")));
		json_decref(r);
		json_decref(tok);
		pthread_t t;
		pthread_create(&t, NULL, wait_event, &w);
		usleep(100000); /* let it park */
		char name[32];
		snprintf(name, sizeof name, "wake-%d", i);
		double t0 = now_s();
		json_decref(call(c, "VM.set_name_label", json_pack("[s,s,s]", B->session, vm, name)));
		pthread_join(t, NULL);
		ms[i] = (w.done - t0) * 1000.0;
	}
	qsort(ms, 21, sizeof ms[0], cmp_d);
	return ms[10];
}

static double get_all_records_ms(CURL *c, const struct bench *B)
{
	double ms[5];
	char body[256];
	snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"VM.get_all_records\",\"params\":[\"%s\"],\"id\":1}",
		 B->session);
	for (int i = 0; i < 5; i++) {
		double t0 = now_s();
		free(post(c, body));
		ms[i] = (now_s() - t0) * 1000.0;
	}
	qsort(ms, 5, sizeof ms[0], cmp_d);
	return ms[2];
}

static double rss_mib(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	double kib = 0;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, field, strlen(field)) == 0)
			kib = atof(line + strlen(field) + 1);
	if (f)
		fclose(f);
	return kib / 1024.0;
}

struct figures {
	size_t vms;
	double create, getrec, noop, gar, wake, rss, hwm;
};

/* One pool, filled and measured; its directory removed after. */
static int measure(const char *bindir, int shared, struct figures *f)
{
	struct bench B = {.shared = shared};
	if (start_pool(&B, bindir) < 0) {
		fprintf(stderr, "bench: cannot start poold from %s\n", bindir);
		return -1;
	}
	struct curl_slist *h;
	CURL *c = client(&B, &h);
	json_t *s = call(c, "session.login_with_password", json_pack("[s,s]", "root", PASSWORD));
	snprintf(B.session, sizeof B.session, "%s", json_string_value(s));
	json_decref(s);
	double t0 = now_s();
	pthread_t t[THREADS];
	struct filler F[THREADS];
	for (int i = 0; i < THREADS; i++) {
		F[i] = (struct filler){&B, i * NVMS / THREADS, (i + 1) * NVMS / THREADS};
		pthread_create(&t[i], NULL, fill, &F[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	f->create = NVMS / (now_s() - t0);
	B.refs = call(c, "VM.get_all", json_pack("[s]", B.session));
	f->noop = rate(&B, 1);
	f->getrec = rate(&B, 0);
	f->gar = get_all_records_ms(c, &B);
	f->wake = event_wake_ms(&B, c);
	f->rss = rss_mib(B.pid, "VmRSS:");
	f->hwm = rss_mib(B.pid, "VmHWM:");
	f->vms = json_array_size(B.refs);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	json_decref(B.refs);
	kill(B.pid, SIGTERM);
	waitpid(B.pid, NULL, 0);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", B.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", B.dir);
	return 0;
}

int main(int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	const char *bindir = getenv("BINDIR") ? getenv("BINDIR") : "bin";
	static const char *const mode[2] = {"local", "shared"};
	struct figures f[2];
	curl_global_init(CURL_GLOBAL_ALL);
	for (int m = 0; m < 2; m++)
		if (measure(bindir, m, &f[m]) < 0)
			return 1;
	curl_global_cleanup();
	if (json) {
		for (int m = 0; m < 2; m++)
			printf("{\"bench\":\"api\",\"database\":\"%s\",\"vms\":%zu,\"clients\":%d,"
			       "\"get_record_per_s\":%.0f,\"noop_per_s\":%.0f,\"ratio\":%.3f,\"get_all_records_ms\":%.1f,"
			       "\"event_wake_ms_median\":%.2f,\"rss_mib\":%.1f,\"rss_peak_mib\":%.1f,"
			       "\"vm_create_per_s\":%.0f}\n",
			       mode[m], f[m].vms, THREADS, f[m].getrec, f[m].noop, f[m].getrec / f[m].noop, f[m].gar,
			       f[m].wake, f[m].rss, f[m].hwm, f[m].create);
		return 0;
	}
	printf("api bench: %zu VM records, %d keep-alive HTTPS clients; the database local | on shared storage\n"
	       "  VM.create (filling)        %8.0f | %8.0f calls/s (shared >= half of local)\n"
	       "  VM.get_record              %8.0f | %8.0f calls/s\n"
	       "  system.noop (baseline)     %8.0f | %8.0f calls/s\n"
	       "  ratio get_record/noop      %8.3f | %8.3f         (target >= 0.8)\n"
	       "  VM.get_all_records         %8.1f | %8.1f ms      (target <= 150)\n"
	       "  event.from wake-up median  %8.2f | %8.2f ms      (target <= 5; shared <= twice local)\n"
	       "  poold RSS                  %8.1f | %8.1f MiB     (peak %.1f | %.1f; target <= 50)\n",
	       f[0].vms, THREADS, f[0].create, f[1].create, f[0].getrec, f[1].getrec, f[0].noop, f[1].noop,
	       f[0].getrec / f[0].noop, f[1].getrec / f[1].noop, f[0].gar, f[1].gar, f[0].wake, f[1].wake, f[0].rss,
	       f[1].rss, f[0].hwm, f[1].hwm);
	return 0;
}
