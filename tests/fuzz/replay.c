/* Replays one fuzz target's committed corpus (tests/fuzz/corpus/<name>: the seeds and every
 * crashing input found so far) as an ordinary ctest, built by the project's compiler without
 * libFuzzer: an input that once crashed a target stays a test on every build, and the Asan
 * build checks each one with the sanitizers. Usage: replay_<name> DIR. Exits 0 after running
 * every file; a crash ends the process and fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 1;
    }
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)))
            n++;
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, by_name);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        FILE *f = fopen(path, "rb");
        unsigned char *buf = NULL;
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
            printf("%s (%ld bytes)\n", names[i], size);
            fflush(stdout);
            LLVMFuzzerTestOneInput(buf, (size_t)size);
            ran++;
        } else {
            fprintf(stderr, "%s: cannot read\n", path);
        }
        free(buf);
        if (f)
            fclose(f);
        free(names[i]);
    }
    printf("%d of %d inputs replayed\n", ran, n);
    return ran == n && n > 0 ? 0 : 1;
}
