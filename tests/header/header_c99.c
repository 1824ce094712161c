/* convvae.h compiled alone as strict C99 (see CMakeLists.txt for the flags).
 * It must come first, with nothing included before it, and survive a second
 * inclusion. The checks below pin values that are part of the ABI. */
#include <convvae.h>
#include <convvae.h>

/* C99 has no _Static_assert: a negative array size fails the compile. */
#define CHECK(name, cond) typedef char check_##name[(cond) ? 1 : -1]

CHECK(ok_is_zero, CVAE_OK == 0);
CHECK(status_pinned, CVAE_E_INVALID_ARG == 1 && CVAE_E_NOMEM == 2 && CVAE_E_IO == 3 &&
                         CVAE_E_FORMAT == 4 && CVAE_E_NUMERIC == 5 && CVAE_E_STATE == 6 &&
                         CVAE_E_CANCELLED == 7 && CVAE_E_UNSUPPORTED == 8 &&
                         CVAE_E_INTERNAL == 9);
CHECK(prior_pinned, CVAE_PRIOR_STANDARD == 0 && CVAE_PRIOR_MIXTURE == 1);
CHECK(act_pinned, CVAE_ACT_RELU == 0 && CVAE_ACT_IDENTITY == 1);
CHECK(catin_pinned, CVAE_CATEGORY_INPUT_Z == 0 && CVAE_CATEGORY_INPUT_FEATURES == 1);
CHECK(opt_pinned, CVAE_OPTIMIZER_ADAM == 0 && CVAE_OPTIMIZER_SGD == 1);
CHECK(recipe_pinned, CVAE_RECIPE_PAPER == 0 && CVAE_RECIPE_MANIFOLD == 1);
CHECK(loss_pinned, CVAE_LOSS_TOTAL == 0 && CVAE_LOSS_RECON == 1 && CVAE_LOSS_KL == 2 &&
                       CVAE_LOSS_CATEGORY == 3 && CVAE_LOSS_BALANCE == 4 &&
                       CVAE_LOSS_COUNT >= 5);
CHECK(version_number, CVAE_VERSION_NUMBER == ((CVAE_VERSION_MAJOR << 16) |
                                              (CVAE_VERSION_MINOR << 8) |
                                              CVAE_VERSION_PATCH));
CHECK(limits, CVAE_MAX_BRANCHES >= 1 && CVAE_MAX_CLUSTERS >= 2);

/* A few declarations used through typed pointers: a signature change that
 * still compiles at call sites (e.g. int -> int64_t) is caught here. */
static cvae_status (*const p_train)(cvae_model *, const cvae_dataset *, int, cvae_optimizer *,
                                    cvae_progress_fn, void *) = cvae_model_train;
static cvae_status (*const p_from_u8)(const uint8_t *, int64_t, int, int, int, const int32_t *,
                                      cvae_dataset **) = cvae_dataset_from_u8;
static const char *(*const p_last_error)(void) = cvae_last_error;

int header_c99_main(void);
int header_c99_main(void)
{
    return p_train != 0 && p_from_u8 != 0 && p_last_error != 0;
}
