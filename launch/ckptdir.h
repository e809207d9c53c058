/* Checkpoint directories: the on-disk layout of a run's checkpoints, their atomic update by one
 * or several processes, and their verification.
 *
 *   <root>/step-0000001234/shard-<k>.ckpt  one per server shard: run.meta + its tables
 *   <root>/step-0000001234/job.ckpt        the cut's job-wide part (run.meta + sections the
 *                                          trainer defines: worker positions, clocks, ...)
 *   <root>/step-0000001234/MANIFEST        written last: every file's size and CRC-32
 *   <root>/LATEST                          "step-0000001234\n": a hint only
 *
 * A step directory is valid only if its MANIFEST parses (its own CRC matches) and every file
 * it lists has the listed size and CRC. Readers (resume, eval, inspect) pick the newest valid
 * step directory by scanning names, never by trusting LATEST.
 *
 * Writing one checkpoint, possibly from several processes sharing the filesystem:
 *   1. everyone: ckptdir_begin (creates <root>/step-N.tmp idempotently);
 *   2. each writer: writes its file(s) into the tmp dir atomically (ckptdir_write_shard,
 *      ckptdir_write_job, or any ckpt_writer), or on failure ckptdir_mark_failed;
 *   3. the committer: ckptdir_wait_files for the others' files, then ckptdir_commit (MANIFEST,
 *      rename to step-N, LATEST, prune), or ckptdir_abandon on any failure.
 * A crash or a full disk at any point leaves the previous valid checkpoint untouched.
 *
 * Fault injection: PSREC_TEST_CKPT_FAIL_AFTER_BYTES=<n> (read by common/ckpt.c) makes every
 * checkpoint file writer fail with ENOSPC once it has written n bytes, as a full disk would. */
#ifndef PSREC_LAUNCH_CKPTDIR_H
#define PSREC_LAUNCH_CKPTDIR_H

#include "common/runmeta.h"
#include "server/shard.h"
#include "worker/reader.h"

#include <stddef.h>
#include <stdint.h>

#define CKPTDIR_MANIFEST "MANIFEST"
#define CKPTDIR_JOB_FILE "job.ckpt"
#define CKPTDIR_MANIFEST_VERSION 1u
#define CKPTDIR_NAME_MAX 64 /* a file name in a step dir, with its NUL */

/* One file of a MANIFEST. */
typedef struct CkptManifestEntry {
    char name[CKPTDIR_NAME_MAX];
    uint64_t size;
    uint32_t crc; /* CRC-32 (ckpt_crc32) of the whole file */
} CkptManifestEntry;

/* A parsed MANIFEST; files is owned (ckptdir_manifest_fini frees it). */
typedef struct CkptManifest {
    uint32_t version;
    uint64_t step;
    size_t nfiles;
    CkptManifestEntry *files;
} CkptManifest;

void ckptdir_manifest_fini(CkptManifest *m);

/* A named section of job.ckpt (borrowed for the duration of the call). */
typedef struct CkptdirSection {
    const char *name;
    const void *data;
    size_t size;
} CkptdirSection;

/* Create <root> and <root>/step-N.tmp if missing and return the tmp dir's path in tmpdir.
 * Idempotent and safe to call from several processes at once for the same step: it never
 * deletes anything. Returns 0 or an errno value with detail. */
int ckptdir_begin(const char *root, uint64_t step, char *tmpdir, size_t n);

/* Write <tmpdir>/shard-<meta->shard>.ckpt: run.meta + every table of shard (atomically: the
 * file appears complete or not at all). Returns 0 or an error with detail; nothing is left
 * behind on error. */
int ckptdir_write_shard(const char *tmpdir, const RunMeta *meta, const Shard *shard);

/* Write <tmpdir>/job.ckpt: run.meta + the given sections, atomically. Errors as above. */
int ckptdir_write_job(const char *tmpdir, const RunMeta *meta, const CkptdirSection *sections,
                      size_t nsections);

/* Leave a note <tmpdir>/<name>.failed holding reason, so a committer waiting for name stops
 * waiting and quotes it. Returns 0 or an errno value. */
int ckptdir_mark_failed(const char *tmpdir, const char *name, const char *reason);

/* Wait until every named file exists in tmpdir. Returns 0; PSREC_E_STATE when a
 * "<name>.failed" note appears (psrec_errmsg quotes its reason); ETIMEDOUT after timeout_s
 * seconds (the message names the missing files). Polls; no locks. */
int ckptdir_wait_files(const char *tmpdir, const char *const *files, size_t nfiles,
                       double timeout_s);

