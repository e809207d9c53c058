/* Command-line number parsing shared by the subcommands: strict decimal integers in a range,
 * with one clear line on stderr naming the command and option when the text is not one. */
#ifndef PSREC_LAUNCH_CLI_H
#define PSREC_LAUNCH_CLI_H

#include <stdint.h>

/* Parse text as a decimal integer in lo..hi (digits only: no sign, no spaces) into *out.
 * cmd ("gen") and opt ("news", without dashes) name the culprit in the message.
 * Returns 0, or -1 after printing why. */
int cli_u64(const char *cmd, const char *opt, const char *text, uint64_t lo, uint64_t hi,
            uint64_t *out);
int cli_u32(const char *cmd, const char *opt, const char *text, uint32_t lo, uint32_t hi,
            uint32_t *out);
int cli_int(const char *cmd, const char *opt, const char *text, int lo, int hi, int *out);

#endif
