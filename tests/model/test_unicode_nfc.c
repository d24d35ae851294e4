/* test_unicode_nfc.c — NFC (model/unicode_nfc.c) against Python's unicodedata.normalize("NFC")
 * on every single code point, on random runs of bases + combining marks + Hangul jamo (which
 * exercise canonical ordering, blocking and composition), plus hand-checked cases. The Python
 * comparison runs only when Python's Unicode version is the one the tables were generated from
 * (unicode_nfc_gen.py); the hand-checked cases always run. */
#include <stdlib.h>
#include <string.h>

#include "model/unicode_nfc.h"
#include "tp_test.h"

static void nfc_eq(const char *in, const char *want) {
    char *out;
    size_t n;
    tp_err err;
    TP_CHECK(tp_unicode_nfc(in, strlen(in), &out, &n, &err) == TP_OK);
    TP_CHECKF(strcmp(out, want) == 0 && n == strlen(want), "NFC(\"%s\") = \"%s\", want \"%s\"", in,
              out, want);
    free(out);
}

static void test_hand_checked(void) {
    nfc_eq("", "");
    nfc_eq("plain ascii", "plain ascii");
    nfc_eq("cafe\xcc\x81", "caf\xc3\xa9");                          /* e + acute -> é */
    nfc_eq("\xe2\x84\xab", "\xc3\x85");                             /* U+212B ANGSTROM SIGN -> Å */
    nfc_eq("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"); /* jamo -> 각 */
    nfc_eq("a\xcc\xa3\xcc\x81", "\xe1\xba\xa1\xcc\x81");            /* ạ + acute */
    /* e + dot below (220) + acute (230) stays ordered; dot below composes first: ẹ + ́ */
    nfc_eq("e\xcc\x81\xcc\xa3", "\xe1\xba\xb9\xcc\x81");
    nfc_eq("\xcc\x81"
           "a",
           "\xcc\x81"
           "a"); /* leading mark: nothing to compose with */
    nfc_eq("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac");
}

static void test_against_python(void) {
    char path[600], cmd[2048];
    snprintf(path, sizeof path, "%s/nfc_cases.txt", tp_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "python3 - '%s' '%s' <<'PY'\n"
             "import sys, random, unicodedata as ud\n"
             "if ud.unidata_version != sys.argv[2]: sys.exit(3)\n"
             "r = random.Random(7)\n"
             "marks = [c for c in range(0x300, 0x370)] + [0x323, 0x328, 0x5B0, 0x93C, 0x1DC0, "
             "0x20D0, 0x302A, 0x3099]\n"
             "bases = [0x41, 0x61, 0x65, 0x6F, 0x55, 0x3B1, 0x391, 0x433, 0x5D0, 0x915, 0x304B, "
             "0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x212B, 0x1E0A]\n"
             "cps = list(range(0x30000)) + list(range(0xE0000, 0xE0200))\n"
             "cases = [chr(c) for c in cps if not 0xD800 <= c <= 0xDFFF and c not in (10, 13)]\n"
             "for _ in range(20000):\n"
             "    cases.append(''.join(chr(r.choice(bases if r.random() < 0.4 else marks)) for _ "
             "in range(r.randint(1, 6))))\n"
             "with open(sys.argv[1], 'w', encoding='utf-8', newline='\\n') as f:\n"
             "    for s in cases: f.write(s.encode('utf-8', 'surrogatepass').hex() + ' ' + "
             "ud.normalize('NFC', s).encode('utf-8').hex() + '\\n')\n"
             "PY",
             path, tp_nfc_unicode_version);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr,
                "SKIP python comparison: python3 missing or its Unicode version is not "
                "%s (rc %d)\n",
                tp_nfc_unicode_version, rc);
        return;
    }
    FILE *f = fopen(path, "r");
    TP_CHECK(f != NULL);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        size_t li = strlen(line) / 2, lo = strcspn(sp + 1, "\n") / 2;
        char *in = malloc(li + 1), *want = malloc(lo + 1);
        for (size_t i = 0; i < li; i++) sscanf(line + 2 * i, "%2hhx", (unsigned char *)&in[i]);
        for (size_t i = 0; i < lo; i++) sscanf(sp + 1 + 2 * i, "%2hhx", (unsigned char *)&want[i]);
        in[li] = want[lo] = 0;
        char *out;
        size_t on;
        tp_err err;
        out = NULL;
        if (tp_unicode_nfc(in, li, &out, &on, &err) != TP_OK || on != lo || memcmp(out, want, lo))
            if (bad++ < 10) fprintf(stderr, "  NFC mismatch on input %s\n", line);
        free(out);
        free(in);
        free(want);
        n++;
    }
    free(line);
    fclose(f);
    fprintf(stderr, "  %d NFC cases compared with Python %s\n", n, tp_nfc_unicode_version);
    TP_CHECKF(bad == 0, "%d of %d NFC results differ from Python", bad, n);
    TP_CHECK(n > 200000);
}

TP_TEST_RUN(TP_CASE(test_hand_checked), TP_CASE(test_against_python))
