/* Filesystem helpers (see fsutil.h). */
#include "common/fsutil.h"

#include "common/error.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return psrec_errf(errno, "%s: cannot create directory: %s", buf, strerror(errno));
        if (c == '\0')
            return 0;
        *p = c;
    }
}

int fs_remove_flat_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : psrec_errf(errno, "%s: %s", path, strerror(errno));
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    if (rmdir(path) != 0)
        return psrec_errf(errno, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}
