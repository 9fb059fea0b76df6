/*
 * Helper program of tests/unit/test_points.c, built at -O0 and -O2 with -g: a static inline
 * function called from two functions (at -O2, two inlined copies of its body), and a plain line.
 * The test finds the lines by their POINT markers, never by number. It does nothing useful.
 */
#include <stdio.h>
#include <stdlib.h>

volatile long shared;

static inline long
bump(long x)
{
	shared += x * 3; /* POINT:inline */
	return shared;
}

__attribute__((noinline)) static long
first(long x)
{
	return bump(x) + 1; /* CALL:first */
}

__attribute__((noinline)) static long
second(long x)
{
	long r = bump(x + 7); /* CALL:second */

	return r * 5;
}

int
main(int argc, char **argv)
{
	long v = argc > 1 ? strtol(argv[1], NULL, 10) : 2;

	v = first(v) + second(v);
	shared = v; /* POINT:plain */

	/* POINT:comment */
	printf("%ld\n", (long)shared);
	return 0;
}
