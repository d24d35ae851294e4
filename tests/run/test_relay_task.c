/* test_relay_task.c — the text relay's prompts are task data (tp_task_info, ABI 1.2): a fixture
 * task whose relay templates differ from the harness defaults gets its sender template into the
 * sender (the stored summaries are exactly the greedy continuations of that prompt, and differ
 * from the default prompt's) and its receiver template into the receiver; a run spec's
 * baseline_options.sender_prompt overrides the task's; a task built for ABI 1.1 (no such
 * members) falls back to the old default and the direct prompt; a template without {text} is an
 * error naming the task; the config hash depends only on the effective prompt (so the stock
 * tasks, whose templates equal the old default, keep their hashes), and a replay spec rebuilt
 * from the stored config resolves to the same hash. The fixture task is written into the tmp
 * dir and built with `cc` like the loader tests' fixtures. */
#include <ctype.h>

#include "model/generate.h"
#include "plugin/options.h"
#include "run/batch.h"
#include "run/relay.h"
#include "run/replay.h"
#include "run/run_config.h"
#include "run_fixture.h"
#include "util/fsutil.h"

#define FX_SENDER   "Condense this into a few words: {text}\nGist:"
#define FX_RECEIVER "Gist: {text}\nWhich topic is it, sports or music?"

/* -DMODE=0: ABI 1.1 (relay members untouched); 1: ABI 1.2 with templates; 2: a bad template. */
static const char task_c[] =
    "#define TP_PLUGIN\n"
    "#include <stddef.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <telepathy/task.h>\n"
    "TP_PLUGIN_DEFINE_API;\n"
    "static const char *texts[6] = {\"the team won the match\", \"a song on the radio\",\n"
    "    \"the striker scored twice\", \"she plays the violin\", \"a long race in the rain\",\n"
    "    \"the band sang all night\"};\n"
    "static tp_status t_open(const tp_options *o, const char *dir, void **s, tp_err *e) {\n"
    "    (void)o; (void)dir; (void)e; *s = 0; return TP_OK; }\n"
    "static tp_status t_info(void *s, tp_task_info *out) { (void)s;\n"
    "#if MODE == 0\n"
    "    memset(out, 0, offsetof(tp_task_info, relay_sender_template));\n"
    "#else\n"
    "    memset(out, 0, sizeof *out);\n"
    "    out->relay_sender_template = MODE == 1 ? SENDER : \"Summarise it.\";\n"
    "    out->relay_receiver_template = RECEIVER;\n"
    "#endif\n"
    "    out->n_labels = 2; out->labels[0] = \"sports\"; out->labels[1] = \"music\";\n"
    "    out->sender_template = \"Text: {text}\\nTopic:\"; out->receiver_primer = \"Topic:\";\n"
    "    out->direct_template = \"Text: {text}\\nTopic (sports, music):\";\n"
    "    out->default_scoring = \"first_token\"; return TP_OK; }\n"
    "static tp_status t_load(void *s, const char *sp, tp_dataset *o, tp_err *e) {\n"
    "    (void)s; (void)sp; (void)e; memset(o, 0, sizeof *o);\n"
    "    o->rows = calloc(6, sizeof *o->rows);\n"
    "    for (int i = 0; i < 6; i++) {\n"
    "        o->rows[i].id = i; o->rows[i].label = i % 2;\n"
    "        o->rows[i].text = malloc(strlen(texts[i]) + 1); strcpy(o->rows[i].text, texts[i]);\n"
    "        const char *a = i % 2 ? \"music\" : \"sports\";\n"
    "        o->rows[i].answer = malloc(strlen(a) + 1); strcpy(o->rows[i].answer, a);\n"
    "    }\n"
    "    o->n = 6; strcpy(o->source, \"synthetic(relay fixture)\"); return TP_OK; }\n"
    "static void t_free(void *s, tp_dataset *d) { (void)s;\n"
    "    for (int64_t i = 0; i < d->n; i++) { free(d->rows[i].text); free(d->rows[i].answer); }\n"
    "    free(d->rows); memset(d, 0, sizeof *d); }\n"
    "static void t_close(void *s) { (void)s; }\n"
    "static const tp_task_vtable vt = {sizeof(tp_task_vtable), t_open, t_info, t_load, t_free,\n"
    "                                  0, t_close};\n"
    "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d,\n"
    "                                          tp_err *e) {\n"
    "    (void)e; TP_PLUGIN_BIND(api);\n"
    "    d->abi_version = (TP_ABI_MAJOR << 16) | (MODE == 0 ? 1 : TP_ABI_MINOR);\n"
    "    d->size = sizeof *d; d->kind = TP_PLUGIN_TASK; d->name = NAME;\n"
    "    d->version = \"1\"; d->summary = \"relay template fixture\";\n"
    "    d->vtable = &vt; d->vtable_size = sizeof vt; return TP_OK;\n"
    "}\n";

