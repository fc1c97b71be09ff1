/*
 * xe.c - the xe command line client: XAPI's `xe` against poold's JSON-RPC
 * endpoint. Options from the command line win over XE_* environment
 * variables, which win over ~/.xe. Output on stdout, errors on stderr
 * (the XAPI code, then one "name: value" line per parameter), exit 1 on
 * any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "util.h"
#include "version.h"
#include "xe.h"

int main(int argc, char **argv)
{
	util_json_init();
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("xe %s\n", POOLD_VERSION);
		return 0;
	}
	struct xe_opts opts;
	char err[512] = "";
	if (xe_opts_parse(&opts, argc - 1, argv + 1, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		xe_opts_free(&opts);
		return 1;
	}
	char *rc_path = NULL;
	const char *home = getenv("HOME");
	if (home && asprintf(&rc_path, "%s/.xe", home) < 0)
		rc_path = NULL;
	int rc = xe_opts_defaults(&opts, rc_path, err, sizeof err);
	free(rc_path);
	if (rc) {
		fprintf(stderr, "%s\n", err);
		xe_opts_free(&opts);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct xe_ctx ctx = {.opts = &opts, .out = stdout};
	rc = xe_run(&ctx);
	fflush(stdout);
	if (rc)
		xe_print_error(&ctx, stderr);
	xe_ctx_free(&ctx);
	xe_opts_free(&opts);
	curl_global_cleanup();
	return rc;
}
