/*
 * startup: measures the start-up delay of aviso-trace (bench/trace/run.sh).
 *
 * Linked to libc and libstdc++ (it uses std::string, std::vector and std::cout, so libstdc++ is
 * a real DT_NEEDED dependency, with its symbols for the tracer to load). The first statement of
 * main reads CLOCK_MONOTONIC; the program prints it as "startup-ns N". runstat records the same
 * clock just before execve, so the difference is the time from exec to the program's first line:
 * the dynamic loader, libstdc++'s constructors, and, when traced, everything the tracer does
 * before it lets the program run (symbol loading, breakpoint planting).
 */
#include <time.h>

#include <iostream>
#include <string>
#include <vector>

int
main()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);

	long long ns = static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
	std::vector<std::string> words{"startup-ns", std::to_string(ns)};
	std::cout << words[0] << ' ' << words[1] << std::endl;
	return 0;
}
