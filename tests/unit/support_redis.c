/* support_redis.c - the redis-server that the Redis unit tests start and stop
 * (support_redis.h). No main(): this file is linked into every unit test binary. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "support_redis.h"

struct ut_redis ut_redis;

int ut_free_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    int port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return port;
}

/* Whether redis-server on the port answers PING now. */
static bool redis_answers(int port)
{
    bool ok = false;
    redisContext *c = redisConnect("127.0.0.1", port);
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

void ut_redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", ut_redis.port);
    ut_redis.pid = fork();
    if (ut_redis.pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) { /* up when it answers PING (bounded: 5 s) */
        if (redis_answers(ut_redis.port))
            return;
        usleep(50000);
    }
    fail_msg("redis-server did not start");
}

void ut_redis_stop(void)
{
    if (ut_redis.pid > 0) {
        kill(ut_redis.pid, SIGCONT);
        kill(ut_redis.pid, SIGKILL);
        waitpid(ut_redis.pid, NULL, 0);
    }
    ut_redis.pid = 0;
}

int ut_redis_setup(void **state)
{
    (void)state;
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        return 0;
    ut_redis.port = ut_free_port();
    ut_redis_start();
    return 0;
}

int ut_redis_teardown(void **state)
{
    (void)state;
    ut_redis_stop();
    return 0;
}
