/*
 * aviso-server: the command line over server/ (server.h). Foreground, logs to stderr, stops
 * cleanly on SIGINT or SIGTERM. Prints its seed, which --seed accepts back.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "server/server.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: aviso-server [options]\n"
		"  --port N              listen on port N (default %d; 0: any free port)\n"
		"  --bind ADDR           numeric address to listen on (default %s)\n"
		"  --db DIR              store directory (default $XDG_STATE_HOME/aviso/server)\n"
		"  --token T             require \"Authorization: Bearer T\" (also $AVISO_TOKEN)\n"
		"  --threads N           HTTP thread pool size (default %d)\n"
		"  --max-body BYTES      largest request body (default %zu)\n"
		"  --selector NAME       paper, thompson, thompson-max (default %s)\n"
		"  --baseline-rule NAME  when baseline runs fall from 10%% to 1%% of runs: paper\n"
		"                        (the baseline rate known within 5 points) or contender\n"
		"                        (that, or a contender in every major failure class;\n"
		"                        default %s)\n"
		"  --seed N              master seed of the run seeds (default: random, printed)\n"
		"  --window N            pair window in events (default 10)\n"
		"  --no-intervening-rule count pairs across events of the first thread\n"
		"  --delay-us N          delay served with constraints (default 1000)\n"
		"  --no-sync             no fsync at commit (survives kill -9, not a power cut)\n"
		"  --refresh N           stats page refresh period in seconds (default %d)\n"
		"  --snapshot-ms N       /start may rank on a model up to N ms old (default %d;\n"
		"                        0: always the latest, so --seed replays every choice)\n"
		"  -v, --verbose         log every request\n",
		SERVER_DEFAULT_PORT, SERVER_DEFAULT_BIND, SERVER_DEFAULT_THREADS,
		SERVER_DEFAULT_MAX_BODY, model_selector_name(MODEL_SELECT_DEFAULT),
		model_baseline_name(MODEL_BASELINE_DEFAULT),
		SERVER_DEFAULT_REFRESH_S, SERVER_DEFAULT_SNAPSHOT_MS);
}

/* Parses an unsigned number in [min, max]; exits with a message otherwise. */
static unsigned long long
number(const char *opt, const char *s, unsigned long long min, unsigned long long max)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "aviso-server: --%s: expected a number in %llu..%llu, got '%s'\n",
			opt, min, max, s);
		exit(2);
	}
	return v;
}

/* $XDG_STATE_HOME/aviso/server, or ~/.local/state/aviso/server. */
static char *
default_db(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir = NULL;

	if (xdg && xdg[0] == '/') {
		if (asprintf(&dir, "%s/aviso/server", xdg) < 0)
			dir = NULL;
	} else if (asprintf(&dir, "%s/.local/state/aviso/server", home ? home : ".") < 0) {
		dir = NULL;
	}
	return dir;
}

