/* test_migcheck.c - every refusal before a pool migration, in XAPI's
 * order, with its parameters; and the version order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "migcheck.h"

#define LEVEL "1fcbfbff-f7fa3223-2d93fbff-00000023"
static const char *const sr_shared[] = {"OpaqueRef:sr1"};
static const char *const sr_both[] = {"OpaqueRef:sr1", "OpaqueRef:sr2"};

static struct mig_vm good_vm(void)
{
	return (struct mig_vm){"OpaqueRef:vm", "Running", "OpaqueRef:h1", false, false, false, false, 1 << 30,
			       "GenuineIntel", LEVEL, sr_shared, 1};
}

static struct mig_host host(const char *ref)
{
	return (struct mig_host){ref, true, true, true, false, "GenuineIntel", LEVEL, "1.2.0", 4LL << 30, sr_both, 2};
}

static void expect(json_t *e, const char *code, int nparams, ...)
{
	if (!code) {
		if (e) {
			char *t = json_dumps(e, 0);
			fail_msg("unexpected error %s", t);
		}
		return;
	}
	assert_non_null(e);
	assert_string_equal(json_string_value(json_array_get(e, 0)), code);
	assert_int_equal(json_array_size(e) - 1, nparams);
	va_list ap;
	va_start(ap, nparams);
	for (int i = 0; i < nparams; i++) {
		const char *p = va_arg(ap, const char *);
		if (p)
			assert_string_equal(json_string_value(json_array_get(e, (size_t)i + 1)), p);
	}
	va_end(ap);
	json_decref(e);
}

static void test_ok(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	expect(mig_check(&v, &a, &b, false), NULL, 0);
}

static void test_power_state(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	v.mv_power_state = "Halted";
	expect(mig_check(&v, &a, &b, false), "VM_BAD_POWER_STATE", 3, "OpaqueRef:vm", "running", "halted");
	v.mv_power_state = "Paused";
	expect(mig_check(&v, &a, &b, false), "VM_BAD_POWER_STATE", 3, "OpaqueRef:vm", "running", "paused");
}

static void test_vm_refusals_in_order(void **s)
{
	(void)s;
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	struct mig_vm v = good_vm();
	v.mv_nomigrate = v.mv_has_pci = v.mv_has_vusb = v.mv_busy = true;
	expect(mig_check(&v, &a, &b, true), "VM_IS_IMMOBILE", 1, "OpaqueRef:vm");
	v.mv_nomigrate = false;
	expect(mig_check(&v, &a, &b, true), "VM_HAS_PCI_ATTACHED", 1, "OpaqueRef:vm");
	v.mv_has_pci = false;
	expect(mig_check(&v, &a, &b, true), "VM_HAS_VUSBS", 1, "OpaqueRef:vm");
	v.mv_has_vusb = false;
	expect(mig_check(&v, &a, &b, true), "OTHER_OPERATION_IN_PROGRESS", 2, "VM", "OpaqueRef:vm");
}

static void test_same_host(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1");
	expect(mig_check(&v, &a, &a, false), "OPERATION_NOT_ALLOWED", 1, NULL);
}

static void test_destination_state(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	b.mh_enabled = false;
	expect(mig_check(&v, &a, &b, false), "HOST_DISABLED", 1, "OpaqueRef:h2");
	b = host("OpaqueRef:h2");
	b.mh_evacuating = true;
	expect(mig_check(&v, &a, &b, false), "HOST_EVACUATE_IN_PROGRESS", 1, "OpaqueRef:h2");
	b = host("OpaqueRef:h2");
	b.mh_live = false;
	expect(mig_check(&v, &a, &b, false), "HOST_NOT_LIVE", 0);
	b = host("OpaqueRef:h2");
	b.mh_has_agent = false;
	expect(mig_check(&v, &a, &b, false), "HOST_OFFLINE", 1, "OpaqueRef:h2");
}

static void test_versions(void **s)
{
	(void)s;
	assert_true(mig_version_cmp("1.2.10", "1.2.9") > 0);
	assert_true(mig_version_cmp("1.2", "1.2.0") == 0);
	assert_true(mig_version_cmp("0.9", "1.0") < 0);
	assert_true(mig_version_cmp("2", "10") < 0);
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	b.mh_version = "1.1.9";
	expect(mig_check(&v, &a, &b, false), "VM_HOST_INCOMPATIBLE_VERSION_MIGRATE", 2, "OpaqueRef:h2", "OpaqueRef:vm");
	b.mh_version = "1.3.0"; /* newer is fine */
	expect(mig_check(&v, &a, &b, false), NULL, 0);
}

static void test_cpu(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	b.mh_features = "1fcbfbff-f7fa3223-2d93fbff-00000003";
	json_t *e = mig_check(&v, &a, &b, false);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_array_get(e, 0)), "VM_INCOMPATIBLE_WITH_THIS_HOST");
	assert_non_null(strstr(json_string_value(json_array_get(e, 3)), "word 3 bit 5"));
	json_decref(e);
	expect(mig_check(&v, &a, &b, true), NULL, 0); /* force skips the CPU check */
	b = host("OpaqueRef:h2");
	b.mh_vendor = "AuthenticAMD";
	e = mig_check(&v, &a, &b, false);
	assert_non_null(strstr(json_string_value(json_array_get(e, 3)), "AuthenticAMD"));
	json_decref(e);
}

static void test_memory_and_srs(void **s)
{
	(void)s;
	struct mig_vm v = good_vm();
	struct mig_host a = host("OpaqueRef:h1"), b = host("OpaqueRef:h2");
	b.mh_available = (1 << 30) - 1;
	expect(mig_check(&v, &a, &b, false), "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "1073741824", "1073741823");
	b.mh_available = -5; /* overcommitted by flights in progress */
	expect(mig_check(&v, &a, &b, false), "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "1073741824", "0");
	b = host("OpaqueRef:h2");
	static const char *const other[] = {"OpaqueRef:sr2"};
	b.mh_srs = other;
	b.mh_nsrs = 1;
	expect(mig_check(&v, &a, &b, false), "VM_REQUIRES_SR", 2, "OpaqueRef:vm", "OpaqueRef:sr1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_power_state),
		cmocka_unit_test(test_vm_refusals_in_order),
		cmocka_unit_test(test_same_host),
		cmocka_unit_test(test_destination_state),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_memory_and_srs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
