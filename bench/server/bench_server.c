/*
 * aviso-server benchmark (issue 4): requests per second and p99 latency of /start and /end
 * from many concurrent clients on loopback, with realistic failure reports (RPBs of 1000
 * events, sites of five frames), measured by wrk (Debian package wrk); then the store's size
 * after 10,000 failures. Prints its parameters and results; exits 77 (skipped) without wrk.
 *
 *   aviso-bench-server SERVER [--threads 2] [--connections 32] [--seconds 10]
 *                             [--failures 10000] [--no-sync]
 *
 * Phases, on a fresh store: (1) /start on an empty model; (2) /end of 10,000 of those runs
 * as failures, 16 distinct RPBs drawn from one program's 300 sites; (3) /start on the model
 * those failures taught.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/server/httpc.h"
#include "model/internal.h"

#define BENCH_RPB_EVENTS 1000
#define BENCH_RPB_VARIANTS 16
#define BENCH_SITES 300
#define BENCH_THREADS 8

struct opts {
	const char *server;
	unsigned threads, connections, seconds, failures;
	bool no_sync;
};

static char dir[] = "/tmp/aviso-bench-XXXXXX";
static pid_t server_pid;
static char base[64];

/* Writes @text to dir/@name. */
static void
write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "bench: cannot write %s\n", path);
		exit(1);
	}
}

