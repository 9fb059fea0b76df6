// cxx_workq.cpp: use after free in a work queue (std::deque of std::unique_ptr<Job>).
//
// The worker takes a raw pointer to the front job under the lock, prepares, then runs the
// job outside the lock while the queue still owns it. When the canceller clears the queue in
// between, the job is deleted under the worker's feet: the virtual call goes through the
// freed object's overwritten vtable pointer and crashes.
//
//   worker:    { lock; j = q.front().get(); }  ...prepare...;  j->run();  { lock; q.pop_front(); }
//   canceller:                 { lock; q.clear(); }
//
// Exit: 0 when the bug did not show, SIGSEGV when it did.
// Fix: move the unique_ptr out of the queue under the lock (the worker owns the job).
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <unistd.h>

#include "zoo.h"

struct Job {
    virtual ~Job() = default;
    virtual unsigned run() = 0;
};

struct Checksum : Job {
    explicit Checksum(unsigned n) : n_(n) {}
    unsigned run() override { return zoo_crunch(n_); }
    unsigned n_;
};

static std::mutex mu;
static std::deque<std::unique_ptr<Job>> jobs;
static std::atomic<bool> cancelled{false};
static pthread_barrier_t start;

static void worker()
{
    pthread_barrier_wait(&start);
    unsigned sum = 0;
    for (;;) {
        Job *j;
        {
            std::lock_guard<std::mutex> g(mu);
            if (jobs.empty())
                break;
            j = jobs.front().get(); // BUG: borrow the job ...
        }
        usleep(200); // prepare the job: the window
        sum += j->run(); // BUG: ... and use it; deleted if the queue was cleared
        {
            std::lock_guard<std::mutex> g(mu);
            if (!jobs.empty())
                jobs.pop_front();
        }
        usleep(400); // wait for the next job
    }
    (void)sum;
}

static void canceller()
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    {
        std::lock_guard<std::mutex> g(mu);
        jobs.clear(); // BUG: deletes the job the worker is about to run
    }
    cancelled.store(true);
}

int main()
{
    for (unsigned i = 0; i < 200; i++)
        jobs.push_back(std::make_unique<Checksum>(100 + i));
    pthread_barrier_init(&start, nullptr, 2);
    std::thread t1(worker);
    std::thread t2(canceller);
    t1.join();
    t2.join();
    return 0;
}
