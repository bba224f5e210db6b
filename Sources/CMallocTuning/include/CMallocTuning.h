#ifndef C_MALLOC_TUNING_H
#define C_MALLOC_TUNING_H

#if defined(__GLIBC__)
#include <malloc.h>
#endif

/// Caps glibc's malloc arenas (M_ARENA_MAX); returns 1 when applied, 0 elsewhere or on failure.
static inline int sio_limit_malloc_arenas(int arenas) {
#if defined(__GLIBC__)
    return mallopt(M_ARENA_MAX, arenas);
#else
    (void)arenas;
    return 0;
#endif
}

#endif