/* Publish step N: every named file must exist in <root>/step-N.tmp. Computes each file's size
 * and CRC-32 (streaming) and fsyncs it, writes MANIFEST (tmp + fsync + rename), fsyncs the
 * dir, renames step-N.tmp to step-N (replacing a step-N of an earlier life), fsyncs root,
 * writes LATEST (a hint: failing to write it only logs a warning), then prunes: keeps the
 * committed dir and the keep-1 highest-step other valid ones (keep < 1 counts as 1), deletes
 * the other valid ones, and deletes scratch dirs (.tmp and the like) and invalid dirs of
 * steps below N only, since a newer one may be being written. ("Valid" for pruning: the
 * MANIFEST parses; readers verify every CRC.) On an error before the rename nothing is
 * published and the tmp dir is left for the caller to abandon; only a failed fsync of root
 * can fail after it. Returns 0 or an error with detail. */
int ckptdir_commit(const char *root, uint64_t step, const char *const *files, size_t nfiles,
                   int keep);

/* Remove a tmp dir and everything in it (the committer, on failure). */
void ckptdir_abandon(const char *tmpdir);

/* 1 when step N is committed under root (its step dir holds a MANIFEST: written last, then
 * renamed into place), else 0. Checks presence only, no CRC: cheap enough to poll while a
 * committer finishes; verify on load (ckptdir_newest, ckptdir_resolve). */
int ckptdir_committed(const char *root, uint64_t step);

/* Remove every scratch dir under root (step-N.tmp and the like, whatever the step): for the
 * start of a life that holds the run dir's lock, when nothing is being written there and an
 * earlier life's half-written files must never be taken for this life's. A missing root is
 * fine. */
void ckptdir_clear_scratch(const char *root);

/* Check step_dir against its MANIFEST: each file's size, then CRC. out (may be NULL) receives
 * the manifest on success (ckptdir_manifest_fini it). Returns 0; PSREC_E_NOTFOUND when there
 * is no MANIFEST ("not a complete checkpoint"); PSREC_E_FORMAT for a damaged MANIFEST, a
 * missing file, or a size or CRC mismatch, the message naming the file and what is wrong. */
int ckptdir_verify(const char *step_dir, CkptManifest *out);

/* Parse step_dir's MANIFEST into out without checking the files (ckptdir_verify does that;
 * a caller that has just verified the dir uses this to learn the listed CRCs cheaply).
 * Returns 0, PSREC_E_NOTFOUND (no MANIFEST) or PSREC_E_FORMAT (damaged), with detail. */
int ckptdir_read_manifest(const char *step_dir, CkptManifest *out);

/* The newest valid step dir under root, by scanning names (highest step first; LATEST is not
 * read). Each invalid newer one is logged (WARN) by name with the reason and skipped.
 * step and dir (n bytes) receive it. Returns 0 or PSREC_E_NOTFOUND (none valid; message says
 * how many were skipped). */
int ckptdir_newest(const char *root, uint64_t *step, char *dir, size_t n);

/* path is a run's checkpoint root (resolved with ckptdir_newest) or one step dir (a dir named
 * step-N or holding a MANIFEST or shard-0.ckpt; it must verify). step_dir (n bytes) receives
 * the verified step dir. Returns 0 or an error whose message names path and the reason. */
int ckptdir_resolve(const char *path, char *step_dir, size_t n);

/* The rows keyrange_owner(table, key, shards) assigns to `shard`, out of every shard file of
 * step_dir (written with any shard count, including a single-process checkpoint), with their
 * optimizer state and step counts, into a new shard (lazy_dense: see ShardOptions). meta
 * receives shard file 0's run.meta as saved (its shards/shard fields are the checkpoint's).
 * The caller verifies step_dir first (ckptdir_resolve). Returns 0 or an error with detail. */
int ckptdir_load_shard(const char *step_dir, uint32_t shard, uint32_t shards, int lazy_dense,
                       RunMeta *meta, Shard **out);

/* Every row of every shard file of step_dir into one shard, for evaluation or single-process
 * use. params_only: optimizer state left fresh. */
int ckptdir_load_model(const char *step_dir, int params_only, RunMeta *meta, Shard **out);

/* Single-process checkpoint for meta->step: shard-0.ckpt (meta with shards 1, shard 0,
 * workers 1) and job.ckpt (that meta + sections), committed with keep. On error the tmp dir
 * is removed and the previous checkpoints stay valid. Returns 0 or an error with detail. */
int ckptdir_save(const char *root, const RunMeta *meta, const Shard *shard,
                 const CkptdirSection *job_sections, size_t nsections, int keep);


#endif
