// cxx_threads: exact counts through the C++ standard library (cxx_threads.h). Prints
// "cxx_threads: ok" and exits 0 when every count the program made matches the table.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <sched.h>

#include "cxx_threads.h"

static std::mutex shared_m;
static long shared_sum;
static std::atomic<long> waits{0}; // condition waits the program made (loop included)

static void
spin_until(const std::atomic<int> &v, int want)
{
	for (unsigned long i = 0; v.load() < want; i++) {
		sched_yield();
		if (i > 200000000ul) {
			std::fprintf(stderr, "cxx_threads: a hand-shake timed out\n");
			std::_Exit(2);
		}
	}
}

static void
locker()
{
	std::mutex own;

	for (int i = 0; i < CXX_LOCKS; i++) {
		std::lock_guard<std::mutex> g(shared_m);
		shared_sum++;
	}
	if (!own.try_lock()) {
		std::fprintf(stderr, "cxx_threads: try_lock on a free mutex failed\n");
		std::_Exit(2);
	}
	own.unlock();
}

static std::mutex ho_m;
static std::condition_variable ho_cv;
static std::atomic<int> ho_armed{0};
static int ho_pred;

static void
handoff_waiter()
{
	for (int r = 0; r < CXX_HANDOFFS; r++) {
		std::unique_lock<std::mutex> lk(ho_m);
		ho_armed.store(r + 1);
		while (ho_pred < r + 1) {
			waits++;
			ho_cv.wait(lk);
		}
	}
}

static void
handoff_signaller()
{
	for (int r = 0; r < CXX_HANDOFFS; r++) {
		spin_until(ho_armed, r + 1);
		{
			std::lock_guard<std::mutex> g(ho_m);
			ho_pred = r + 1;
		}
		ho_cv.notify_one();
	}
}

static std::mutex bc_m;
static std::condition_variable bc_cv;
static std::atomic<int> bc_arrived{0};
static int bc_gen;

static void
bcast_waiter()
{
	for (int r = 0; r < CXX_BCAST_ROUNDS; r++) {
		std::unique_lock<std::mutex> lk(bc_m);
		bc_arrived++;
		while (bc_gen < r + 1) {
			waits++;
			bc_cv.wait(lk);
		}
	}
}

int
main()
{
	std::vector<std::thread> threads;

	for (int i = 0; i < CXX_LOCKERS; i++)
		threads.emplace_back(locker);
	threads.emplace_back(handoff_waiter);
	threads.emplace_back(handoff_signaller);
	for (int i = 0; i < CXX_BCAST_WAITERS; i++)
		threads.emplace_back(bcast_waiter);
	for (int r = 0; r < CXX_BCAST_ROUNDS; r++) {
		spin_until(bc_arrived, CXX_BCAST_WAITERS * (r + 1));
		{
			std::lock_guard<std::mutex> g(bc_m);
			bc_gen = r + 1;
		}
		bc_cv.notify_all();
	}
	for (auto &t : threads)
		t.join();

	if (shared_sum != CXX_LOCKERS * CXX_LOCKS || waits.load() != (long)CXX_COND_WAITS) {
		std::fprintf(stderr, "cxx_threads: sum %ld, waits %ld (expected %ld)\n", shared_sum,
			     waits.load(), (long)CXX_COND_WAITS);
		return 1;
	}
	std::printf("cxx_threads: ok\n");
	return 0;
}
