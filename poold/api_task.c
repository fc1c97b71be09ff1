/* api_task.c - task.cancel and task.destroy (the getters are generated). */
#include <string.h>
#include "poold.h"
#include "xerr.h"

static json_t *cancel_txn(struct db *db, void *ctx)
{
	const char *ref = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "task", ref, &rec);
	if (e)
		return e;
	const char *st = json_string_value(json_object_get(rec, "status"));
	if (!st || strcmp(st, "pending") != 0) {
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "task %s is %s: only a pending task can be cancelled", ref,
			      st ? st : "?");
		json_decref(rec);
		return e;
	}
	json_decref(rec);
	return db_obj_set(db, ref, "status", json_string("cancelling"));
}

json_t *task_cancel(struct api_call *c)
{
	const char *ref;
	json_t *e = api_arg_str(c, 0, "task", &ref);
	return e ? e : db_txn(c->ac_pd->pd_db, cancel_txn, (void *)ref);
}

static json_t *destroy_txn(struct db *db, void *ctx)
{
	const char *ref = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "task", ref, &rec);
	if (e)
		return e;
	json_decref(rec);
	/* a running task may be forgotten by its client; its work goes on and
	 * its end is simply not recorded */
	return db_obj_destroy(db, ref);
}

json_t *task_destroy(struct api_call *c)
{
	const char *ref;
	json_t *e = api_arg_str(c, 0, "task", &ref);
	return e ? e : db_txn(c->ac_pd->pd_db, destroy_txn, (void *)ref);
}
