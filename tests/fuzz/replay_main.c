/* replay_main.c - runs a libFuzzer target without libFuzzer: calls LLVMFuzzerTestOneInput on
 * every file named on the command line, and on every regular file in each directory named
 * there (not recursive). Lets gcc builds replay the seed corpus and saved crashes in make test.
 * Exits 0 when every input ran (a crash or sanitizer report aborts), 1 on an unreadable
 * argument. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        if (fp != NULL)
            fclose(fp);
        return -1;
    }
    buf = malloc((size_t)n + 1); /* +1: malloc(0) may return NULL */
    if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int i, bad = 0;
    long count = 0;

    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: cannot stat %s\n", argv[i]);
            bad = 1;
        } else if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            if (d == NULL) {
                fprintf(stderr, "replay: cannot open %s\n", argv[i]);
                bad = 1;
                continue;
            }
            while ((de = readdir(d)) != NULL) {
                char path[4096];
                struct stat fst;
                snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
                    continue;
                if (run_file(path) != 0)
                    bad = 1;
                else
                    count++;
            }
            closedir(d);
        } else if (run_file(argv[i]) != 0) {
            bad = 1;
        } else {
            count++;
        }
    }
    printf("replay: %ld input(s) run\n", count);
    return bad;
}
