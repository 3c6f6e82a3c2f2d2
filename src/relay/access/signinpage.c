/* signinpage.c - the sign-in pages (signinpage.h): fixed text, the escaped names, and the
 * headers that keep the pages to themselves (no framing, no script, no sniffing, no caching). */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "relay/access/signinpage.h"

/* The one style of every page. Its SHA-256 is in the Content-Security-Policy (computed once):
 * nothing else may style, script or load anything. */
static const char style[] =
    ":root{color-scheme:light dark;--fg:#1d2129;--bg:#f3f4f6;--card:#fff;--line:#c9ced6;"
    "--acc:#1f5fbf;--err:#b3261e}"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#15181d;--card:#1f2329;"
    "--line:#3a404a;--acc:#7aa7ff;--err:#ff8a80}}"
    "*{box-sizing:border-box}"
    "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;"
    "background:var(--bg);color:var(--fg);font:16px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,sans-serif;padding:1rem}"
    "main{width:100%;max-width:22rem;background:var(--card);border:1px solid var(--line);"
    "border-radius:12px;padding:1.5rem}"
    "h1{font-size:1.35rem;margin:0 0 .25rem}"
    "p{margin:.5rem 0}"
    ".to{color:inherit;opacity:.8;overflow-wrap:anywhere}"
    ".err{color:var(--err);font-weight:600}"
    "label{display:block;margin:1rem 0 .3rem;font-weight:600}"
    "input{width:100%;font:inherit;padding:.7rem .8rem;border:1px solid var(--line);"
    "border-radius:8px;background:transparent;color:inherit}"
    "input:focus{outline:2px solid var(--acc);outline-offset:1px}"
    "button{width:100%;margin-top:1.4rem;font:inherit;font-weight:600;padding:.75rem;"
    "border:0;border-radius:8px;background:var(--acc);color:#fff;cursor:pointer}"
    "a{color:var(--acc)}"
    ".foot{margin-top:1.2rem;font-size:.8rem;opacity:.6}";

/* 'sha256-BASE64' of style */
static const char *style_source(void)
{
    static char src[80];
    if (src[0] == '\0') {
        unsigned char h[SHA256_DIGEST_LENGTH];
        unsigned char b64[48];
        SHA256((const unsigned char *)style, sizeof(style) - 1, h);
        int n = EVP_EncodeBlock(b64, h, (int)sizeof(h));
        snprintf(src, sizeof(src), "'sha256-%.*s'", n > 0 ? n : 0, (const char *)b64);
    }
    return src;
}

struct text {
    int status;
    const char *reason;
    const char *title;
    const char *lead;  /* the first paragraph (HTML), or NULL */
    const char *error; /* a paragraph in the error style (HTML), or NULL */
    int form;          /* 0 none, 1 the sign-in form, 2 the sign-out form, 3 a link to sign in */
};

static const struct text texts[TT_SIGNINPAGE_COUNT] = {
    [TT_SIGNINPAGE_FORM] = {401, "Unauthorized", "Sign in", NULL, NULL, 1},
    [TT_SIGNINPAGE_WRONG] = {401, "Unauthorized", "Sign in", NULL,
                             "The user or the secret is not right.", 1},
    [TT_SIGNINPAGE_FORBIDDEN] = {403, "Forbidden", "No access", NULL,
                                 "You are signed in, but no grant of yours covers this "
                                 "service. Ask the operator for one.",
                                 0},
    [TT_SIGNINPAGE_CROSS_SITE] = {403, "Forbidden", "Request refused", NULL,
                                  "This request was made by another site's page, which may "
                                  "not act on this device for you. Open the device's address "
                                  "yourself.",
                                  0},
    [TT_SIGNINPAGE_THROTTLED] = {429, "Too Many Requests", "Too many attempts", NULL,
                                 "Too many sign-in attempts failed from your address. Wait a "
                                 "while, then try again.",
                                 0},
    [TT_SIGNINPAGE_BUSY] = {503, "Service Unavailable", "Busy", NULL,
                            "The relay is checking many sign-ins just now. Try again in a "
                            "moment.",
                            0},
    [TT_SIGNINPAGE_SIGNOUT] = {200, "OK", "Sign out", "Sign out of this device?", NULL, 2},
    [TT_SIGNINPAGE_SIGNED_OUT] = {200, "OK", "Signed out", "You are signed out of this device.",
                                  NULL, 3},
    [TT_SIGNINPAGE_BAD_FORM] = {400, "Bad Request", "Sign in", NULL,
                                "The sign-in form could not be read. Try again.", 1},
    [TT_SIGNINPAGE_UNAVAILABLE] = {503, "Service Unavailable", "Try again", NULL,
                                   "The relay could not reach its sign-in sessions just now. "
                                   "Try again in a moment.",
                                   0},
};

size_t tt_signinpage_escape(const char *s, size_t inlen, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen == 0)
        return 0;
    for (size_t i = 0; s && i < inlen && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&quot;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        char one[2] = {c >= 0x20 && c < 0x7f ? (char)c : '?', '\0'};
        if (!rep)
            rep = one;
        size_t rl = strlen(rep);
        if (n + rl >= outlen)
            break;
        memcpy(out + n, rep, rl);
        n += rl;
    }
    out[n] = '\0';
    return n;
}

/* The headers every page gets (after the status line). */
static int common_headers(char *out, size_t outlen)
{
    return snprintf(out, outlen,
                    "Cache-Control: no-store\r\n"
                    "Content-Security-Policy: default-src 'none'; style-src %s; "
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
                    "X-Frame-Options: DENY\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Referrer-Policy: same-origin\r\n"
                    "Connection: close\r\n",
                    style_source());
}