/* A site of five frames, like the tracer's (build-id+offset, callers after '<'). */
static void
make_site(struct prng *r, unsigned i, char *out, size_t size)
{
	static const char prog[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
	static const char libc[] = "4a8e6a1dc4b7c2f3e1d0b9a8c7f6e5d4c3b2a190";
	snprintf(out, size, "%s+0x%x<%s+0x%x<%s+0x%x<%s+0x%x<%s+0x%" PRIx64, prog, 0x1000 + 16 * i,
		 prog, 0x2000 + 8 * i, prog, 0x3000 + 4 * i, prog, 0x4000 + i, libc,
		 0x29d90 + model_prng_next(r) % 2);
}

/* The body tail of an /end failure: ,"outcome":...,"rpb":[1000 events]}. */
static char *
make_rpb_tail(struct prng *r, char sites[][320], char wheres[][32])
{
	struct model_event ev[BENCH_RPB_EVENTS];
	for (unsigned i = 0; i < BENCH_RPB_EVENTS; i++) {
		unsigned t = 1 + (unsigned)(model_prng_unit(r) * BENCH_THREADS);
		/* Each thread mostly runs its own part of the program. */
		unsigned s = (t * 37 + (unsigned)(model_prng_unit(r) * 60)) % BENCH_SITES;
		ev[i] = (struct model_event){.seq = 100000 + i,
					     .ns = 5000000 + 1000 * i,
					     .thread = t,
					     .tid = 4000 + (int)t,
					     .pid = 4000,
					     .kind = (enum model_event_kind)(i % 4),
					     .object = 0x7f0000001000 + 64 * (s % 16),
					     .site = sites[s],
					     .where = wheres[s]};
	}
	char *rpb = sim_rpb_json(ev, BENCH_RPB_EVENTS), *tail = NULL;
	if (!rpb || asprintf(&tail,
			     "\",\"outcome\":\"failure\",\"failure\":{\"signal\":6},"
			     "\"rpb\":%s}",
			     rpb) < 0)
		exit(1);
	free(rpb);
	return tail;
}

static void
make_scripts(void)
{
	struct prng r;
	static char sites[BENCH_SITES][320], wheres[BENCH_SITES][32];

	model_prng_seed(&r, 1);
	for (unsigned i = 0; i < BENCH_SITES; i++) {
		make_site(&r, i, sites[i], sizeof(sites[i]));
		snprintf(wheres[i], sizeof(wheres[i]), "worker.c:%u in work", 100 + i);
	}
	for (unsigned v = 0; v < BENCH_RPB_VARIANTS; v++) {
		char name[32], *tail = make_rpb_tail(&r, sites, wheres);
		snprintf(name, sizeof(name), "rpb%u.json", v);
		write_file(name, tail);
		free(tail);
	}
	write_file("start.lua",
		   "wrk.method = \"POST\"\n"
		   "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
		   "wrk.body = '{\"program\":{\"id\":\"bench\",\"path\":\"/bench/prog\"},"
		   "\"pid\":1,\"host\":\"h\"}'\n");
	/* Thread k of T ends runs k+1, k+1+T, ...; past the limit it stops. */
	char *lua;
	if (asprintf(
		&lua,
		"local tails = {}\n"
		"for v = 0, %u do\n"
		"  local f = assert(io.open('%s/rpb' .. v .. '.json'))\n"
		"  tails[v] = f:read('*a'); f:close()\n"
		"end\n"
		"local count = 0\n"
		"function setup(thread) thread:set('k', count); count = count + 1 end\n"
		"function init(args) T = tonumber(args[1]); limit = tonumber(args[2]); n = 0 end\n"
		"function request()\n"
		"  local id = k + 1 + n * T\n"
		"  n = n + 1\n"
		"  if id > limit then wrk.thread:stop(); return wrk.format('GET', '/healthz') end\n"
		"  return wrk.format('POST', '/end', {['Content-Type'] = 'application/json'},\n"
		"                    '{\"run\":\"1-' .. id .. tails[id %% %u])\n"
		"end\n",
		BENCH_RPB_VARIANTS - 1, dir, BENCH_RPB_VARIANTS) < 0)
		exit(1);
	write_file("end.lua", lua);
	free(lua);
}

static void
start_server(const struct opts *o)
{
	char db[96], log[96];
	snprintf(db, sizeof(db), "%s/db", dir);
	snprintf(log, sizeof(log), "%s/server.log", dir);
	server_pid = fork();
	if (server_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(o->server, o->server, "--port", "0", "--db", db, "--seed", "1", "--threads",
		      "4", o->no_sync ? "--no-sync" : NULL, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(log, "r");
		char line[512];
		unsigned port = 0;
		while (f && fgets(line, sizeof(line), f))
			sscanf(line, "aviso-server: listening on http://127.0.0.1:%u", &port);
		if (f)
			fclose(f);
		if (port) {
			snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
			return;
		}
		usleep(10000);
	}
	fprintf(stderr, "bench: the server did not start\n");
	exit(1);
}

static uint64_t metric(const char *name);

/* Converts wrk's "12.34ms" style figures to ms. */
static double
to_ms(double v, const char *unit)
{
	if (strcmp(unit, "s") == 0)
		return v * 1000;
	if (strcmp(unit, "us") == 0)
		return v / 1000;
	if (strcmp(unit, "m") == 0)
		return v * 60000;
	return v;
}

/*
 * Runs wrk with @script on @path for @seconds, or (@until_ends > 0) until the server has
 * answered that many /end requests with 200 (then SIGINT, which makes wrk print its figures):
 * wrk's thread:stop() does not end a run before its duration. Prints requests/s, p50, p99.
 */
static void
run_wrk(const struct opts *o, const char *label, const char *script, const char *path,
	unsigned seconds, uint64_t until_ends)
{
	char t[16], c[16], d[16], s[128], url[128], T[16], limit[16], line[256];
	double rps = 0, p99 = 0, p50 = 0;
	unsigned long requests = 0;
	int fds[2];

	snprintf(t, sizeof(t), "-t%u", o->threads);
	snprintf(c, sizeof(c), "-c%u", o->connections);
	snprintf(d, sizeof(d), "-d%us", seconds);
	snprintf(s, sizeof(s), "%s/%s", dir, script);
	snprintf(url, sizeof(url), "%s%s", base, path);
	snprintf(T, sizeof(T), "%u", o->threads);
	snprintf(limit, sizeof(limit), "%" PRIu64, until_ends);
	if (pipe(fds) < 0) {
		perror("bench: pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		execlp("wrk", "wrk", t, c, d, "--timeout", "30s", "--latency", "-s", s, url, "--",
		       T, limit, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	/* Stop at the count, or when answers stop coming for 5 s (a request lost as a wrk
	 * thread stopped must not hang the benchmark). */
	for (uint64_t last = 0, still = 0; until_ends && waitpid(pid, NULL, WNOHANG) == 0;) {
		uint64_t ends =
		    metric("aviso_http_requests_total{endpoint=\"/end\",code=\"2xx\"}") +
		    metric("aviso_http_requests_total{endpoint=\"/end\",code=\"4xx\"}");
		still = ends == last ? still + 1 : 0;
		last = ends;
		if (ends >= until_ends || still >= 25) {
			kill(pid, SIGINT);
			break;
		}
		usleep(200000);
	}
	FILE *f = fdopen(fds[0], "r");
	while (f && fgets(line, sizeof(line), f)) {
		double v;
		char unit[8];
		unsigned long u;
		int at = 0;
		if (sscanf(line, " Requests/sec: %lf", &v) == 1)
			rps = v;
		else if (sscanf(line, " 99%% %lf%7s", &v, unit) == 2)
			p99 = to_ms(v, unit);
		else if (sscanf(line, " 50%% %lf%7s", &v, unit) == 2)
			p50 = to_ms(v, unit);
		else if (sscanf(line, " %lu requests in%n", &u, &at) == 1 && at > 0)
			requests = u;
	}
	if (f)
		fclose(f);
	waitpid(pid, NULL, 0);
	printf("%-30s %7lu requests %8.1f req/s   p50 %8.2f ms   p99 %8.2f ms\n", label, requests,
	       rps, p50, p99);
	fflush(stdout);
}

/* A value from /metrics. */
static uint64_t
metric(const char *name)
{
	char url[128], *out = NULL;
	long status;
	uint64_t v = 0;

	snprintf(url, sizeof(url), "%s/metrics", base);
	if (httpc_request("GET", url, NULL, NULL, 0, &status, &out) == 0) {
		char *at = strstr(out, name);
		while (at && at > out && at[-1] != '\n')
			at = strstr(at + 1, name);
		if (at)
			sscanf(strchr(at, ' '), " %" SCNu64, &v);
	}
	free(out);
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"threads", required_argument, NULL, 't'},
	    {"connections", required_argument, NULL, 'c'},
	    {"seconds", required_argument, NULL, 'd'},
	    {"failures", required_argument, NULL, 'f'},
	    {"no-sync", no_argument, NULL, 'n'},
	    {0},
	};
	struct opts o = {.threads = 2, .connections = 32, .seconds = 10, .failures = 10000};
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			o.threads = (unsigned)atoi(optarg);
			break;
		case 'c':
			o.connections = (unsigned)atoi(optarg);
			break;
		case 'd':
			o.seconds = (unsigned)atoi(optarg);
			break;
		case 'f':
			o.failures = (unsigned)atoi(optarg);
			break;
		case 'n':
			o.no_sync = true;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: aviso-bench-server SERVER [--threads N] [--connections N] "
				"[--seconds N] [--failures N] [--no-sync]\n");
		return 2;
	}
	o.server = argv[optind];
	if (system("command -v wrk >/dev/null 2>&1") != 0) {
		fprintf(stderr, "bench: wrk is missing (Debian: apt-get install wrk); skipped\n");
		return 77;
	}
	if (!mkdtemp(dir)) {
		perror("bench: mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	make_scripts();
	start_server(&o);
	printf("aviso-server benchmark: wrk -t%u -c%u, loopback, %s; RPB %d events (%d threads, "
	       "%d sites of 5 frames), %u failures\n",
	       o.threads, o.connections, o.no_sync ? "--no-sync" : "fsync at each commit",
	       BENCH_RPB_EVENTS, BENCH_THREADS, BENCH_SITES, o.failures);

	run_wrk(&o, "/start, empty model", "start.lua", "/start", o.seconds, 0);
	/* Make sure there are enough open runs for the failures. */
	char url[128];
	snprintf(url, sizeof(url), "%s/start", base);
	const char *sb = "{\"program\":{\"id\":\"bench\",\"path\":\"/bench/prog\"}}";
	for (uint64_t n = metric("aviso_runs_started_total{"); n < o.failures; n++) {
		long st;
		httpc_request("POST", url, NULL, sb, strlen(sb), &st, NULL);
	}
	run_wrk(&o, "/end failure, 1000-event RPB", "end.lua", "/end", 3600, o.failures);
	uint64_t fails =
	    metric("aviso_baseline_failures_total{") + metric("aviso_constrained_failures_total{");
	run_wrk(&o, "/start, after the failures", "start.lua", "/start", o.seconds, 0);

	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/db/data.mdb", dir);
	stat(path, &st);
	printf("store after %" PRIu64 " failures: %.1f MiB used (LMDB pages), data.mdb %.1f MiB "
	       "on disk, %" PRIu64 " constraints in %" PRIu64 " class(es), map %.0f MiB\n",
	       fails, metric("aviso_store_used_bytes ") / 1048576.0,
	       (double)st.st_blocks * 512 / 1048576.0, metric("aviso_constraints{"),
	       metric("aviso_classes{"), metric("aviso_store_map_bytes ") / 1048576.0);

	kill(server_pid, SIGTERM);
	waitpid(server_pid, NULL, 0);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	return 0;
}