static int built;

static void build_one(const char *name, int mode) {
    const char *root = getenv("TP_SOURCE_DIR");
    if (!root) root = TP_SOURCE_DIR;
    char c_path[700], cmd[4096];
    snprintf(c_path, sizeof c_path, "%s/relay_task.c", tp_test_tmpdir());
    FILE *f = fopen(c_path, "w");
    TP_CHECK(f != NULL);
    if (!f) return;
    fputs(task_c, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -DMODE=%d -DNAME='\"%s\"' "
             "-DSENDER='\"%s\"' -DRECEIVER='\"%s\"' -I'%s/harness/include' -o '%s/%s.so' '%s' "
             "-Wl,--no-undefined",
             mode, name, "Condense this into a few words: {text}\\nGist:",
             "Gist: {text}\\nWhich topic is it, sports or music?", root, tp_test_tmpdir(), name,
             c_path);
    int rc = system(cmd);
    TP_CHECKF(rc == 0, "fixture build failed: %s", cmd);
}

/* The registry of f plus the three fixture tasks. */
static int open_fx(fx *f, const char *db) {
    if (!built) {
        built = 1;
        build_one("relay_fixture", 1);
        build_one("relay_fixture_old", 0);
        build_one("relay_fixture_bad", 2);
    }
    if (!fx_open(f, db)) return 0;
    static const char *const names[] = {"relay_fixture", "relay_fixture_old", "relay_fixture_bad"};
    for (int i = 0; i < 3; i++) {
        char p[800];
        tp_err err = {0};
        snprintf(p, sizeof p, "%s/%s.so", tp_test_tmpdir(), names[i]);
        TP_CHECKF(tp_registry_load(f->reg, p, &err) == TP_OK, "%s", err.msg);
    }
    return 1;
}

static json_t *spec_for(const char *task) {
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:i}, s:s, s:i}", "baseline", "text_relay", "sender",
                     "tiny_llama", "receiver", "tiny_mistral", "task", task, "baseline_options",
                     "summary_tokens", 5, "scoring", "first_token", "eval_batch", 8);
}

/* Greedy continuation of tpl filled with text by the sender alone, trimmed (what the relay must
 * have produced if the sender read tpl). */
static char *summary_of(const tp_run_cfg *c, const char *tpl, const char *text) {
    char *prompt = tp_fill_template(tpl, text);
    tp_model *m = c->sender->m;
    int32_t *ids = NULL;
    int n = 0;
    tp_err err = {0};
    char *out = NULL;
    if (prompt && tp_tokenizer_encode(m->tok, prompt, c->sender_bos, &ids, &n, &err) == TP_OK) {
        tp_gen_cfg g = tp_gen_defaults(m);
        g.max_new_tokens = c->bopts.summary_tokens;
        g.greedy = 1;
        tp_gen_in in = {.batch = 1, .len = n, .ids = ids, .embeds = NULL, .mask = NULL};
        tp_gen_out go = {0};
        if (tp_generate(m, &in, &g, &go, &err) == TP_OK)
            tp_tokenizer_decode(m->tok, go.tokens, go.n_tokens[0], 1, &out, &err);
        tp_gen_out_free(&go);
    }
    TP_CHECKF(out != NULL, "summary: %s", err.msg);
    free(ids);
    free(prompt);
    if (out) {
        size_t a = 0, l = strlen(out);
        while (a < l && isspace((unsigned char)out[a])) a++;
        while (l > a && isspace((unsigned char)out[l - 1])) l--;
        memmove(out, out + a, l - a);
        out[l - a] = 0;
    }
    return out;
}

