/* configfile.c - reads the --config FILE of tetherd and tether into (flag, value) pairs that
 * each program applies like its command-line flags (src/relay/config.c, src/cli/args.c). The format
 * is one setting per line, the flag's name with or without its leading "--" and its value,
 * separated by spaces, "=" or ":":
 *
 *     # relay of the east fleet
 *     listen 0.0.0.0:80
 *     domain = relay.example.com
 *     --grace 2h
 *     tcp_ports: "20000-20999"
 *
 * Blank lines and lines whose first non-blank character is "#" are ignored; "_" in a name is
 * read as "-"; a value may be put in double or single quotes (kept whole, spaces included).
 * Only the file's size and the number of settings bound what is kept. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/configfile.h"

static int syntax(char err[TT_ERRLEN], const char *path, unsigned line, const char *what)
{
    snprintf(err, TT_ERRLEN, "%.200s:%u: %s", path, line, what);
    return TT_CONFIGFILE_SYNTAX;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Parses one line (NUL-terminated, no newline) into f->items[f->n]. */
static int parse_line(struct tt_configfile *f, char *s, const char *path, unsigned line,
                      char err[TT_ERRLEN])
{
    while (is_blank(*s))
        s++;
    if (*s == '\0' || *s == '#')
        return 0;
    if (f->n == TT_CONFIGFILE_MAX_ITEMS)
        return syntax(err, path, line, "too many settings");
    if (s[0] == '-' && s[1] == '-')
        s += 2;
    char *name = s;
    while (*s && !is_blank(*s) && *s != '=' && *s != ':')
        s++;
    size_t nlen = (size_t)(s - name);
    if (nlen == 0)
        return syntax(err, path, line, "a setting's name is missing");
    if (nlen + 2 >= sizeof f->items[0].flag)
        return syntax(err, path, line, "unknown setting");
    while (is_blank(*s))
        s++;
    if (*s == '=' || *s == ':')
        s++;
    while (is_blank(*s))
        s++;
    char *value = s, *end;
    if (*s == '"' || *s == '\'') {
        char *close = strchr(s + 1, *s);
        if (close == NULL)
            return syntax(err, path, line, "unterminated quote");
        value = s + 1;
        end = close;
        for (s = close + 1; is_blank(*s); s++)
            ;
        if (*s != '\0' && *s != '#')
            return syntax(err, path, line, "text after a quoted value");
    } else {
        end = s + strlen(s);
        while (end > value && is_blank(end[-1]))
            end--;
    }
    struct tt_configfile_item *it = &f->items[f->n];
    it->flag[0] = '-';
    it->flag[1] = '-';
    for (size_t i = 0; i < nlen; i++)
        it->flag[2 + i] = name[i] == '_' ? '-' : name[i];
    it->flag[2 + nlen] = '\0';
    it->line = line;
    *end = '\0';
    it->value = value;
    f->n++;
    return 0;
}

int tt_configfile_read(const char *path, struct tt_configfile *f, char err[TT_ERRLEN])
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, TT_ERRLEN, "--config %.200s: %s", path, strerror(errno));
        return TT_CONFIGFILE_IO;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, TT_ERRLEN, "--config %.200s: not a regular file", path);
        fclose(fp);
        return TT_CONFIGFILE_IO;
    }
    f->mode = (unsigned)st.st_mode & 07777u;
    f->text = malloc(TT_CONFIGFILE_MAX_BYTES + 1);
    if (f->text == NULL) {
        fclose(fp);
        snprintf(err, TT_ERRLEN, "--config %.200s: out of memory", path);
        return TT_CONFIGFILE_IO;
    }
    size_t len = fread(f->text, 1, TT_CONFIGFILE_MAX_BYTES + 1, fp);
    int failed = ferror(fp);
    fclose(fp);
    if (failed) {
        snprintf(err, TT_ERRLEN, "--config %.200s: cannot read it", path);
        tt_configfile_free(f);
        return TT_CONFIGFILE_IO;
    }
    if (len > TT_CONFIGFILE_MAX_BYTES) {
        snprintf(err, TT_ERRLEN, "--config %.200s: larger than %d bytes", path,
                 TT_CONFIGFILE_MAX_BYTES);
        tt_configfile_free(f);
        return TT_CONFIGFILE_SYNTAX;
    }
    return tt_configfile_parse(f, len, path, err);
}

int tt_configfile_parse(struct tt_configfile *f, size_t len, const char *path, char err[TT_ERRLEN])
{
    f->n = 0;
    if (memchr(f->text, '\0', len) != NULL) {
        snprintf(err, TT_ERRLEN, "--config %.200s: not a text file", path);
        tt_configfile_free(f);
        return TT_CONFIGFILE_SYNTAX;
    }
    f->text[len] = '\0';
    unsigned line = 1;
    for (char *s = f->text; s != NULL; line++) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        int rc = parse_line(f, s, path, line, err);
        if (rc != 0) {
            tt_configfile_free(f);
            return rc;
        }
        s = nl ? nl + 1 : NULL;
    }
    return 0;
}

void tt_configfile_free(struct tt_configfile *f)
{
    free(f->text);
    memset(f, 0, sizeof *f);
}
