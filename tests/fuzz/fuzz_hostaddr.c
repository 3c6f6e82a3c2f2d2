/* fuzz_hostaddr.c - libFuzzer target for the agent's name rules (src/agent/hostaddr.c) and the CA
 * store choice (src/common/tls.c): --dns values, the localhost rule, the addresses of names that
 * need no lookup, and an SSL_CERT_DIR-style list of directories. The input is one NUL-free
 * string; every result must be consistent: a parsed server has a family, a port and a
 * NUL-terminated display; fixed addresses are IPv4 or IPv6 with the port asked for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/hostaddr.h"
#include "common/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every path "exists" whose length is odd: both branches of the list walk are taken. */
static bool odd_exists(const char *path, bool want_dir, void *ud)
{
    (void)want_dir;
    (*(size_t *)ud)++;
    return strlen(path) % 2 == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const android[] = {TT_TLS_ANDROID_CA_DIRS, NULL};
    char s[1024], err[TT_ERRLEN];
    struct tt_dns_server d;
    union tt_sockaddr a[3];
    struct tt_tls_store st;
    size_t n, asked = 0;

    if (size >= sizeof(s))
        size = sizeof(s) - 1;
    memcpy(s, data, size);
    s[size] = '\0';
    if (tt_hostaddr_parse_dns(s, &d, err) == 0) {
        if ((d.family != AF_INET && d.family != AF_INET6) || d.port == 0 ||
            memchr(d.display, '\0', sizeof(d.display)) == NULL)
            abort();
    } else if (memchr(err, '\0', sizeof(err)) == NULL) {
        abort();
    }
    n = tt_hostaddr_fixed(s, 4242, a, 3);
    if (n > 2 || (tt_hostaddr_is_localhost(s) && n != 2))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (a[i].sa.sa_family == AF_INET
                ? ntohs(a[i].in.sin_port) != 4242
                : a[i].sa.sa_family != AF_INET6 || ntohs(a[i].in6.sin6_port) != 4242)
            abort();
    }
    tt_tls_pick_store(size % 3 ? s : NULL, s, android, odd_exists, &asked, &st);
    if ((st.kind == TT_TLS_STORE_ANDROID) != (st.dir != NULL))
        abort();
    return 0;
}
