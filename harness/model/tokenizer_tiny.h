/* tokenizer_tiny.h — the built-in corpus behind tp_tokenizer_write_tiny (tokenizer_tiny.c). */
#ifndef TP_MODEL_TOKENIZER_TINY_H
#define TP_MODEL_TOKENIZER_TINY_H

extern const char *const tp_tok_tiny_corpus[];
extern const int tp_tok_tiny_corpus_n;

#endif
