/* domain_config.c - a domain's configuration and its wire form (see domain_config.h). */
#include <stdio.h>
#include <string.h>
#include "domain_config.h"
#include "xerr.h"

json_t *dcfg_to_json(const struct be_domain_config *c)
{
	json_t *disks = json_array();
	for (int i = 0; i < c->dc_ndisks; i++) {
		const struct be_disk *d = &c->dc_disks[i];
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:b}", "vdi_uuid", d->bd_vdi_uuid, "sr",
						       d->bd_sr_uuid, "device", d->bd_device, "readonly",
						       d->bd_readonly));
	}
	const struct be_workload *w = &c->dc_workload;
	return json_pack("{s:s, s:s, s:I, s:i, s:s, s:s, s:s, s:b, s:o, s:{s:I, s:I, s:I, s:i, s:i, s:i, s:I, s:i}}",
			 "uuid", c->dc_uuid, "name", c->dc_name, "memory", (json_int_t)c->dc_memory, "vcpus",
			 c->dc_vcpus, "cpu_vendor", c->dc_cpu_vendor, "featureset", c->dc_featureset, "guest_type",
			 c->dc_guest_type, "start_paused", c->dc_start_paused, "disks", disks, "workload",
			 "touch_pages", (json_int_t)w->wl_touch_pages, "dirty_pages_per_s",
			 (json_int_t)w->wl_dirty_pages_per_s, "working_set_pages", (json_int_t)w->wl_working_set_pages,
			 "pct_zero", w->wl_pct_zero, "pct_text", w->wl_pct_text, "pct_random", w->wl_pct_random,
			 "disk_write_bytes_per_s", (json_int_t)w->wl_disk_write_bytes_per_s, "heartbeat_ms",
			 (int)w->wl_heartbeat_ms);
}

/* Copy a string field; false when it is there but not a string or too long. */
static bool take_str(char *dst, size_t len, const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	const char *s = json_string_value(v);
	dst[0] = '\0';
	if (!v)
		return true;
	if (!s || strlen(s) >= len)
		return false;
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

/* A non-negative integer field (absent: 0); false when it is anything else. */
static bool take_u64(uint64_t *dst, const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	*dst = 0;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*dst = (uint64_t)json_integer_value(v);
	return true;
}

static bool take_int(int *dst, const json_t *o, const char *k, int lo, int hi)
{
	uint64_t u;
	if (!take_u64(&u, o, k) || u > (uint64_t)hi || (int)u < lo)
		return false;
	*dst = (int)u;
	return true;
}

static json_t *bad(const char *why)
{
	return xerr_new(XE_INVALID_VALUE, "config", why, NULL);
}

static json_t *disks_from_json(const json_t *arr, struct be_domain_config *c)
{
	if (arr && !json_is_array(arr))
		return bad("disks is not a list");
	if (json_array_size(arr) > BE_MAX_DISKS)
		return bad("more disks than a domain can have (8)");
	size_t i;
	json_t *d;
	json_array_foreach(arr, i, d) {
		struct be_disk *bd = &c->dc_disks[c->dc_ndisks++];
		json_t *ro = json_object_get(d, "readonly");
		if (!json_is_object(d) || !take_str(bd->bd_vdi_uuid, sizeof bd->bd_vdi_uuid, d, "vdi_uuid") ||
		    !take_str(bd->bd_sr_uuid, sizeof bd->bd_sr_uuid, d, "sr") ||
		    !take_str(bd->bd_device, sizeof bd->bd_device, d, "device") || (ro && !json_is_boolean(ro)) ||
		    !bd->bd_vdi_uuid[0] || !bd->bd_sr_uuid[0])
			return bad("a disk needs vdi_uuid, sr and device strings");
		bd->bd_readonly = json_is_true(ro);
	}
	return NULL;
}

static json_t *workload_from_json(const json_t *w, struct be_workload *wl)
{
	uint64_t hb;
	if (w && !json_is_object(w))
		return bad("workload is not an object");
	if (!take_u64(&wl->wl_touch_pages, w, "touch_pages") ||
	    !take_u64(&wl->wl_dirty_pages_per_s, w, "dirty_pages_per_s") ||
	    !take_u64(&wl->wl_working_set_pages, w, "working_set_pages") ||
	    !take_int(&wl->wl_pct_zero, w, "pct_zero", 0, 100) || !take_int(&wl->wl_pct_text, w, "pct_text", 0, 100) ||
	    !take_int(&wl->wl_pct_random, w, "pct_random", 0, 100) ||
	    !take_u64(&wl->wl_disk_write_bytes_per_s, w, "disk_write_bytes_per_s") ||
	    !take_u64(&hb, w, "heartbeat_ms") || hb > 60000)
		return bad("workload figures must be non-negative integers (percentages <= 100)");
	wl->wl_heartbeat_ms = (uint32_t)hb;
	return NULL;
}

json_t *dcfg_from_json(const json_t *j, struct be_domain_config *c)
{
	memset(c, 0, sizeof *c);
	if (!json_is_object(j))
		return xerr_new(XE_FIELD_TYPE_ERROR, "config", NULL);
	json_t *paused = json_object_get(j, "start_paused");
	if (!take_str(c->dc_uuid, sizeof c->dc_uuid, j, "uuid") || !take_str(c->dc_name, sizeof c->dc_name, j, "name") ||
	    !take_str(c->dc_cpu_vendor, sizeof c->dc_cpu_vendor, j, "cpu_vendor") ||
	    !take_str(c->dc_featureset, sizeof c->dc_featureset, j, "featureset") ||
	    !take_str(c->dc_guest_type, sizeof c->dc_guest_type, j, "guest_type") ||
	    !take_u64(&c->dc_memory, j, "memory") || !take_int(&c->dc_vcpus, j, "vcpus", 0, 4096) ||
	    (paused && !json_is_boolean(paused)))
		return bad("a field has the wrong type or is too long");
	if (!c->dc_uuid[0] || c->dc_memory == 0 || c->dc_vcpus < 1)
		return bad("needs uuid, memory and vcpus");
	c->dc_start_paused = json_is_true(paused);
	json_t *e = disks_from_json(json_object_get(j, "disks"), c);
	return e ? e : workload_from_json(json_object_get(j, "workload"), &c->dc_workload);
}
