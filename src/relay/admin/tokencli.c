/* tokencli.c - `tetherd token status|rotate [--data-dir DIR]` (tokencli.h): opens the data
 * dir's registry (never creating one), reads or replaces the generated fleet token's hash. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "tether_err.h"
#include "common/util.h"
#include "relay/config.h"
#include "common/configfile.h"
#include "relay/store/registry.h"
#include "relay/admin/tokencli.h"
#include "relay/device/tokens.h"

#define EXIT_USAGE 2
#define EXIT_FAIL 1

void tt_tokencli_usage(FILE *f)
{
    fputs("usage: tetherd token status|rotate [--data-dir DIR | --config FILE]\n"
          "\n"
          "The generated device token (the fleet token tetherd makes on its first start when\n"
          "neither --token nor --tokens-file is given), kept only as a hash in DIR's registry.\n"
          "\n"
          "  status    whether a generated token exists (never the token itself), and how many\n"
          "            earlier ones devices holding a device key may still present\n"
          "  rotate    make a new token and print it once (\"tetherd: device token: HEX\");\n"
          "            the relay takes it at its next start or on SIGHUP, when the old one\n"
          "            stops registering new names (devices holding a device key keep working)\n"
          "\n"
          "  --data-dir DIR   the relay's data dir (default ./tether-data)\n"
          "  --config FILE    take the data dir from the relay's config file\n"
          "\n"
          "Exit status: 0 done, 1 no generated token (or a registry failure), 2 usage error.\n",
          f);
}

/* The data dir a config file names (--data-dir), into out; "" when it names none. Returns 0,
 * or the exit status with a message on stderr. */
static int dir_from_config(const char *path, char out[TT_CONFIG_PATHLEN])
{
    static struct tt_configfile f;
    char err[TT_ERRLEN];
    int rc = tt_configfile_read(path, &f, err);
    out[0] = '\0';
    if (rc != 0) {
        fprintf(stderr, "tetherd: %s\n", err);
        return rc == TT_CONFIGFILE_IO ? EXIT_FAIL : EXIT_USAGE;
    }
    for (size_t i = 0; i < f.n; i++)
        if (strcmp(f.items[i].flag, "--data-dir") == 0)
            snprintf(out, TT_CONFIG_PATHLEN, "%s", f.items[i].value ? f.items[i].value : "");
    tt_configfile_free(&f);
    return 0;
}

int tt_tokencli_main(int argc, char **argv)
{
    const char *dir = "./tether-data", *cmd = NULL, *config = NULL;
    bool dir_given = false;
    char conf_dir[TT_CONFIG_PATHLEN];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            tt_tokencli_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--data-dir") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "tetherd token: --data-dir needs a directory\n");
                return EXIT_USAGE;
            }
            dir = argv[++i];
            dir_given = true;
        } else if (strncmp(argv[i], "--data-dir=", 11) == 0 && argv[i][11]) {
            dir = argv[i] + 11;
            dir_given = true;
        } else if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "tetherd token: --config needs a file\n");
                return EXIT_USAGE;
            }
            config = argv[++i];
        } else if (!cmd && (strcmp(argv[i], "status") == 0 || strcmp(argv[i], "rotate") == 0)) {
            cmd = argv[i];
        } else {
            fprintf(stderr, "tetherd token: unknown %s '%.100s' (see tetherd token --help)\n",
                    argv[i][0] == '-' ? "option" : "argument", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!cmd) {
        fprintf(stderr, "tetherd token: status or rotate expected (see tetherd token --help)\n");
        return EXIT_USAGE;
    }
    if (config && !dir_given) { /* the command line wins, as for the relay */
        int rc = dir_from_config(config, conf_dir);
        if (rc != 0)
            return rc;
        if (conf_dir[0])
            dir = conf_dir;
    }
    if (strlen(dir) >= TT_CONFIG_PATHLEN - 32) {
        fprintf(stderr, "tetherd token: --data-dir is too long\n");
        return EXIT_USAGE;
    }
    char path[TT_CONFIG_PATHLEN], err[TT_ERRLEN];
    snprintf(path, sizeof(path), "%s/%s", dir, TT_REGISTRY_FILE);
    if (access(path, F_OK) != 0) {
        fprintf(stderr,
                "tetherd: no generated device token in %.200s (no registry: tetherd makes one "
                "on its first start that serves)\n",
                dir);
        return EXIT_FAIL;
    }
    struct tt_registry *reg = tt_registry_sqlite_open(path, err);
    if (!reg) {
        fprintf(stderr, "tetherd: %s\n", err);
        return EXIT_FAIL;
    }
    int status = 0;
    uint8_t hash[32], old[32];
    int rc = tt_registry_cred_get(reg, TT_REG_FLEET_CRED, hash);
    if (rc == TETHER_ERR_NOT_FOUND) {
        fprintf(stderr,
                "tetherd: no generated device token in %.200s (the relay runs with --token or "
                "--tokens-file, or has not served yet)\n",
                dir);
        status = EXIT_FAIL;
    } else if (rc != 0) {
        fprintf(stderr, "tetherd: cannot read the registry in %.200s: %s\n", dir,
                tether_strerror(rc));
        status = EXIT_FAIL;
    } else if (strcmp(cmd, "status") == 0) {
        int nold = 0;
        char name[32];
        for (int i = 1; i <= TT_TOKENS_OLD_FLEET; i++) {
            snprintf(name, sizeof(name), "fleet-old-%d", i);
            nold += tt_registry_cred_get(reg, name, old) == 0;
        }
        /* "fleet" is the hash the relay used at its last start (or SIGHUP) */
        bool pending = tt_registry_cred_get(reg, "fleet", old) == 0 && memcmp(old, hash, 32) != 0;
        printf("device token: generated, sha256 %02x%02x%02x%02x%02x%02x..., kept hashed in "
               "%s/%s\n",
               hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], dir, TT_REGISTRY_FILE);
        if (pending)
            printf("rotated: the relay takes the new token at its next start or SIGHUP\n");
        printf("earlier tokens still good with a device key: %d\n", nold);
    } else {
        char token[TT_MAX_TOKEN + 1];
        if (tt_tokens_rotate(reg, token, err) != 0) {
            fprintf(stderr, "tetherd: %s\n", err);
            status = EXIT_FAIL;
        } else {
            printf("tetherd: device token: %s\n", token);
            fflush(stdout);
            tt_secret_wipe(token, sizeof(token));
        }
    }
    tt_registry_free(reg);
    return status;
}
