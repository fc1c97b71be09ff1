/* test_xen_image.c - the xen suspend image's header (agent/xen_image.c):
 * a whole image of the right VM is accepted; another backend's image, a
 * newer version, another VM's, one whose save did not finish, and one cut
 * short or grown are refused, each with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sim_save.h"
#include "xen_save.h"

#define UUID "6f1f4a4e-3b1c-4d6a-9a53-1f2e3d4c5b6a"
#define OTHER "0a0b0c0d-0000-4000-8000-000000000001"
#define STREAM 134493510ull

static struct xen_image_header whole(void)
{
	struct xen_image_header h;
	xen_image_header_init(&h, UUID, 128ull << 20, 96ull << 20);
	h.xi_stream_len = STREAM;
	h.xi_complete = 1;
	return h;
}

static void refused(const struct xen_image_header *h, uint64_t size, const char *uuid, const char *why)
{
	char err[256] = "";
	assert_int_equal(xen_image_header_check(h, size, uuid, err, sizeof err), -1);
	if (!strstr(err, why))
		fail_msg("reason '%s' does not say '%s'", err, why);
}

static void test_whole_image(void **state)
{
	(void)state;
	struct xen_image_header h = whole();
	char err[256] = "";
	assert_int_equal(xen_image_header_check(&h, sizeof h + STREAM, UUID, err, sizeof err), 0);
	assert_int_equal(xen_image_header_check(&h, sizeof h + STREAM, NULL, err, sizeof err), 0);
	assert_memory_equal(h.xi_magic, XEN_IMAGE_MAGIC, 8);
	assert_int_equal(h.xi_memory, 128ull << 20);
	assert_int_equal(h.xi_target, 96ull << 20);
	assert_string_equal(h.xi_uuid, UUID);
}

static void test_other_backend_or_version(void **state)
{
	(void)state;
	struct xen_image_header h = whole();
	struct sim_image_trailer t;
	sim_image_trailer_init(&t, 4096, 4096, UUID);
	char buf[sizeof h];
	memset(buf, 0, sizeof buf); /* a sim image starts with the guest's RAM */
	memcpy(buf, &t, sizeof t < sizeof buf ? sizeof t : sizeof buf);
	refused((const struct xen_image_header *)buf, sizeof h + STREAM, UUID, "not a xen suspend image");
	refused(&h, sizeof h - 1, UUID, "not a xen suspend image");
	h.xi_version = XEN_IMAGE_VERSION + 1;
	refused(&h, sizeof h + STREAM, UUID, "version 2, this agent reads version 1");
}

static void test_other_vm(void **state)
{
	(void)state;
	struct xen_image_header h = whole();
	refused(&h, sizeof h + STREAM, OTHER, "is VM " UUID "'s, not VM " OTHER "'s");
	memset(h.xi_uuid, 'a', sizeof h.xi_uuid); /* no terminator: not read past */
	refused(&h, sizeof h + STREAM, NULL, "not VM");
}

static void test_unfinished_or_damaged(void **state)
{
	(void)state;
	struct xen_image_header h = whole();
	h.xi_complete = 0;
	refused(&h, sizeof h + STREAM, UUID, "incomplete");
	h = whole();
	refused(&h, sizeof h + STREAM - 1, UUID, "134493510 bytes of stream expected, the file has 134493509");
	refused(&h, sizeof h + STREAM + 4096, UUID, "damaged");
	h.xi_stream_len = 0;
	refused(&h, sizeof h, UUID, "damaged");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_image),
		cmocka_unit_test(test_other_backend_or_version),
		cmocka_unit_test(test_other_vm),
		cmocka_unit_test(test_unfinished_or_damaged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
