/*
 * Sharing points for the --points test: two threads write and read a plain global at the
 * lines marked WRITE and READ, a known number of times, with no pthread call in between.
 */
#include <pthread.h>
#include <stdio.h>

#define N 5

static volatile int shared;

static void *
writer(void *arg)
{
	for (int i = 0; i < N; i++)
		shared = i; /* WRITE */
	return arg;
}

int
main(void)
{
	pthread_t t;
	int sum = 0;

	pthread_create(&t, NULL, writer, NULL);
	pthread_join(t, NULL);
	for (int i = 0; i < N; i++)
		sum += shared; /* READ */
	printf("%d\n", sum);
	return 0;
}
