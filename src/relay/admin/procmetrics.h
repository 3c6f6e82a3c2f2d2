/* procmetrics.h - the process's own series for /metrics: tether_build_info, the standard
 * Prometheus process metrics (process_open_fds, process_max_fds, process_resident_memory_bytes,
 * process_start_time_seconds, process_cpu_seconds_total), read from /proc/self on Linux and
 * left out elsewhere, and the TLS certificate's expiry (tether_tls_cert_expiry_timestamp_seconds).
 * Reads files only when asked (one /metrics answer); keeps no state. */
#ifndef TT_PROCMETRICS_H
#define TT_PROCMETRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What /proc says of the process. Each figure has its own flag: one unreadable file leaves
 * the others shown. */
struct tt_procmetrics {
    bool has_fds, has_max_fds, has_stat;
    uint64_t open_fds;  /* entries of /proc/self/fd */
    uint64_t max_fds;   /* the soft "Max open files" of /proc/self/limits */
    uint64_t rss_bytes; /* resident pages * page size */
    double start_time;  /* unix seconds: boot time (/proc/stat btime) + starttime ticks */
    double cpu_seconds; /* user + system time */
};

/* Parses the text of /proc/PID/stat (stat, NUL-terminated; the command name may hold spaces
 * and parentheses: the last ')' ends it) with the clock's ticks per second, the page size and
 * the boot time (unix seconds) into m's rss, start and cpu figures. Returns 0 or
 * TETHER_ERR_INVAL (too few fields, or not numbers). Pure. */
int tt_procmetrics_parse_stat(const char *stat, long ticks, long pagesize, uint64_t btime,
                              struct tt_procmetrics *m);

/* The soft limit of the "Max open files" line of /proc/PID/limits text (NUL-terminated).
 * Returns 0 and *out, or TETHER_ERR_INVAL (no such line, or "unlimited"). Pure. */
int tt_procmetrics_parse_limits(const char *limits, uint64_t *out);

/* The "btime N" line of /proc/stat text. Returns 0 and *out, or TETHER_ERR_INVAL. Pure. */
int tt_procmetrics_parse_btime(const char *procstat, uint64_t *out);

/* Reads proc (a procfs mount: "/proc") for this process (proc/self) into m; on systems other
 * than Linux, and for any file that cannot be read, the matching has_ flag stays false. */
void tt_procmetrics_read(const char *proc, struct tt_procmetrics *m);

/* Writes the Prometheus text of the series (HELP and TYPE lines included) into out (outlen
 * bytes, NUL-terminated): tether_build_info{version=VERSION,commit=COMMIT} 1 (no commit label
 * when commit is NULL or ""); the process series that m has;
 * when cert_file is not NULL, tether_tls_cert_expiry_timestamp_seconds{file=CERT_FILE} with
 * not_after (unix seconds of the certificate's notAfter; the series is left out when 0: the
 * certificate's time could not be read). Returns the length written, or outlen when out was
 * too small (out then holds whole lines only). */
size_t tt_procmetrics_format(const struct tt_procmetrics *m, const char *version,
                             const char *commit, const char *cert_file, int64_t not_after,
                             char *out, size_t outlen);

/* The commit tetherd was built from (buildinfo.c), "" when unknown. */
extern const char *const tt_buildinfo_commit;

#endif
