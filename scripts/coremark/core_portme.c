/* CoreMark port layer for wasm32 without WASI (ours): seeds, no-op timing hooks (the
 * harness times coremark_run), a small ee_printf into a buffer, memcpy/memset. */
#include <stdarg.h>
#include "coremark.h"

#if VALIDATION_RUN
volatile ee_s32 seed1_volatile = 0x3415;
volatile ee_s32 seed2_volatile = 0x3415;
volatile ee_s32 seed3_volatile = 0x66;
#endif
#if PERFORMANCE_RUN
volatile ee_s32 seed1_volatile = 0x0;
volatile ee_s32 seed2_volatile = 0x0;
volatile ee_s32 seed3_volatile = 0x66;
#endif
#if PROFILE_RUN
volatile ee_s32 seed1_volatile = 0x8;
volatile ee_s32 seed2_volatile = 0x8;
volatile ee_s32 seed3_volatile = 0x8;
#endif
volatile ee_s32 seed4_volatile = 1;
volatile ee_s32 seed5_volatile = 0;
ee_u32 default_num_contexts = 1;

void start_time(void) {}
void stop_time(void) {}
CORE_TICKS get_time(void) { return 0; }
secs_ret time_in_secs(CORE_TICKS ticks) { return (secs_ret)ticks; }

void portable_init(core_portable *p, int *argc, char *argv[])
{
    (void)argc;
    (void)argv;
    p->portable_id = 1;
}
void portable_fini(core_portable *p) { p->portable_id = 0; }

/* ---- output: a buffer the harness reads ---- */
#define OUT_BYTES 4096
static char out_buf[OUT_BYTES];
static ee_u32 out_len;

static void put(char ch)
{
    if (out_len < OUT_BYTES)
        out_buf[out_len++] = ch;
}

static void put_unsigned(unsigned long v, unsigned base, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (width-- > n)
        put(pad);
    while (n)
        put(tmp[--n]);
}

/* %d %u %x %s %c %f, with l and a zero-padded width: what core_main.c prints. */
int ee_printf(const char *fmt, ...)
{
    va_list ap;
    ee_u32 start = out_len;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, is_long = 0;
        if (*fmt == '0')
            pad = '0';
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            long v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) {
                put('-');
                v = -v;
            }
            put_unsigned((unsigned long)v, 10, width, pad);
            break;
        }
        case 'u':
            put_unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            put_unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, width, pad);
            break;
        case 's':
            for (const char *s = va_arg(ap, const char *); *s; s++)
                put(*s);
            break;
        case 'c':
            put((char)va_arg(ap, int));
            break;
        case 'f': {
            double v = va_arg(ap, double);
            if (v < 0) {
                put('-');
                v = -v;
            }
            unsigned long whole = (unsigned long)v;
            put_unsigned(whole, 10, 0, ' ');
            put('.');
            put_unsigned((unsigned long)((v - (double)whole) * 1e6), 10, 6, '0');
            break;
        }
        default:
            put(*fmt);
        }
    }
    va_end(ap);
    return (int)(out_len - start);
}

/* ---- the harness's entry points ---- */
int coremark_main(void);

/* Run CoreMark for `iterations` (output reset first); returns the bytes written. */
__attribute__((export_name("coremark_run"))) ee_u32 coremark_run(ee_s32 iterations)
{
    out_len = 0;
    seed4_volatile = iterations;
    coremark_main();
    return out_len;
}

__attribute__((export_name("coremark_output"))) char *coremark_output(void) { return out_buf; }

/* ---- what the compiler may call (no libc) ---- */
void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}