int tt_signinpage_status(enum tt_signinpage_kind kind)
{
    return (unsigned)kind < TT_SIGNINPAGE_COUNT ? texts[kind].status : 400;
}

int tt_signinpage_render(char *out, size_t outlen, const struct tt_signinpage *p)
{
    enum tt_signinpage_kind kind =
        (unsigned)p->kind < TT_SIGNINPAGE_COUNT ? p->kind : TT_SIGNINPAGE_FORM;
    const struct text *t = &texts[kind];
    char dev[6 * 64 + 1], svc[6 * 64 + 1], to[2 * sizeof(dev) + 64];
    tt_signinpage_escape(p->device, 64, dev, sizeof(dev));
    tt_signinpage_escape(p->service, 64, svc, sizeof(svc));
    to[0] = '\0';
    if (dev[0] && svc[0])
        snprintf(to, sizeof(to), "<p class=\"to\"><b>%s</b> on <b>%s</b></p>\n", svc, dev);
    else if (dev[0])
        snprintf(to, sizeof(to), "<p class=\"to\"><b>%s</b></p>\n", dev);
    const char *form = "";
    switch (t->form) {
    case 1:
        form = "<form method=\"post\">\n"
               "<label for=\"user\">User</label>\n"
               "<input id=\"user\" name=\"user\" autocomplete=\"username\" autocapitalize=\"none\" "
               "autocorrect=\"off\" spellcheck=\"false\" maxlength=\"64\" required autofocus>\n"
               "<label for=\"secret\">Secret</label>\n"
               "<input id=\"secret\" name=\"secret\" type=\"password\" "
               "autocomplete=\"current-password\" maxlength=\"256\" required>\n"
               "<button type=\"submit\">Sign in</button>\n"
               "</form>\n"
               "<p class=\"foot\">With a grant token: the user it was issued to, and the token "
               "as the secret.</p>\n";
        break;
    case 2:
        form = "<form method=\"post\">\n<button type=\"submit\">Sign out</button>\n</form>\n";
        break;
    case 3:
        form = "<p><a href=\"/\">Sign in again</a></p>\n";
        break;
    default:
        break;
    }
    char body[5120];
    int blen = snprintf(body, sizeof(body),
                        "<!DOCTYPE html>\n"
                        "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width, "
                        "initial-scale=1\">\n"
                        "<meta name=\"robots\" content=\"noindex\">\n"
                        "<title>%s%s%s</title>\n"
                        "<style>%s</style>\n"
                        "</head><body><main>\n"
                        "<h1>%s</h1>\n%s%s%s%s%s%s%s"
                        "<p class=\"foot\">Tether relay</p>\n"
                        "</main></body></html>\n",
                        t->title, dev[0] ? " - " : "", dev, style, t->title, to,
                        t->lead ? "<p>" : "", t->lead ? t->lead : "", t->lead ? "</p>\n" : "",
                        t->error ? "<p class=\"err\" role=\"alert\">" : "",
                        t->error ? t->error : "", t->error ? "</p>\n" : "");
    if (blen < 0 || (size_t)blen >= sizeof(body))
        return -1;
    size_t fl = strlen(form);
    if ((size_t)blen + fl >= sizeof(body))
        return -1;
    /* the form goes before the footer */
    char *foot = strstr(body, "<p class=\"foot\">Tether relay");
    if (!foot)
        return -1;
    memmove(foot + fl, foot, strlen(foot) + 1);
    memcpy(foot, form, fl);
    blen += (int)fl;
    char common[512];
    if (common_headers(common, sizeof(common)) >= (int)sizeof(common))
        return -1;
    int n = snprintf(out, outlen,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %d\r\n"
                     "%s%s%s%s%s%s"
                     "\r\n%s",
                     t->status, t->reason, blen,
                     t->status == 401 ? "WWW-Authenticate: Tether-Sign-In\r\n" : "",
                     kind == TT_SIGNINPAGE_UNAVAILABLE ? "Retry-After: 1\r\n" : "", common,
                     p->set_cookie ? "Set-Cookie: " : "", p->set_cookie ? p->set_cookie : "",
                     p->set_cookie ? "\r\n" : "", p->head_only ? "" : body);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static bool host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
}

static bool path_ok(const uint8_t *path, size_t len)
{
    if (len == 0 || path[0] != '/' || (len > 1 && (path[1] == '/' || path[1] == '\\')))
        return false;
    for (size_t i = 0; i < len; i++)
        if (path[i] <= 0x20 || path[i] == 0x7f || path[i] == '\\')
            return false;
    return true;
}

int tt_signinpage_redirect(char *out, size_t outlen, int status, bool https, const uint8_t *host,
                           size_t hostlen, const uint8_t *path, size_t pathlen,
                           const char *set_cookie)
{
    if (hostlen == 0 || hostlen > 300)
        return -1;
    for (size_t i = 0; i < hostlen; i++)
        if (!host_char(host[i]))
            return -1;
    if (!path_ok(path, pathlen)) {
        path = (const uint8_t *)"/";
        pathlen = 1;
    }
    char common[512];
    if (common_headers(common, sizeof(common)) >= (int)sizeof(common))
        return -1;
    int n = snprintf(out, outlen,
                     "HTTP/1.1 %d %s\r\n"
                     "Location: %s://%.*s%.*s\r\n"
                     "Content-Length: 0\r\n"
                     "%s%s%s%s"
                     "\r\n",
                     status, status == 303 ? "See Other" : "Temporary Redirect",
                     https ? "https" : "http", (int)hostlen, (const char *)host, (int)pathlen,
                     (const char *)path, common, set_cookie ? "Set-Cookie: " : "",
                     set_cookie ? set_cookie : "", set_cookie ? "\r\n" : "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}
