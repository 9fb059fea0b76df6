/*
 * dlopen_main: loads libdlopen_lib.so at run time and calls it (dlopen.h).
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>

#include "dlopen.h"
#include "progutil.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long sum;

static void
lock_some(void)
{
	for (int i = 0; i < DL_MAIN_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum++;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	}
}

int
main(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	long (*work)(void);
	ssize_t n;
	void *lib;
	long r;

	lock_some();
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		prog_die("readlink: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dirname(exe), DL_LIB_NAME);
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		prog_die("dlopen: %s", dlerror());
	*(void **)&work = dlsym(lib, "dlopen_lib_work");
	if (!work)
		prog_die("dlsym: %s", dlerror());
	r = work();
	lock_some();
	if (dlclose(lib))
		prog_die("dlclose: %s", dlerror());
	if (r != 2 * DL_LIB_LOCKS || sum != 2 * DL_MAIN_LOCKS)
		prog_die("dlopen: lib %ld, main %ld", r, sum);
	printf("dlopen: ok lib=%ld main=%ld\n", r, sum);
	return 0;
}
