/*
 * Sharing points for the --points test: two threads write and read a plain global at the
 * lines marked WRITE and READ, a known number of times, with no pthread call in between.
 * "points fault" then reads through a null pointer at the line marked FAULT: the statement's
 * first instruction loads the pointer, its second faults.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define N 5

static volatile int shared;
static int *volatile nowhere;

static void *
writer(void *arg)
{
	for (int i = 0; i < N; i++)
		shared = i; /* WRITE */
	return arg;
}

int
main(int argc, char **argv)
{
	pthread_t t;
	int sum = 0;

	pthread_create(&t, NULL, writer, NULL);
	pthread_join(t, NULL);
	for (int i = 0; i < N; i++)
		sum += shared; /* READ */
	if (argc > 1 && strcmp(argv[1], "fault") == 0)
		sum += *nowhere; /* FAULT */
	printf("%d\n", sum);
	return 0;
}
