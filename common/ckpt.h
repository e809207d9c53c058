/* Checkpoint file format: a self-checking container of named sections.
 *
 * File layout (little-endian):
 *   header   CkptHeader: magic "PSRCCKP1", version, header size, section count, file size
 *   table    n x CkptSectionEntry: name, byte offset, byte size, CRC-32 of the bytes
 *   data     the sections' bytes, each starting 16-byte aligned
 *   trailer  CRC-32 of header + table (u32), so a damaged index is caught before use
 * Writers build the file under "<path>.tmp" and rename it into place after fsync, so a crash
 * leaves either the old file or the new one, never a torn one. Readers validate magic,
 * version, sizes and every CRC on open, and refuse the file otherwise. */
#ifndef PSREC_COMMON_CKPT_H
#define PSREC_COMMON_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC 0x3150434b43525350ULL /* "PSRCKCP1" little-endian bytes */
#define CKPT_VERSION 1u
#define CKPT_NAME_MAX 48

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of data, continuing from crc (0 to start). */
uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t n);

typedef struct CkptWriter CkptWriter;
typedef struct CkptReader CkptReader;

/* Start writing path (via path.tmp). Returns 0 or an errno / PSREC_E_* code.
 * Tests: PSREC_TEST_CKPT_FAIL_AFTER_BYTES=<n> in the environment makes the writer fail with
 * ENOSPC once it would write more than n bytes (a full disk on demand). */
int ckpt_writer_new(const char *path, CkptWriter **out);
/* Add a section; name is at most CKPT_NAME_MAX-1 bytes and unique in the file. The bytes are
 * copied to the file now (the writer keeps only the index). */
int ckpt_write_section(CkptWriter *w, const char *name, const void *data, size_t size);
/* Write index and trailer, fsync, rename into place, fsync the directory. Frees w. */
int ckpt_writer_finish(CkptWriter **w);
/* Abandon: remove path.tmp. Frees w. */
void ckpt_writer_abort(CkptWriter **w);

/* Read and validate a whole checkpoint file. Errors name the path and what is wrong. */
int ckpt_reader_open(const char *path, CkptReader **out);
void ckpt_reader_free(CkptReader **r);
/* Find a section: *data borrows from the reader (16-byte aligned) until ckpt_reader_free.
 * Returns 0 or PSREC_E_NOTFOUND. */
int ckpt_section(const CkptReader *r, const char *name, const void **data, size_t *size);
/* Number of sections and the name of section i (for inspect). */
size_t ckpt_section_count(const CkptReader *r);
const char *ckpt_section_name(const CkptReader *r, size_t i, size_t *size);

#endif