static void test_task_template_reaches_relay(void) {
    fx f;
    if (!open_fx(&f, "relay_task.db")) return;
    json_t *spec = spec_for("relay_fixture");
    tp_run_cfg c;
    tp_err err = {0};
    tp_status st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECKF(c.bopts.sender_prompt && !strcmp(c.bopts.sender_prompt, FX_SENDER), "%s",
                  c.bopts.sender_prompt ? c.bopts.sender_prompt : "(null)");
        TP_CHECK(strstr(c.canon, "Condense this into a few words") != NULL);
        tp_relay *rl = NULL;
        TP_CHECK(tp_relay_new(&rl, &c, &err) == TP_OK);
        if (rl) TP_CHECK(!strcmp(tp_relay_receiver_template(rl), FX_RECEIVER));
        tp_relay_free(rl);
    }
    /* the recorded run: every stored summary is the sender's continuation of the task's prompt,
     * and at least one differs from what the default prompt would have given */
    tp_run_result res;
    st = tp_runner_run(f.runner, spec, &res, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK && c.sender) {
        sqlite3_stmt *q = NULL;
        TP_CHECK(sqlite3_prepare_v2(tp_store_db(f.store),
                                    "SELECT CAST(example_id AS INTEGER), output FROM predictions "
                                    "WHERE run_id = ?1 ORDER BY 1",
                                    -1, &q, NULL) == SQLITE_OK);
        sqlite3_bind_int64(q, 1, res.run_id);
        const tp_task_vtable *tv = c.task->desc.vtable;
        tp_dataset ds;
        TP_CHECK(tv->load(c.task_state, "eval", &ds, &err) == TP_OK);
        int n = 0, differ = 0;
        while (sqlite3_step(q) == SQLITE_ROW) {
            int id = sqlite3_column_int(q, 0);
            const char *out = (const char *)sqlite3_column_text(q, 1);
            TP_CHECK(id >= 0 && id < ds.n && out != NULL);
            if (id < 0 || id >= ds.n || !out) continue;
            char *want = summary_of(&c, FX_SENDER, ds.rows[id].text);
            char *dflt = summary_of(&c, TP_RELAY_SENDER_PROMPT, ds.rows[id].text);
            TP_CHECKF(want && !strcmp(out, want), "row %d: stored '%s', task prompt gives '%s'", id,
                      out, want ? want : "(null)");
            differ += dflt && strcmp(out, dflt) != 0;
            free(want);
            free(dflt);
            n++;
        }
        sqlite3_finalize(q);
        TP_CHECK(n == 6);
        TP_CHECKF(differ > 0, "the default prompt gives the same summaries: the test cannot tell "
                              "the prompts apart");
        tv->free_dataset(c.task_state, &ds);
    }
    tp_run_cfg_free(&c);
    json_decref(spec);
    fx_close(&f);
}

static void test_override_and_old_abi(void) {
    fx f;
    if (!open_fx(&f, "")) return;
    tp_err err = {0};
    tp_run_cfg c;
    /* the run spec's sender_prompt wins over the task's */
    json_t *spec = spec_for("relay_fixture");
    json_object_set_new(json_object_get(spec, "baseline_options"), "sender_prompt",
                        json_string("Override: {text}\nShort:"));
    tp_status st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(!strcmp(c.bopts.sender_prompt, "Override: {text}\nShort:"));
        TP_CHECK(strstr(c.canon, "Override: ") && !strstr(c.canon, "Condense"));
        tp_relay *rl = NULL;
        TP_CHECK(tp_relay_new(&rl, &c, &err) == TP_OK); /* the receiver's stays the task's */
        if (rl) TP_CHECK(!strcmp(tp_relay_receiver_template(rl), FX_RECEIVER));
        tp_relay_free(rl);
    }
    tp_run_cfg_free(&c);
    json_decref(spec);
    /* a task built for ABI 1.1: the old default and the direct prompt */
    spec = spec_for("relay_fixture_old");
    st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(c.info.relay_sender_template == NULL && c.info.relay_receiver_template == NULL);
        TP_CHECK(!strcmp(c.bopts.sender_prompt, TP_RELAY_SENDER_PROMPT));
        tp_relay *rl = NULL;
        TP_CHECK(tp_relay_new(&rl, &c, &err) == TP_OK);
        if (rl)
            TP_CHECK(
                !strcmp(tp_relay_receiver_template(rl), "Text: {text}\nTopic (sports, music):"));
        tp_relay_free(rl);
    }
    tp_run_cfg_free(&c);
    json_decref(spec);
    /* a task template without {text} is the task's bug, named */
    spec = spec_for("relay_fixture_bad");
    st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_EPLUGIN && strstr(err.msg, "task 'relay_fixture_bad'") &&
                  strstr(err.msg, "relay_sender_template has no {text}"),
              "%d %s", (int)st, err.msg);
    tp_run_cfg_free(&c);
    json_decref(spec);
    fx_close(&f);
}

/* Hash of the resolved spec (empty string on failure). */
static void hash_of(fx *f, json_t *spec, char *out) {
    tp_run_cfg c;
    tp_err err = {0};
    out[0] = 0;
    tp_status st = tp_run_cfg_resolve(f->runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) snprintf(out, 80, "%s", c.hash);
    tp_run_cfg_free(&c);
}

