/* support_redis.h - a real redis-server for the unit tests that talk to Redis
 * (test_redisasync.c, test_registry_async.c, test_tickets.c): started on a free port of
 * 127.0.0.1 with no persistence, stopped by its PID. Linked into every unit test binary (see
 * UNIT_SUPPORT in the Makefile); a test that uses it is skipped, test by test, when the machine
 * has no redis-server (ut_redis.pid stays 0). */
#ifndef TT_TESTS_SUPPORT_REDIS_H
#define TT_TESTS_SUPPORT_REDIS_H

#include <sys/types.h>

/* The one redis-server of a test binary: pid is 0 when none runs (none installed, or stopped);
 * port is the port it was given (kept across a stop, so that a start brings it back there). */
struct ut_redis {
    pid_t pid;
    int port;
};
extern struct ut_redis ut_redis;

/* A port free on 127.0.0.1 now (bound to port 0, then released). */
int ut_free_port(void);

/* Starts redis-server on ut_redis.port and returns once it answers PING (bounded: 5 s); fails
 * the test when it does not. */
void ut_redis_start(void);

/* Stops it (SIGCONT first, in case a test left it stopped, then SIGKILL, and waits for it).
 * Does nothing when none runs. */
void ut_redis_stop(void);

/* cmocka group set-up and tear-down: start one on a free port when redis-server is installed
 * (none otherwise: tests check ut_redis.pid and skip), and stop it at the end. */
int ut_redis_setup(void **state);
int ut_redis_teardown(void **state);

#endif
