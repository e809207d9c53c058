/* Small filesystem helpers shared by the modules that lay out directories (prep, run dirs,
 * checkpoints). */
#ifndef PSREC_COMMON_FSUTIL_H
#define PSREC_COMMON_FSUTIL_H

/* mkdir -p: create path and its missing parents (mode 0755); a path that exists must be a
 * directory. Returns 0 or an errno value with psrec_errmsg() naming the culprit. */
int fs_mkdir_p(const char *path);

/* Remove a directory holding only plain files (a dataset or a checkpoint step): its files,
 * then the directory. Returns 0 or an errno value (psrec_errmsg() names the path); a missing
 * directory is not an error. */
int fs_remove_flat_dir(const char *path);

#endif
