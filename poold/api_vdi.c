/*
 * api_vdi.c - VDI.copy (a full copy into an SR, through an agent with both
 * SRs plugged) and VDI.resize_online (a disk grows under its running VM:
 * the guest sees the new size, as the sim guest's disk writer does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

static json_t *copied(struct api_call *c, struct poold *pd, void *ctx, json_t *made, json_t **result)
{
	(void)c, (void)pd, (void)ctx;
	*result = json_incref(json_array_get(made, 0));
	return NULL;
}

/* VDI.copy(vdi, sr[, base_vdi, into_vdi]): copying only the differences
 * from base_vdi or into an existing VDI is not done here. */
json_t *vdi_copy(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vdi, *sr, *base = MODEL_NULL_REF, *into = MODEL_NULL_REF;
	json_t *rec, *e = api_arg_ref(c, 0, "VDI", &vdi);
	if (e || (e = api_arg_ref(c, 1, "SR", &sr)) ||
	    (json_array_size(c->ac_args) > 2 && (e = api_arg_str(c, 2, "base_vdi", &base))) ||
	    (json_array_size(c->ac_args) > 3 && (e = api_arg_str(c, 3, "into_vdi", &into))))
		return e;
	if (strcmp(base, MODEL_NULL_REF) || strcmp(into, MODEL_NULL_REF))
		return xerr_new(XE_VALUE_NOT_SUPPORTED, strcmp(base, MODEL_NULL_REF) ? "base_vdi" : "into_vdi",
				strcmp(base, MODEL_NULL_REF) ? base : into, "only full copies into a new VDI are made", NULL);
	if ((e = db_obj_get_checked(pd->pd_db, "VDI", vdi, &rec)))
		return e;
	json_decref(rec);
	if ((e = ops_assert(pd->pd_db, vdi, "copy")))
		return e;
	json_t *rsr;
	if ((e = db_obj_get_checked(pd->pd_db, "SR", sr, &rsr)))
		return e;
	json_decref(rsr);
	json_t *items = json_pack("[{s:s, s:s, s:b}]", "vdi", vdi, "sr", sr, "snapshot", 0), *result = NULL;
	e = vdijob_run(pd, c, items, copied, NULL, NULL, NULL, &result);
	if (!e)
		c->ac_result = result;
	return e;
}

struct grow {
	char gr_vdi[64];
};

static json_t *grown_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [vdi ref, answer] */
	json_t *e = db_obj_update_new(db, json_string_value(a[0]),
				      json_pack("{s:O, s:O}", "virtual_size", json_object_get(a[1], "virtual_size"),
						"physical_utilisation", json_object_get(a[1], "physical_utilisation")));
	return e ? e : sr_space_update(db, json_object_get(a[1], "sr"));
}

static json_t *grown(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)result;
	struct grow *g = ctx;
	json_t *a[2] = {json_string(g->gr_vdi), answer};
	json_t *e = db_txn(pd->pd_db, grown_txn, a);
	json_decref(a[0]);
	return e;
}

/* VDI.resize_online(vdi, size): a disk attached to a running VM grows (it
 * never shrinks, as XAPI); the file grows on the VM's host. */
json_t *vdi_resize_online(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vdi;
	json_int_t size;
	json_t *rec, *e = api_arg_ref(c, 0, "VDI", &vdi);
	if (e || (e = api_arg_int(c, 1, "size", &size)) || (e = db_obj_get_checked(pd->pd_db, "VDI", vdi, &rec)))
		return e;
	char host[64];
	json_t *sr = db_obj_get(pd->pd_db, jstr(rec, "SR"));
	if (size < json_integer_value(json_object_get(rec, "virtual_size"))) {
		char v[32];
		snprintf(v, sizeof v, "%lld", (long long)size);
		e = xerr_new(XE_VALUE_NOT_SUPPORTED, "size", v, "VDIs only grow", NULL);
	} else if (!(e = ops_assert(pd->pd_db, vdi, "resize_online")) && !sr_worker(pd->pd_db, jstr(rec, "SR"), host)) {
		e = xerr_new(XE_SR_HAS_NO_PBDS, jstr(rec, "SR"), NULL);
	}
	if (!e) {
		struct grow *g = xcalloc(1, sizeof *g);
		snprintf(g->gr_vdi, sizeof g->gr_vdi, "%s", vdi);
		e = agent_call(c, host, AGENT_VDI_RESIZE, json_pack("[s,s,I]", jstr(sr, "uuid"), jstr(rec, "uuid"), size),
			       grown, NULL, g);
	}
	json_decref(sr);
	json_decref(rec);
	return e;
}