int
main(int argc, char **argv)
{
	enum {
		O_PORT = 256,
		O_BIND,
		O_DB,
		O_TOKEN,
		O_THREADS,
		O_MAX_BODY,
		O_SELECTOR,
		O_SEED,
		O_WINDOW,
		O_NO_RULE,
		O_DELAY,
		O_NO_SYNC,
		O_REFRESH,
		O_SNAPSHOT,
		O_BASELINE
	};
	static const struct option opts[] = {
	    {"port", required_argument, NULL, O_PORT},
	    {"bind", required_argument, NULL, O_BIND},
	    {"db", required_argument, NULL, O_DB},
	    {"token", required_argument, NULL, O_TOKEN},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"max-body", required_argument, NULL, O_MAX_BODY},
	    {"selector", required_argument, NULL, O_SELECTOR},
	    {"baseline-rule", required_argument, NULL, O_BASELINE},
	    {"seed", required_argument, NULL, O_SEED},
	    {"window", required_argument, NULL, O_WINDOW},
	    {"no-intervening-rule", no_argument, NULL, O_NO_RULE},
	    {"delay-us", required_argument, NULL, O_DELAY},
	    {"no-sync", no_argument, NULL, O_NO_SYNC},
	    {"refresh", required_argument, NULL, O_REFRESH},
	    {"snapshot-ms", required_argument, NULL, O_SNAPSHOT},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct server_config cfg;
	struct server *srv;
	char *db = NULL;
	bool seeded = false;
	int c, r;

	server_config_init(&cfg);
	cfg.token = getenv("AVISO_TOKEN");
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case O_PORT:
			cfg.port = (uint16_t)number("port", optarg, 0, 65535);
			break;
		case O_BIND:
			cfg.bind = optarg;
			break;
		case O_DB:
			cfg.db = optarg;
			break;
		case O_TOKEN:
			cfg.token = optarg;
			break;
		case O_THREADS:
			cfg.threads = (unsigned)number("threads", optarg, 1, 1024);
			break;
		case O_MAX_BODY:
			cfg.max_body = number("max-body", optarg, 1, SIZE_MAX);
			break;
		case O_SELECTOR:
			if (model_selector_parse(optarg, &cfg.model.selector) < 0) {
				fprintf(stderr, "aviso-server: unknown selector '%s'\n", optarg);
				return 2;
			}
			break;
		case O_BASELINE:
			if (model_baseline_parse(optarg, &cfg.model.baseline) < 0) {
				fprintf(stderr, "aviso-server: unknown baseline rule '%s'\n", optarg);
				return 2;
			}
			break;
		case O_SEED:
			cfg.model.seed = number("seed", optarg, 0, UINT64_MAX);
			seeded = true;
			break;
		case O_WINDOW:
			cfg.model.window = (unsigned)number("window", optarg, 2, 1000);
			break;
		case O_NO_RULE:
			cfg.model.intervening_rule = false;
			break;
		case O_DELAY:
			cfg.model.delay_us = (unsigned)number("delay-us", optarg, 0, 10000000);
			break;
		case O_NO_SYNC:
			cfg.model.no_sync = true;
			break;
		case O_REFRESH:
			cfg.refresh_s = (unsigned)number("refresh", optarg, 1, 86400);
			break;
		case O_SNAPSHOT:
			cfg.model.snapshot_ms = (unsigned)number("snapshot-ms", optarg, 0, 3600000);
			break;
		case 'v':
			cfg.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (cfg.token && !cfg.token[0])
		cfg.token = NULL;
	if (!cfg.db && !(cfg.db = db = default_db())) {
		fprintf(stderr, "aviso-server: out of memory\n");
		return 1;
	}
	if (!seeded && getrandom(&cfg.model.seed, sizeof(cfg.model.seed), 0) !=
			   (ssize_t)sizeof(cfg.model.seed)) {
		fprintf(stderr, "aviso-server: getrandom: %s\n", strerror(errno));
		return 1;
	}

	/* The signals go to sigwait() below, never to the pool threads (they inherit the mask). */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = server_create(&cfg, &srv);
	if (r < 0) {
		fprintf(stderr, "aviso-server: cannot serve %s:%u with store %s: %s\n", cfg.bind,
			cfg.port, cfg.db, strerror(-r));
		free(db);
		return 1;
	}
	fprintf(stderr,
		"aviso-server: listening on http://%s%s%s:%u store %s selector %s baseline rule %s seed %" PRIu64
		"\n",
		strchr(cfg.bind, ':') ? "[" : "", cfg.bind, strchr(cfg.bind, ':') ? "]" : "",
		server_port(srv), cfg.db, model_selector_name(cfg.model.selector),
		model_baseline_name(cfg.model.baseline), cfg.model.seed);
	int sig = 0;
	sigwait(&stop, &sig);
	fprintf(stderr, "aviso-server: %s, stopping\n", strsignal(sig));
	server_destroy(srv);
	free(db);
	return 0;
}
