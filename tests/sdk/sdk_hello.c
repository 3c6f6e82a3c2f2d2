/* sdk_hello.c - the smallest program built on the SDK alone (include/tether.h, -ltether), as a
 * user builds it: `cc sdk_hello.c $(pkg-config --cflags --libs tether)`. It registers one HTTP
 * service with the relay, prints "ready URL -> TARGET" for it and stops after the first
 * registration. tests/e2e/test_sdk_lib.py builds it against build/.../lib/libtether.so and runs
 * it against a real relay. Usage: sdk_hello SERVER NAME TOKEN HOST:PORT STATE_DIR; exit 0 once
 * registered, 1 on an error. */
#include <stdio.h>

#include "tether.h"

static void on_event(tether_agent *a, const struct tether_event *ev, void *user_data)
{
    int *registered = user_data;

    if (ev->kind == TETHER_EVENT_READY) {
        for (size_t i = 0; i < ev->nservices; i++)
            printf("ready %s -> %s\n", ev->services[i].url ? ev->services[i].url : "-",
                   ev->services[i].target);
        fflush(stdout);
        *registered = 1;
        tether_agent_stop(a);
    } else if (ev->kind == TETHER_EVENT_ERROR) {
        fprintf(stderr, "sdk_hello: %s\n", ev->message);
    }
}

int main(int argc, char **argv)
{
    tether_config *cfg;
    tether_agent *agent;
    struct tether_callbacks cb = {on_event};
    int registered = 0, rc;

    if (argc != 6) {
        fprintf(stderr, "usage: sdk_hello SERVER NAME TOKEN HOST:PORT STATE_DIR\n");
        return 2;
    }
    printf("libtether %s\n", tether_version());
    if (tether_config_new(&cfg) != 0)
        return 1;
    if (tether_config_add_server(cfg, argv[1]) != 0 || tether_config_set_name(cfg, argv[2]) != 0 ||
        tether_config_set_token(cfg, argv[3]) != 0 ||
        tether_config_add_http(cfg, NULL, argv[4]) != 0 ||
        tether_config_set_state_dir(cfg, argv[5]) != 0) {
        fprintf(stderr, "sdk_hello: %s\n", tether_config_error(cfg));
        tether_config_free(cfg);
        return 2;
    }
    rc = tether_agent_new(cfg, &cb, &registered, &agent);
    tether_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "sdk_hello: %s\n", tether_strerror(rc));
        return 1;
    }
    rc = tether_agent_run(agent);
    tether_agent_free(agent);
    return rc == 0 && registered ? 0 : 1;
}
