#include <zlib.h>

/* deflateInit2 is a macro: wrap it so Swift can call it. windowBits 15 + 16 writes a gzip
   wrapper whose header has no name and mtime 0, so the output depends on the input only. */
static inline int qlz_gzip_init(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
}

/* inflateInit2 is a macro too: 15 + 32 reads gzip (or zlib) wrappers, detected from the header. */
static inline int qlz_gunzip_init(z_stream *s) {
    return inflateInit2(s, 15 + 32);
}
