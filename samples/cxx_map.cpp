// cxx_map.cpp: check-then-act on a std::map shared by std::threads.
//
// The request handler checks that the session exists in one critical section, renders the
// page, then updates the session in a second critical section with map::at(). When the
// evictor erases the session in between, at() throws std::out_of_range; nobody catches it
// in the thread, so std::terminate() aborts the process.
//
//   handler: { lock; known = sessions.count(id); }  ...render...;  { lock; sessions.at(id).hits++; }
//   evictor:                        { lock; sessions.erase(id); }
//
// Exit: 0 when the bug did not show, SIGABRT (uncaught std::out_of_range) when it did.
// Fix: find() once and use the iterator in the same critical section.
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <pthread.h>
#include <unistd.h>

#include "zoo.h"

struct Session {
    std::string user;
    long hits = 0;
};

static std::mutex mu;
static std::map<int, Session> sessions;
static std::atomic<bool> evicted{false};
static std::mutex stats_mu;
static long pages_served;
static pthread_barrier_t start;

static void handler(int id)
{
    pthread_barrier_wait(&start);
    while (!evicted.load()) {
        bool known;
        {
            std::lock_guard<std::mutex> g(mu);
            known = sessions.count(id) != 0; // BUG: check ...
        }
        if (!known)
            break;
        usleep(100); // render the page: the window
        {
            std::lock_guard<std::mutex> g(mu);
            sessions.at(id).hits++; // BUG: ... then act; throws when evicted in between
        }
        {
            std::lock_guard<std::mutex> g(stats_mu);
            pages_served++;
        }
        usleep(400); // next request
    }
}

static void evictor(int id)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    {
        std::lock_guard<std::mutex> g(mu);
        sessions.erase(id); // BUG: evicts between the handler's check and act
    }
    evicted.store(true);
}

int main()
{
    for (int i = 0; i < 8; i++)
        sessions[i] = Session{"user" + std::to_string(i), 0};
    pthread_barrier_init(&start, nullptr, 2);
    std::thread t1(handler, 3);
    std::thread t2(evictor, 3);
    t1.join();
    t2.join();
    return 0;
}
