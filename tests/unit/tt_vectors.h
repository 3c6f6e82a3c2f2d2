/* tt_vectors.h - loads the protocol test vectors (the .txt files of tests/vectors, format in
 * docs/PROTOCOL.md) for test_frame.c and test_session.c. Test-only: uses malloc, stdio and
 * dirent. The directory is $TT_VECTORS_DIR, or "tests/vectors" from the repository root. */
#ifndef TT_VECTORS_H
#define TT_VECTORS_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TV_MAX_BYTES 4096
#define TV_MAX_FIELDS 24
#define TV_MAX_LINE 512
#define TV_MAX_VECTORS 256

struct tv_vector {
    char file[64];
    char name[80];
    uint8_t bytes[TV_MAX_BYTES];
    size_t len;
    char decode[24]; /* "" when absent */
    bool encode_no;
    char events[TV_MAX_LINE];
    bool has_events;
    size_t nfields;
    char key[TV_MAX_FIELDS][32];
    char val[TV_MAX_FIELDS][TV_MAX_LINE];
};

struct tv_set {
    size_t n;
    struct tv_vector v[TV_MAX_VECTORS];
};

static inline const char *tv_dir(void)
{
    const char *d = getenv("TT_VECTORS_DIR");
    return d != NULL && d[0] != '\0' ? d : "tests/vectors";
}

static inline int tv_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends the hex digits of s (spaces ignored) to out; returns false on a bad digit or odd count
 * or overflow. */
static inline bool tv_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    int hi = -1;

    for (; *s != '\0'; s++) {
        int v;
        if (*s == ' ' || *s == '\t')
            continue;
        v = tv_hexval((unsigned char)*s);
        if (v < 0)
            return false;
        if (hi < 0) {
            hi = v;
        } else {
            if (*len >= cap)
                return false;
            out[(*len)++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0;
}

/* Copies src into dst[0..cap), cut if needed; always NUL-terminated. */
static inline void tv_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static inline void tv_chomp(char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
}

/* Parses one file into set; returns false (with a message on stderr) on a syntax error. */
static inline bool tv_load_file(struct tv_set *set, const char *dir, const char *fname)
{
    char path[512], line[TV_MAX_LINE + 64];
    struct tv_vector *v = NULL;
    FILE *fp;
    int lineno = 0;
    bool ok = true;

    snprintf(path, sizeof(path), "%s/%s", dir, fname);
    fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    while (ok && fgets(line, sizeof(line), fp) != NULL) {
        char *eq;
        lineno++;
        tv_chomp(line);
        if (line[0] == '#')
            continue;
        if (line[0] == '\0') {
            v = NULL;
            continue;
        }
        if (strncmp(line, "name: ", 6) == 0) {
            if (set->n >= TV_MAX_VECTORS) {
                ok = false;
                break;
            }
            v = &set->v[set->n++];
            memset(v, 0, sizeof(*v));
            tv_copy(v->file, sizeof(v->file), fname);
            tv_copy(v->name, sizeof(v->name), line + 6);
            continue;
        }
        if (v == NULL) {
            ok = false;
            break;
        }
        if (strncmp(line, "hex: ", 5) == 0) {
            ok = tv_hex(line + 5, v->bytes, sizeof(v->bytes), &v->len);
        } else if (strncmp(line, "decode: ", 8) == 0) {
            tv_copy(v->decode, sizeof(v->decode), line + 8);
        } else if (strcmp(line, "encode: no") == 0) {
            v->encode_no = true;
        } else if (strncmp(line, "events: ", 8) == 0) {
            tv_copy(v->events, sizeof(v->events), line + 8);
            v->has_events = true;
        } else if ((eq = strchr(line, '=')) != NULL && v->nfields < TV_MAX_FIELDS &&
                   (size_t)(eq - line) < sizeof(v->key[0])) {
            memcpy(v->key[v->nfields], line, (size_t)(eq - line));
            v->key[v->nfields][eq - line] = '\0';
            tv_copy(v->val[v->nfields], sizeof(v->val[0]), eq + 1);
            v->nfields++;
        } else {
            ok = false;
        }
    }
    if (!ok)
        fprintf(stderr, "%s:%d: bad vector line\n", path, lineno);
    fclose(fp);
    return ok;
}

static inline int tv_cmpname(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every *.txt in the vectors directory (sorted by name). Returns NULL on failure. The
 * caller frees the set with free(). */
static inline struct tv_set *tv_load(void)
{
    const char *dir = tv_dir();
    struct tv_set *set = calloc(1, sizeof(*set));
    char *names[64];
    size_t nnames = 0, i;
    struct dirent *de;
    DIR *d;

    if (set == NULL)
        return NULL;
    d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "cannot open vectors directory %s (set TT_VECTORS_DIR)\n", dir);
        free(set);
        return NULL;
    }
    while ((de = readdir(d)) != NULL && nnames < 64) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".txt") == 0) {
            char *copy = malloc(n + 1);
            if (copy == NULL)
                break;
            memcpy(copy, de->d_name, n + 1);
            names[nnames++] = copy;
        }
    }
    closedir(d);
    qsort(names, nnames, sizeof(names[0]), tv_cmpname);
    for (i = 0; i < nnames; i++) {
        if (set != NULL && !tv_load_file(set, dir, names[i])) {
            free(set);
            set = NULL;
        }
        free(names[i]);
    }
    return set;
}

/* The idx-th value of key in v, or NULL. */
static inline const char *tv_get(const struct tv_vector *v, const char *key, size_t idx)
{
    size_t i;
    for (i = 0; i < v->nfields; i++) {
        if (strcmp(v->key[i], key) == 0 && idx-- == 0)
            return v->val[i];
    }
    return NULL;
}

/* Numeric field (decimal or 0x hex), or def when absent. */
static inline unsigned long tv_num(const struct tv_vector *v, const char *key, unsigned long def)
{
    const char *s = tv_get(v, key, 0);
    return s != NULL ? strtoul(s, NULL, 0) : def;
}

/* Frame type named by a file ("hello.txt" and "hello-v2.txt" -> 1), 0 for unknown.txt. */
static inline uint8_t tv_file_type(const struct tv_vector *v)
{
    static const char *const names[] = {"",     "hello",  "welcome", "refuse", "open",
                                        "data", "window", "reset",   "goaway"};
    size_t i;
    for (i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (strncmp(v->file, names[i], n) == 0 &&
            (strcmp(v->file + n, ".txt") == 0 || strcmp(v->file + n, "-v2.txt") == 0))
            return (uint8_t)i;
    }
    return 0;
}

/* The protocol version a file's vectors are for: 2 for "*-v2.txt", else 1. */
static inline uint8_t tv_file_version(const struct tv_vector *v)
{
    size_t n = strlen(v->file);
    return n >= 7 && strcmp(v->file + n - 7, "-v2.txt") == 0 ? 2 : 1;
}

#endif
