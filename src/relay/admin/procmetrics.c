/* procmetrics.c - the process's own series for /metrics (procmetrics.h): /proc/self read with
 * bounded buffers, parsed without allocation, written as Prometheus text. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tether_err.h"
#include "relay/admin/procmetrics.h"

/* /proc files read here are far smaller than this; a longer one is cut (and its parse fails
 * or ignores the tail). */
#define PROC_FILE_MAX 8192

/* Parses one unsigned decimal at *p (leading spaces skipped), moving *p past it. */
static bool next_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return false;
    *out = (uint64_t)v;
    *p = end;
    return true;
}

/* Skips one space-separated field at *p (leading spaces skipped). */
static bool skip_field(const char **p)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (*s == '\0' || *s == '\n')
        return false;
    while (*s && *s != ' ' && *s != '\n')
        s++;
    *p = s;
    return true;
}

int tt_procmetrics_parse_stat(const char *stat, long ticks, long pagesize, uint64_t btime,
                              struct tt_procmetrics *m)
{
    /* fields (proc(5)): 1 pid, 2 (comm), 3 state, ... 14 utime, 15 stime, ... 22 starttime,
     * 23 vsize, 24 rss */
    const char *p = strrchr(stat, ')');
    uint64_t utime = 0, stime = 0, start = 0, rss = 0, v;
    if (!p || ticks <= 0 || pagesize <= 0)
        return TETHER_ERR_INVAL;
    p++;
    for (int field = 3; field <= 24; field++) {
        if (field == 3) {
            if (!skip_field(&p))
                return TETHER_ERR_INVAL;
            continue;
        }
        if (!next_u64(&p, &v)) {
            /* some fields may be negative (priority, nice): read as text */
            if (field == 14 || field == 15 || field == 22 || field == 24 || !skip_field(&p))
                return TETHER_ERR_INVAL;
            continue;
        }
        if (field == 14)
            utime = v;
        else if (field == 15)
            stime = v;
        else if (field == 22)
            start = v;
        else if (field == 24)
            rss = v;
    }
    m->cpu_seconds = (double)(utime + stime) / (double)ticks;
    m->start_time = (double)btime + (double)start / (double)ticks;
    m->rss_bytes = rss * (uint64_t)pagesize;
    m->has_stat = true;
    return 0;
}

int tt_procmetrics_parse_limits(const char *limits, uint64_t *out)
{
    static const char key[] = "Max open files";
    for (const char *line = limits; line && *line;) {
        if (strncmp(line, key, sizeof(key) - 1) == 0) {
            const char *p = line + sizeof(key) - 1;
            return next_u64(&p, out) ? 0 : TETHER_ERR_INVAL;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return TETHER_ERR_INVAL;
}

int tt_procmetrics_parse_btime(const char *procstat, uint64_t *out)
{
    for (const char *line = procstat; line && *line;) {
        if (strncmp(line, "btime ", 6) == 0) {
            const char *p = line + 6;
            return next_u64(&p, out) ? 0 : TETHER_ERR_INVAL;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return TETHER_ERR_INVAL;
}

#ifdef __linux__
/* Reads at most PROC_FILE_MAX - 1 bytes of dir/name into buf (NUL-terminated). */
static bool read_file(const char *dir, const char *name, char buf[PROC_FILE_MAX])
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return false;
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, PROC_FILE_MAX - 1, f);
    bool ok = !ferror(f);
    fclose(f);
    buf[n] = '\0';
    return ok && n > 0;
}
#endif

void tt_procmetrics_read(const char *proc, struct tt_procmetrics *m)
{
    memset(m, 0, sizeof(*m));
#ifdef __linux__
    char buf[PROC_FILE_MAX], path[4096];
    uint64_t btime = 0;
    if (read_file(proc, "stat", buf) && tt_procmetrics_parse_btime(buf, &btime) == 0 &&
        read_file(proc, "self/stat", buf))
        (void)tt_procmetrics_parse_stat(buf, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), btime, m);
    if (read_file(proc, "self/limits", buf))
        m->has_max_fds = tt_procmetrics_parse_limits(buf, &m->max_fds) == 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/self/fd", proc) < sizeof(path)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            uint64_t n = 0;
            while ((e = readdir(d)) != NULL)
                if (e->d_name[0] != '.')
                    n++;
            closedir(d);
            m->open_fds = n; /* the directory's own descriptor included, as other exporters */
            m->has_fds = true;
        }
    }
#else
    (void)proc;
#endif
}

/* The text being written: whole lines only (a line that does not fit ends it: full). */
struct out {
    char *p;
    size_t len, cap;
    bool full;
};

__attribute__((format(printf, 2, 3))) static void out_fmt(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->full = true;
        o->p[o->len] = '\0';
        return;
    }
    o->len += (size_t)n;
}

/* s as a Prometheus label value (backslash, double quote and newline escaped), cut to fit
 * outlen. */
static void label(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *s && n + 3 < outlen; s++) {
        char c = *s == '\n' ? 'n' : *s;
        if (*s == '\\' || *s == '"' || *s == '\n')
            out[n++] = '\\';
        out[n++] = c;
    }
    out[n] = '\0';
}

size_t tt_procmetrics_format(const struct tt_procmetrics *m, const char *version,
                             const char *commit, const char *cert_file, int64_t not_after,
                             char *out, size_t outlen)
{
    struct out o = {.p = out, .cap = outlen};
    char lab[1024];
    if (outlen == 0)
        return 0;
    out[0] = '\0';
    char clab[256], extra[300] = "";
    if (commit && commit[0]) {
        label(commit, clab, sizeof(clab));
        snprintf(extra, sizeof(extra), ",commit=\"%s\"", clab);
    }
    label(version, lab, sizeof(lab));
    out_fmt(&o,
            "# HELP tether_build_info The relay's version and the commit it was built from "
            "(always 1).\n"
            "# TYPE tether_build_info gauge\n"
            "tether_build_info{version=\"%s\"%s} 1\n",
            lab, extra);
    if (m->has_fds)
        out_fmt(&o,
                "# HELP process_open_fds Number of open file descriptors.\n"
                "# TYPE process_open_fds gauge\n"
                "process_open_fds %" PRIu64 "\n",
                m->open_fds);
    if (m->has_max_fds)
        out_fmt(&o,
                "# HELP process_max_fds Maximum number of open file descriptors.\n"
                "# TYPE process_max_fds gauge\n"
                "process_max_fds %" PRIu64 "\n",
                m->max_fds);
    if (m->has_stat)
        out_fmt(&o,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %" PRIu64 "\n"
                "# HELP process_start_time_seconds Start time of the process since unix epoch in "
                "seconds.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %.2f\n"
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                "seconds.\n"
                "# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.2f\n",
                m->rss_bytes, m->start_time, m->cpu_seconds);
    if (cert_file && not_after > 0) {
        label(cert_file, lab, sizeof(lab));
        out_fmt(&o,
                "# HELP tether_tls_cert_expiry_timestamp_seconds When the --tls-cert certificate "
                "expires (its notAfter, unix seconds), as loaded at start or the last SIGHUP.\n"
                "# TYPE tether_tls_cert_expiry_timestamp_seconds gauge\n"
                "tether_tls_cert_expiry_timestamp_seconds{file=\"%s\"} %" PRId64 "\n",
                lab, not_after);
    }
    return o.full ? outlen : o.len;
}
