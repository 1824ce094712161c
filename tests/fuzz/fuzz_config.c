/* Fuzz harness for the configuration's free-text input: the checkpoint's
 * config JSON (cvae__config_from_json) and the by-name setter the CLI's
 * --option value pairs go through (cvae_config_set), plus cvae_config_get
 * with buffers of every small size.
 *
 * Input: byte 0 selects the mode (mod 3), the rest is text:
 *   0: a config JSON object;
 *   1: one "name=value" for cvae_config_set;
 *   2: lines of "name=value" applied in turn to one config.
 * Checked: a failure returns the documented status with a message and
 * leaves the config untouched; whatever is accepted is in range (every
 * option reads back and sets again), and serialises to JSON that parses
 * back to the same configuration. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "convvae.h"
#include "fuzz.h"

static void check_message(void)
{
    const char *msg = cvae_last_error();
    FUZZ_CHECK(msg != NULL && msg[0] != '\0');
}

/* JSON of a config (every option, lossless). */
static void to_json(const struct cvae_config *c, char *buf, size_t size)
{
    FUZZ_CHECK(cvae__config_to_json(c, buf, size) == CVAE_OK);
    FUZZ_CHECK(strlen(buf) < size);
}

/* Every option of an accepted config reads back, and setting the text it
 * reads back changes nothing; the JSON round trip is exact. */
static void check_config(const struct cvae_config *c, uint8_t bufsize)
{
    char before[4096], after[4096];
    to_json(c, before, sizeof before);

    struct cvae_config copy = *c;
    for (int i = 0; cvae_config_option_name(i); i++) {
        const char *name = cvae_config_option_name(i);
        char value[128];
        FUZZ_CHECK(cvae_config_get(&copy, name, value, sizeof value) == CVAE_OK);
        FUZZ_CHECK(cvae_config_set(&copy, name, value) == CVAE_OK);
        /* Short buffers: the whole value, terminated, or a refusal; never a
         * byte written past the size given. */
        char small[34];
        size_t n = (size_t)bufsize % (sizeof small - 1);
        memset(small, 'x', sizeof small);
        cvae_status st = cvae_config_get(&copy, name, small, n);
        if (st == CVAE_OK) {
            FUZZ_CHECK(n > 0 && strcmp(small, value) == 0);
        } else {
            FUZZ_CHECK(st == CVAE_E_INVALID_ARG && strlen(value) >= n);
            check_message();
        }
        for (size_t k = n; k < sizeof small; k++)
            FUZZ_CHECK(small[k] == 'x');
    }
    to_json(&copy, after, sizeof after);
    FUZZ_CHECK(strcmp(before, after) == 0);

    struct cvae_config back;
    cvae__config_defaults(&back);
    FUZZ_CHECK(cvae__config_from_json(&back, before) == CVAE_OK);
    to_json(&back, after, sizeof after);
    FUZZ_CHECK(strcmp(before, after) == 0);
}

/* cvae_config_set with the text "name=value"; returns its status. */
static cvae_status set_pair(struct cvae_config *c, char *pair)
{
    char *eq = strchr(pair, '=');
    const char *value = "";
    if (eq) {
        *eq = '\0';
        value = eq + 1;
    }
    struct cvae_config saved = *c;
    cvae_status st = cvae_config_set(c, pair, value);
    if (st != CVAE_OK) {
        FUZZ_CHECK(st == CVAE_E_INVALID_ARG);
        check_message();
        FUZZ_CHECK(memcmp(&saved, c, sizeof saved) == 0);
        return st;
    }
    /* Setting what reads back is a no-op. */
    char value2[128], before[4096], after[4096];
    FUZZ_CHECK(cvae_config_get(c, pair, value2, sizeof value2) == CVAE_OK);
    to_json(c, before, sizeof before);
    FUZZ_CHECK(cvae_config_set(c, pair, value2) == CVAE_OK);
    to_json(c, after, sizeof after);
    FUZZ_CHECK(strcmp(before, after) == 0);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    uint8_t bufsize = size > 1 ? data[size - 1] : 0;
    char *text = malloc(size);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    struct cvae_config c;
    cvae__config_defaults(&c);
    int accepted = 0; /* a refused input leaves the defaults: nothing to check */
    if (mode == 0) {
        struct cvae_config saved = c;
        cvae_status st = cvae__config_from_json(&c, text);
        if (st != CVAE_OK) {
            FUZZ_CHECK(st == CVAE_E_FORMAT);
            check_message();
            FUZZ_CHECK(memcmp(&saved, &c, sizeof c) == 0);
        }
        accepted = st == CVAE_OK;
    } else if (mode == 1) {
        accepted = set_pair(&c, text) == CVAE_OK;
    } else {
        for (char *line = text; line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            accepted |= set_pair(&c, line) == CVAE_OK;
            line = nl ? nl + 1 : NULL;
        }
    }
    if (accepted || size == 1)
        check_config(&c, bufsize);
    free(text);
    return 0;
}
