/*
 * ag_audit_tail on fuzzed audit files: what the gateway reads at start to
 * continue the chain, and to tell a line a crash cut short.
 *
 * Input: FILE, where each 0xfe byte becomes 64 KiB of 'x' (so that lines
 * cross the 64 KiB chunks the reader uses, and five of them exceed any
 * record).
 *
 * Oracle: a forward model. The last whole record is the last line that ends
 * with '\n', is at most AG_AUDIT_LINE_MAX bytes and has a record's form; any
 * byte after it makes a partial part (an empty line too): those bytes less a
 * final '\n'; partial_newline
 * says the file does not end with '\n'; its SHA-256 is of exactly those
 * bytes.
 */

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "ag_audit.h"


#define AG_FUZZ_EXPAND      65536
#define AG_FUZZ_FILE_MAX    (2 * 1024 * 1024)


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static void
ag_fuzz_sha256_hex(const char *p, size_t len, char hex[AG_AUDIT_HEX])
{
    static const char  digits[] = "0123456789abcdef";

    size_t         i;
    unsigned int   n;
    unsigned char  md[32];

    if (EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) != 1) {
        abort();
    }

    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0x0f];
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              fd, found, rc;
    char             err[256], hash[AG_AUDIT_HEX], sha[AG_AUDIT_HEX];
    char            *file;
    size_t           i, len, start, end, plen, off;
    uint64_t         seq;
    ag_audit_line_t  l;
    ag_audit_tail_t  t;

    file = malloc(AG_FUZZ_FILE_MAX);
    if (file == NULL) {
        return 0;
    }

    len = 0;

    for (i = 0; i < size; i++) {
        if (data[i] == 0xfe) {
            if (len + AG_FUZZ_EXPAND > AG_FUZZ_FILE_MAX) {
                break;
            }
            memset(file + len, 'x', AG_FUZZ_EXPAND);
            len += AG_FUZZ_EXPAND;
            continue;
        }

        if (len == AG_FUZZ_FILE_MAX) {
            break;
        }

        file[len++] = (char) data[i];
    }

    /* the model */

    found = 0;
    seq = 0;
    end = 0;
    start = 0;

    for (i = 0; i < len; i++) {
        if (file[i] != '\n') {
            continue;
        }

        if (i - start <= AG_AUDIT_LINE_MAX
            && ag_audit_line_parse(file + start, i - start, &l, err,
                                   sizeof(err)) == 0)
        {
            found = 1;
            seq = l.seq;
            memcpy(hash, l.hash, AG_AUDIT_HEX);
            end = i + 1;
        }

        start = i + 1;
    }

    plen = len - end;
    if (plen && file[len - 1] == '\n') {
        plen--;
    }

    /* the reader */

    fd = memfd_create("audit", 0);
    if (fd == -1) {
        free(file);
        return 0;
    }

    for (off = 0; off < len; ) {
        ssize_t  n = write(fd, file + off, len - off);

        if (n <= 0) {
            abort();
        }
        off += (size_t) n;
    }

    rc = ag_audit_tail(fd, &t, err, sizeof(err));
    close(fd);

    if (rc != 0) {
        fprintf(stderr, "ag_audit_tail: %s\n", err);
        abort();
    }

    if (t.size != (off_t) len || t.found != found) {
        abort();
    }

    if (found && (t.seq != seq || memcmp(t.hash, hash, AG_AUDIT_HEX) != 0)) {
        abort();
    }

    if (t.partial != (end < len) || t.partial_len != (off_t) plen) {
        abort();
    }

    if (end < len) {
        if (t.partial_offset != (off_t) end
            || t.partial_newline != (file[len - 1] != '\n'))
        {
            abort();
        }

        ag_fuzz_sha256_hex(file + end, plen, sha);

        if (memcmp(sha, t.partial_sha256, AG_AUDIT_HEX) != 0) {
            abort();
        }
    }

    free(file);

    return 0;
}
