/* tp_test.h — the minimal test framework every tests/<area>/test_*.c uses: TP_CHECK records a
 * failure with file:line and goes on; tp_test_main runs the registered cases and exits non-zero
 * if any failed. Tests that need ../shared call tp_test_skip() with the reason. */
#ifndef TP_TEST_H
#define TP_TEST_H
#include <math.h>
#include <stdio.h>

extern int tp_test_failures;
extern const char *tp_test_current;

#define TP_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, tp_test_current, #cond);  \
            tp_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)
#define TP_CHECKF(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s — ", __FILE__, __LINE__, tp_test_current, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            tp_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)
#define TP_CHECK_NEAR(a, b, tol)                                                                   \
    TP_CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a),      \
              (double)(b), (double)(tol))

typedef void (*tp_test_fn)(void);
typedef struct {
    const char *name;
    tp_test_fn fn;
} tp_test_case;

/* Runs cases (filter by argv[1] substring if given); returns process exit code. */
int tp_test_main(int argc, char **argv, const tp_test_case *cases, int n);
/* Directory of ../shared (env TP_SHARED_DIR) or NULL if absent; prints why when NULL. */
const char *tp_test_shared_dir(const char *what);
/* Path to a scratch directory unique to this test process (created). */
const char *tp_test_tmpdir(void);
#define TP_TEST_RUN(...)                                                                           \
    int main(int argc, char **argv) {                                                              \
        static const tp_test_case cases_[] = {__VA_ARGS__};                                        \
        return tp_test_main(argc, argv, cases_, (int)(sizeof cases_ / sizeof cases_[0]));          \
    }
#define TP_CASE(fn)                                                                                \
    { #fn, fn }
#endif
