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
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return psrec_errf(ENAMETOOLONG, "'%s': not a usable directory path", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return psrec_errf(errno, "%s: cannot create directory: %s", buf, strerror(errno));
        if (c == '\0')
            break;
        *p = c;
    }
    /* EEXIST also covers a plain file of that name. */
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return psrec_errf(ENOTDIR, "%s: exists and is not a directory", path);
    return 0;
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
