// cxx_dcl.cpp: broken double-checked locking, a lazily built singleton published before it is
// fully built.
//
// codec() checks g_codec without the lock and, when it is null, builds the codec under the
// lock; but it stores the pointer first and loads the tables after. The reloader drops the
// codec and rebuilds it; when the encoder calls codec() while the tables are still loading,
// it gets a codec whose encode function is still empty: std::bad_function_call is thrown,
// nobody catches it, std::terminate() aborts.
//
//   codec():  if (!g_codec) { lock; if (!g_codec) { g_codec = new Codec; ...load tables...; } }
//   encoder:              codec()->encode(x)   (fast path, sees a half-built codec)
//
// Exit: 0 when the bug did not show, SIGABRT (uncaught std::bad_function_call) when it did.
// Fix: build into a local, publish with a release store last (or std::call_once).
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>
#include <unistd.h>

#include "zoo.h"

struct Codec {
    std::function<unsigned(unsigned)> encode; // empty until the tables are loaded
    std::vector<unsigned> table;
};

static std::mutex codec_mu;
static Codec *volatile g_codec; // plain pointer: the broken pattern
static std::vector<Codec *> retired; // old codecs are kept, never freed while in use
static std::mutex req_mu;
static unsigned requests_served;
static std::atomic<bool> reloaded{false};
static pthread_barrier_t start;

static Codec *codec()
{
    if (g_codec == nullptr) { // BUG: unlocked check sees the half-built codec ...
        std::lock_guard<std::mutex> g(codec_mu);
        if (g_codec == nullptr) {
            Codec *c = new Codec;
            g_codec = c; // BUG: ... published here, before the tables are loaded
            c->table.assign(256, 0);
            for (unsigned i = 0; i < 256; i++)
                c->table[i] = zoo_crunch(20) ^ i;
            usleep(100); // load the tables: the window
            c->encode = [c](unsigned x) { return c->table[x & 255]; };
        }
    }
    return g_codec;
}

static void encoder()
{
    pthread_barrier_wait(&start);
    unsigned sum = 0;
    while (!reloaded.load()) {
        {
            std::lock_guard<std::mutex> g(req_mu); // take the next request
            requests_served++;
        }
        sum += codec()->encode(requests_served); // BUG: throws on the half-built codec
        usleep(500); // next request
    }
    (void)sum;
}

static void reloader()
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    {
        std::lock_guard<std::mutex> g(codec_mu);
        retired.push_back(static_cast<Codec *>(g_codec));
        g_codec = nullptr; // drop the stale codec
    }
    codec(); // rebuild it: races with the encoder's fast path
    reloaded.store(true);
}

int main()
{
    codec();
    pthread_barrier_init(&start, nullptr, 2);
    std::thread t1(encoder);
    std::thread t2(reloader);
    t1.join();
    t2.join();
    return 0;
}
