/* configfile.h - the --config FILE of tetherd (src/relay/config.c) and tether (src/cli/args.c):
 * settings read from a file, which each program applies like its flags (the format is described
 * in configfile.c and docs/operators-guide.md). Pure reader: it knows no setting's name.
 * Return values: common/'s convention (util.h): 0 or a negative tether_err (TT_CONFIGFILE_*
 * name the two that matter), with a one-line message in err. */
#ifndef TT_CONFIGFILE_H
#define TT_CONFIGFILE_H

#include "common/util.h"

#define TT_CONFIGFILE_MAX_BYTES (64 * 1024)
#define TT_CONFIGFILE_MAX_ITEMS 256

/* Return codes of tt_configfile_read besides 0. */
#define TT_CONFIGFILE_SYNTAX TETHER_ERR_CONFIG /* a line that does not parse: a usage error */
#define TT_CONFIGFILE_IO TETHER_ERR_IO /* the file cannot be opened or read: a runtime failure */

struct tt_configfile_item {
    char flag[40];     /* "--listen" */
    const char *value; /* inside text */
    unsigned line;     /* 1-based, for messages */
};

struct tt_configfile {
    char *text; /* the file's bytes, cut into values in place */
    size_t n;
    unsigned mode; /* the file's permission bits (st_mode & 07777); 0 from tt_configfile_parse */
    struct tt_configfile_item items[TT_CONFIGFILE_MAX_ITEMS];
};

/* Reads path into f. Returns 0, or TT_CONFIGFILE_SYNTAX / TT_CONFIGFILE_IO with a one-line
 * message naming the file (and the line) in err; f needs tt_configfile_free only after 0. */
int tt_configfile_read(const char *path, struct tt_configfile *f, char err[TT_ERRLEN]);

/* Parses f->text[0..len) (malloc'd, len + 1 bytes, owned by f from now on) into f's items.
 * Returns 0 or TT_CONFIGFILE_SYNTAX with a message naming path and the line; on error f is
 * freed. tt_configfile_read ends with it; the fuzz target calls it directly. */
int tt_configfile_parse(struct tt_configfile *f, size_t len, const char *path, char err[TT_ERRLEN]);

void tt_configfile_free(struct tt_configfile *f);

#endif