static void test_identity(void) {
    fx f;
    if (!open_fx(&f, "")) return;
    char a[80], b[80], r[80];
    /* a stock task's template is the old default: with or without that exact override, the same
     * config and hash as before the prompt became task data */
    json_t *s1 = spec_for("toy"), *s2 = spec_for("toy");
    json_object_set_new(json_object_get(s2, "baseline_options"), "sender_prompt",
                        json_string(TP_RELAY_SENDER_PROMPT));
    hash_of(&f, s1, a);
    hash_of(&f, s2, b);
    TP_CHECKF(a[0] && !strcmp(a, b), "%s vs %s", a, b);
    json_decref(s1);
    json_decref(s2);
    /* a task's own template changes the identity; a replay spec of the stored config resolves to
     * the same hash (it carries the effective prompt as the override) */
    s1 = spec_for("relay_fixture");
    tp_run_cfg c;
    tp_err err = {0};
    tp_status st = tp_run_cfg_resolve(f.runner, s1, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(strcmp(c.hash, a) != 0);
        json_t *rs = NULL;
        TP_CHECK(tp_replay_spec(c.canon, "tiny_llama", "tiny_mistral", &rs, &err) == TP_OK);
        if (rs) {
            json_t *bo = json_object_get(rs, "baseline_options");
            TP_CHECK(bo &&
                     !strcmp(json_string_value(json_object_get(bo, "sender_prompt")), FX_SENDER));
            hash_of(&f, rs, r);
            TP_CHECKF(!strcmp(r, c.hash), "replay %s vs stored %s", r, c.hash);
            json_decref(rs);
        }
    }
    tp_run_cfg_free(&c);
    json_decref(s1);
    fx_close(&f);
}

/* Every stock task fills both members, with the prompts the relay used before they were task
 * data (so relay runs of the stock tasks keep their hashes). */
static void test_stock_tasks(void) {
    fx f;
    if (!fx_open(&f, "")) return;
    static const char *const tasks[] = {"sst2",  "agnews",  "trec", "banking77",
                                        "gsm8k", "passkey", "toy"};
    /* open checks that the data directory exists; banking77 reads its 77 label names there */
    char data[700], p77[800];
    snprintf(data, sizeof data, "%s/data", tp_test_tmpdir());
    for (size_t i = 0; i < 5; i++) {
        tp_err e = {0};
        char d[800];
        snprintf(d, sizeof d, "%s/%s", data, tasks[i]);
        TP_CHECKF(tp_mkdir_p(d, &e) == TP_OK, "%s", e.msg);
    }
    snprintf(p77, sizeof p77, "%s/banking77/categories.json", data);
    FILE *cf = fopen(p77, "w");
    TP_CHECK(cf != NULL);
    if (cf) {
        for (int c = 0; c < 77; c++) fprintf(cf, "%s\"intent_%d\"", c ? ", " : "[", c);
        fputs("]\n", cf);
        fclose(cf);
    }
    for (size_t i = 0; i < sizeof tasks / sizeof *tasks; i++) {
        const tp_plugin *p = NULL;
        tp_err err = {0};
        TP_CHECKF(tp_registry_find(f.reg, TP_PLUGIN_TASK, tasks[i], &p, &err) == TP_OK, "%s",
                  err.msg);
        if (!p) continue;
        const tp_task_vtable *tv = p->desc.vtable;
        tp_options *o = NULL;
        void *state = NULL;
        tp_status st =
            tp_options_new("task", p->desc.name, p->desc.options, p->desc.n_options, &o, &err);
        if (st == TP_OK) st = tv->open(o, data, &state, &err);
        TP_CHECKF(st == TP_OK, "%s: %s", tasks[i], err.msg);
        if (st == TP_OK) {
            tp_task_info info;
            memset(&info, 0, sizeof info);
            TP_CHECK(tv->info(state, &info) == TP_OK);
            TP_CHECKF(info.relay_sender_template &&
                          !strcmp(info.relay_sender_template, TP_RELAY_SENDER_PROMPT),
                      "%s", tasks[i]);
            TP_CHECKF(info.relay_receiver_template && info.direct_template &&
                          !strcmp(info.relay_receiver_template, info.direct_template),
                      "%s", tasks[i]);
            tv->close(state);
        }
        tp_options_free(o);
    }
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_task_template_reaches_relay), TP_CASE(test_stock_tasks),
            TP_CASE(test_override_and_old_abi), TP_CASE(test_identity))
