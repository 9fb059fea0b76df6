/*
 * model/ unit tests: event kinds and the event's JSON form.
 */
#include <errno.h>
#include <string.h>

#include "model/event.h"
#include "ckmain.h"

START_TEST(kind_names_round_trip)
{
	for (int i = 0; i < MODEL_EV__COUNT; i++) {
		enum model_event_kind k;
		ck_assert_int_eq(model_event_kind_parse(model_event_kind_name(i), &k), 0);
		ck_assert_int_eq(k, i);
	}
	enum model_event_kind k = MODEL_EV_POINT;
	ck_assert_int_eq(model_event_kind_parse("mutex_lok", &k), -EINVAL);
	ck_assert_int_eq(k, MODEL_EV_POINT);
	ck_assert_str_eq(model_event_kind_name(MODEL_EV__COUNT), "?");
}
END_TEST

START_TEST(event_json_exact)
{
	struct model_event ev = {
		.seq = 7, .ns = 123456789, .thread = 2, .tid = 4242, .pid = 4240,
		.kind = MODEL_EV_MUTEX_LOCK, .object = 0x7ffd1000,
		.site = "prog+0x1234", .where = "a \"b\".c:12 f\n",
	};
	char buf[512];
	size_t n = model_event_format_json(&ev, buf, sizeof(buf));
	ck_assert_str_eq(buf, "{\"seq\":7,\"ns\":123456789,\"thread\":2,\"tid\":4242,\"pid\":4240,"
			      "\"kind\":\"mutex_lock\",\"site\":\"prog+0x1234\","
			      "\"where\":\"a \\\"b\\\".c:12 f\\n\",\"object\":\"0x7ffd1000\"}");
	ck_assert_uint_eq(n, strlen(buf));
}
END_TEST

START_TEST(event_json_truncation_counts_full_length)
{
	struct model_event ev = {
		.seq = 1, .thread = 1, .kind = MODEL_EV_SIGNAL, .site = "x+0x1", .where = NULL,
	};
	char full[256], small[16];
	size_t n = model_event_format_json(&ev, full, sizeof(full));
	size_t m = model_event_format_json(&ev, small, sizeof(small));
	ck_assert_uint_eq(n, m);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(strncmp(full, small, sizeof(small) - 1), 0);
	ck_assert_ptr_null(strstr(full, "where"));
}
END_TEST

START_TEST(quote_control_bytes)
{
	char buf[64];
	model_json_quote("\x01t\x7f", buf, sizeof(buf));
	ck_assert_str_eq(buf, "\"\\u0001t\\u007f\"");
}
END_TEST

static Suite *
model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("event");
	tcase_add_test(tc, kind_names_round_trip);
	tcase_add_test(tc, event_json_exact);
	tcase_add_test(tc, event_json_truncation_counts_full_length);
	tcase_add_test(tc, quote_control_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return ck_run_main(model_suite());
}
