/* import_preserved.h — the Telepathy study's preserved result files (../shared/preserved: one
 * JSON layout per experiment) read into results.db as runs of origin `study`, so the published
 * numbers sit beside the harness's in every table.
 *
 * Every *.json file under the directory is read, each by the reader of its layout (eval results
 * with per-example samples, baseline files, the exp003 ablation results, the exp009 reviewer
 * files: CoT relay, few-shot, GSM8K bridge, batched latency, LoRA); a folder's config.json is the
 * configuration of the eval results beside it. A file no reader recognises, or numbers that
 * contradict each other (accuracy vs correct/total), is an error naming the file: nothing is
 * skipped silently. Files that are not JSON (PROVENANCE.md) are not data and are not read.
 *
 * Each imported run: experiment = the top folder (exp001_sst2_signal_check, ...), runs.source =
 * "<file>#<entry>", config_json = {"origin": "study", "source", "file_sha256", "study": <the
 * file's own settings>, plus the harness's keys where the file states them: task.name,
 * bridge.name, bridge.options.tokens / depth, layer, seed, train.steps / batch / lr}; results
 * (split "eval", scheme "unrecorded": the files do not say which scoring scheme was used) with
 * accuracy = correct/total and its Wilson interval where the counts are given, per-class
 * accuracies as accuracy/<class>; predictions from the per-example samples (example_hash = sha256
 * of the text unless the file truncated it with "..."); logged training losses as metrics
 * study/train_loss (the files do not say at which step: step = index of the logged value);
 * latency rows from the latency files. Seeds are stored only where the file names them. Importing
 * the same files again adds nothing (config hashes exist). */
#ifndef TP_RUN_IMPORT_PRESERVED_H
#define TP_RUN_IMPORT_PRESERVED_H

#include "store/store.h"

typedef struct tp_import_report {
    int files;       /* JSON files read */
    int runs;        /* runs added */
    int existing;    /* runs already imported (same config hash) */
    int predictions; /* prediction rows added */
} tp_import_report;

tp_status tp_import_preserved(tp_store *s, const char *dir, tp_import_report *rep, tp_err *err);

#endif
