/*
 * The one main() shape of every Check executable: run the suite in fork mode (each test in its
 * own process group, so stray tracees die with it), print "RESULT: passed=N failed=M" for
 * .ci/run, and exit non-zero on any failure.
 */
#pragma once

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static inline int
ck_run_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int run, failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	printf("RESULT: passed=%d failed=%d\n", run - failed, failed);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
