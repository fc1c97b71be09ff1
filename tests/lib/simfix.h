/* simfix.h - one fixture for tests and benchmarks that drive the sim
 * backend directly: pool-simdom found where the build put it, a backend per
 * state dir (a "host"), workload configs, a pool CA with two host
 * certificates, and cleanup. Used by tests/unit/test_backend_sim.c,
 * tests/unit/test_mig.c and tests/bench/migrate.c.
 *
 * Nothing here asserts: each call reports failure (err) and its caller
 * decides (cmocka's fail_msg in a test, exit in a benchmark). */
#ifndef SIMFIX_H
#define SIMFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "backend.h"

#define SIMFIX_MiB ((uint64_t)1024 * 1024)
/* the CPU the sim hosts report */
#define SIMFIX_VENDOR "AuthenticAMD"
#define SIMFIX_FEATURES "178bfbff-f6f83203-2e500800-040001f3"

uint64_t simfix_now_ms(void);
void simfix_sleep_ms(int ms);

/* $POOLD_BIN/pool-simdom (or $BINDIR, default bin/); false with a message
 * naming the path when it is not there. */
bool simfix_simdom(char *path, size_t len, char *err, size_t errlen);

/* mkdtemp of /tmp/<prefix>.XXXXXX into dir */
bool simfix_tmpdir(char *dir, size_t len, const char *prefix, char *err, size_t errlen);

/* a sim host on state dir `dir` (created if missing) with `mem` bytes of RAM, 2 CPUs */
struct backend *simfix_backend(const char *dir, const char *simdom, uint64_t mem, char *err,
			       size_t errlen);

/* a domain config with a fresh uuid and the given workload */
struct be_domain_config simfix_config(const char *name, uint64_t mem, uint64_t touch, uint64_t rate,
				      uint64_t working_set, int pct_zero, int pct_text, int pct_random);

/* destroy every domain the backend knows; the number listed, -1 if it could not list */
int simfix_destroy_all(struct backend *be);

/* remove dir and everything under it */
void simfix_wipe(const char *dir);

/* In dir: a pool CA and certificates for CNs "host-a" (client, the
 * source) and "host-b" (server, the destination), both for 127.0.0.1.
 * *srv is host-b's server context (peer certificate required), *cli
 * host-a's client context. */
bool simfix_tls(const char *dir, SSL_CTX **srv, SSL_CTX **cli, char *err, size_t errlen);

#endif
